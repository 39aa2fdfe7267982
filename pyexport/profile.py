"""Where a training step's time goes: TensorFlow's step statistics of an exported train_step.

    go run ./runner profile --config configs/cifar10.yaml [--steps 20]    # exports, then runs this
    python -m pyexport.profile --export exports/cifar10 [--images train.npy] [--precision bfloat16]

Loads the SavedModel into a TF1 session the way the C API does (the same
graph, the same loader), with the thread pools and graph options the Go
runner sets, runs train_step on batches (warm-up first), then traces
--steps steps with RunOptions(trace_level=FULL_TRACE) and sums each op's
time (its all_end_rel_micros in the step statistics) by what it does, and
by node (the 15 slowest, with their output shapes: which convolution's
weight gradient, which head's product). The sums are CPU time over both
inter-op threads, so they add up to more than the wall time of a step when
ops run side by side; the shares are what matters. Without --images the
batches are seeded random uint8 images of the model's input shape: the
ops' cost does not depend on the pixels. The first line names the CPU, its
bfloat16 flags and whether TensorFlow's oneDNN kernels are on. Prints
Markdown tables and the wall time per step.
"""

import argparse
import collections
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

KINDS = [
    # (kind, test on (op type, node name)); the first that matches wins.
    ("convolution backward (input and filter gradients)", lambda op, n: "Conv2DBackprop" in op),
    ("convolution forward", lambda op, n: "Conv2D" in op),
    ("matrix products backward (dense layers: discriminators, heads, z)", lambda op, n: ("MatMul" in op or "Einsum" in op) and "gradient" in n.lower()),
    ("matrix products forward", lambda op, n: "MatMul" in op or "Einsum" in op),
    ("batch norm (forward and backward)", lambda op, n: "BatchNorm" in op),
    ("Adam (the update of every variable)", lambda op, n: "Adam" in op or "/Adam/" in n or "adam" in n.lower()),
    ("max pooling and activations (forward and backward)", lambda op, n: any(k in op for k in ("MaxPool", "Relu", "Sigmoid", "LeakyRelu", "Tanh"))),
    ("bfloat16 casts", lambda op, n: op in ("Cast", "_MklCast") and "bfloat16" in n.lower() or op == "Cast" and "amp" in n.lower()),
    ("input: uint8 → float scaling, shuffles, random draws", lambda op, n: any(k in op for k in ("Stateless", "GatherV2", "ArgSort", "TopK")) or "scale" in n.lower()),
]


def kind_of(op, name):
    for kind, test in KINDS:
        if test(op, name):
            return kind
    return "everything else (elementwise ops, reductions, losses, reshapes, concatenation)"


def cpu_line():
    """The CPU's model, cores and bfloat16 flags, and whether oneDNN is on."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == "model name" and model == "unknown CPU":
                    model = v.strip()
                if k.strip() == "flags":
                    flags |= set(v.split())
    except OSError:
        pass
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    try:
        from tensorflow.python.util import _pywrap_util_port
        onednn = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    except (ImportError, AttributeError):
        onednn = "unknown"
    return "CPU: %s, %d cores, bfloat16 flags: %s; TensorFlow %s, oneDNN kernels %s" % (
        model, os.cpu_count() or 0, ", ".join(bf16) or "none", tf.__version__, onednn)


def shape_of(node):
    """The first output's shape of a traced node, as 128x4x4x256."""
    for out in node.output:
        dims = out.tensor_description.shape.dim
        if dims:
            return "x".join(str(d.size) for d in dims)
    return ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--export", required=True)
    p.add_argument("--images", help="uint8 N×H×W×C .npy (default: seeded random images of the model's input shape)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                   help="bfloat16: oneDNN's rewrite of a float32 model (a model exported with model.precision bfloat16 is bfloat16 already)")
    p.add_argument("--intra", type=int, default=2)
    p.add_argument("--inter", type=int, default=1)
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args(argv)
    tf.get_logger().setLevel("ERROR")  # the TF1 loader's deprecation notice

    if a.images:
        images = np.load(a.images, mmap_mode="r")
    else:
        with open(os.path.join(a.export, "manifest.json")) as f:
            shape = json.load(f)["input"]["shape"]
        images = np.random.default_rng(0).integers(0, 256, size=(4 * a.batch, *shape), dtype=np.uint8)
    cfg = config_pb2.ConfigProto(intra_op_parallelism_threads=a.intra, inter_op_parallelism_threads=a.inter)
    if a.precision == "bfloat16":
        cfg.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    tf.compat.v1.disable_eager_execution()
    with tf.compat.v1.Session(graph=tf.Graph(), config=cfg) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], a.export)
        sig = meta.signature_def["train_step"]
        feed_name = sig.inputs["images"].name
        fetches = {k: v.name for k, v in sig.outputs.items()}
        n = len(images) // a.batch

        def feed(i):
            j = i % n
            return {feed_name: np.asarray(images[j * a.batch : (j + 1) * a.batch])}

        for i in range(a.warmup):
            sess.run(fetches, feed(i))
        t = time.perf_counter()
        for i in range(a.warmup, a.warmup + a.steps):
            sess.run(fetches, feed(i))
        wall = (time.perf_counter() - t) / a.steps
        by_kind = collections.Counter()
        by_op = collections.Counter()
        by_node = collections.Counter()
        calls = collections.Counter()
        node_op, node_shape = {}, {}
        opts = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        for i in range(a.steps):
            md = tf.compat.v1.RunMetadata()
            sess.run(fetches, feed(i), options=opts, run_metadata=md)
            for dev in md.step_stats.dev_stats:
                for node in dev.node_stats:
                    op = node.timeline_label.split("(")[0].split("=")[-1].strip() if node.timeline_label else ""
                    op = op or node.node_name
                    us = node.all_end_rel_micros
                    by_kind[kind_of(op, node.node_name)] += us
                    by_op[op] += us
                    by_node[node.node_name] += us
                    calls[node.node_name] += 1
                    node_op[node.node_name] = op
                    node_shape.setdefault(node.node_name, shape_of(node))
    total = sum(by_kind.values())
    print(cpu_line())
    print("train_step of %s, batch %d, %s, intra %d inter %d: %.1f ms a step (wall, untraced), %.0f images/s; op time %.1f ms a step"
          % (a.export, a.batch, a.precision, a.intra, a.inter, 1e3 * wall, a.batch / wall, total / 1e3 / a.steps))
    print()
    print("| where the time goes | ms a step | share |")
    print("|---|---|---|")
    for kind, us in by_kind.most_common():
        print("| %s | %.2f | %.1f%% |" % (kind, us / 1e3 / a.steps, 100 * us / total))
    print()
    print("op types, top 15: " + ", ".join("%s %.1f%%" % (op, 100 * us / total) for op, us in by_op.most_common(15)))
    print()
    print("| the 15 slowest nodes | op | output shape | ms a step | share |")
    print("|---|---|---|---|---|")
    for name, us in by_node.most_common(15):
        short = "/".join(w for w in name.split("/") if not w.startswith("StatefulPartitionedCall"))
        print("| %s | %s | %s | %.2f | %.1f%% |" % (short, node_op[name], node_shape[name], us / 1e3 / a.steps, 100 * us / total))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"wall_ms": 1e3 * wall, "kinds_ms": {k: v / 1e3 / a.steps for k, v in by_kind.items()},
                       "ops_ms": {k: v / 1e3 / a.steps for k, v in by_op.items()},
                       "nodes_ms": {k: v / 1e3 / a.steps for k, v in by_node.most_common(50)}, "cpu": cpu_line()}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
