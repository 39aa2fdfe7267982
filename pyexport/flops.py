"""pyexport.flops: floating-point operations of one training image, from the model.

Only convolutions and dense layers (matrix products) are counted: they are
what a CPU's matmul peak measures, and everything else (batch norm,
activations, pooling, the losses, Adam) is elementwise and adds a few per
cent at most. A multiply-add is 2 FLOPs.

- Conv2D k×k, C_in → C_out, output H×W: 2·k²·C_in·C_out·H·W.
- Dense in → out, applied at P positions (a per-location MLP on an h×w map
  has P = h·w): 2·in·out·P.
- Forward of one training image: the encoder once, then each network the
  objective applies, times how often it is applied: the seed's objective runs
  the global and the local discriminator twice each (positive and shuffled
  pairs); local_nce/local_jsd run both heads once plus the score product
  g·l of every image's code with every location of every image (hw·B·d
  multiply-adds per image, B the batch); two_view_nce counts both views of
  an image: the encoder and both heads twice, and the scores of each view's
  code against the other view's locations, both ways (2·hw·B·d), per scale.
- Backward: 2× forward (the gradient with respect to the layer's input and to
  its weights, each a product of the forward's size), less the first
  convolution's input gradient (of each view), which nothing needs.

python -m pyexport.flops --export DIR [--batch B] prints the breakdown of an
exported model (its manifest's spec) as JSON; with --peak, also TensorFlow's
matmul throughput here (4096² float32 and bfloat16, the best of 10 after a
warm-up, on --threads threads): the peak that MFU divides by.
"""

import argparse
import json
import os
import sys

import keras
from keras import layers

from . import model


def layer_flops(net):
    """[(layer name, forward FLOPs for one input)] of a Keras model's Conv2D and Dense layers."""
    out = []
    for layer in net.layers:
        if isinstance(layer, keras.Model):
            out += [(layer.name + "/" + n, f) for n, f in layer_flops(layer)]
        elif isinstance(layer, layers.Conv2D):
            k = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            out.append((layer.name, 2 * k[0] * k[1] * k[2] * k[3] * h * w))
        elif isinstance(layer, layers.Dense):
            shape = layer.input.shape[1:]
            positions = 1
            for d in shape[:-1]:
                positions *= d
            out.append((layer.name, 2 * shape[-1] * layer.units * positions))
    return out


def training_flops(spec, batch):
    """Forward and training FLOPs of one image at this batch size, with the breakdown.

    A two-view objective (model.TWO_VIEW) counts per image, so both of its
    views: the encoder and the heads run on each, and the scores go both ways."""
    encoder = model.build_encoder(spec)
    views = model.views(spec)
    encoder_flops = layer_flops(encoder)
    parts = {"encoder": views * sum(f for _, f in encoder_flops)}
    first_conv = views * encoder_flops[0][1]
    name = spec["loss"]["objective"]
    applications = {"global_disc": 2, "local_disc": 2, "global_head": views, "local_head": views, "local_head_2": views}
    for net in model.needed_nets(spec):
        built = model.NETS[net](spec, encoder)
        parts[net] = applications[net] * sum(f for _, f in layer_flops(built))
    if name in ("local_nce", "local_jsd", "two_view_nce"):
        maps = [model.map_shape(encoder)] + ([model.prev_map_shape(encoder)] if model.local_scales(spec) == 2 else [])
        # g·l of this image's code with every location of the batch's B maps
        # (local_nce), or of each view's code with the other view's (both ways).
        parts["scores"] = sum(views * 2 * h * w * batch * spec["loss"]["head_dim"] for h, w, _ in maps)
    forward = sum(parts.values())
    return {
        "objective": name,
        "batch": batch,
        "views": views,
        "forward": forward,
        "forward_parts": parts,
        "training": 3 * forward - first_conv,
        "first_conv": first_conv,
    }


def matmul_peak(threads, n=4096, repeats=10):
    """FLOP/s of TensorFlow's n×n matmul, float32 and bfloat16, the best of repeats."""
    import time

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    out = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.random.normal([n, n], dtype=tf.float32)
        a = tf.cast(a, dtype)
        f = tf.function(lambda x: tf.matmul(x, x))
        f(a).numpy()  # warm-up (and tracing)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            f(a).numpy()
            best = min(best, time.perf_counter() - t)
        out[dtype.name] = 2 * n**3 / best
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m pyexport.flops", description=__doc__.split("\n")[0])
    p.add_argument("--export", required=True, help="an exported model's folder (its manifest.json holds the spec)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--peak", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    with open(os.path.join(a.export, "manifest.json")) as f:
        spec = json.load(f)["spec"]
    peak = matmul_peak(a.threads) if a.peak else None  # first: TensorFlow's threads are set once
    out = training_flops(spec, a.batch)
    if peak:
        out["matmul_peak_flops"] = peak
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
