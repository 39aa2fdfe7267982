"""Where a training step's time goes: TensorFlow's step statistics of an exported train_step.

    python scripts/profile_step.py --export exports/cifar10_seed --images train.npy [--precision bfloat16]

Loads the SavedModel into a TF1 session the way the C API does (the same
graph, the same loader), with the thread pools and graph options the Go
runner sets, runs train_step on real batches (warm-up first), then traces
--steps steps with RunOptions(trace_level=FULL_TRACE) and sums each op's
time (its all_end_rel_micros in the step statistics) by what it does. The
sums are CPU time over both inter-op threads, so they add up to more than the
wall time of a step when ops run side by side; the shares are what matters.
Prints a Markdown table and the wall time per step.
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--export", required=True)
    p.add_argument("--images", required=True, help="uint8 N×H×W×C .npy")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--intra", type=int, default=2)
    p.add_argument("--inter", type=int, default=1)
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args(argv)

    images = np.load(a.images, mmap_mode="r")
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
    total = sum(by_kind.values())
    print("train_step of %s, batch %d, %s, intra %d inter %d: %.1f ms a step (wall, untraced), %.0f images/s; op time %.1f ms a step"
          % (a.export, a.batch, a.precision, a.intra, a.inter, 1e3 * wall, a.batch / wall, total / 1e3 / a.steps))
    print()
    print("| where the time goes | ms a step | share |")
    print("|---|---|---|")
    for kind, us in by_kind.most_common():
        print("| %s | %.2f | %.1f%% |" % (kind, us / 1e3 / a.steps, 100 * us / total))
    print()
    print("op types, top 15: " + ", ".join("%s %.1f%%" % (op, 100 * us / total) for op, us in by_op.most_common(15)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"wall_ms": 1e3 * wall, "kinds_ms": {k: v / 1e3 / a.steps for k, v in by_kind.items()},
                       "ops_ms": {k: v / 1e3 / a.steps for k, v in by_op.items()}}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
