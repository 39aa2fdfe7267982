"""The seed's recipe trained with Keras `model.fit`, as the seed's user runs it: the speed baseline.

    python scripts/keras_fit_baseline.py --export exports/cifar10_seed --images train.npy [--steps 300]

The spec comes from the export's manifest; the networks and losses are
pyexport.model's (the ones the SavedModel the Go runner trains is built
from, checked against NumPy in pyexport/tests). The seed's Keras 2 script put
its losses on the model with add_loss and called
model.compile(optimizer=Adam(1e-3)); model.fit(x_train, batch_size=64). Keras
3 has no add_loss on a functional model's tensors; its idiom for the same thing
is a keras.Model whose train_step computes the losses, which is what this
is; compile and fit are Keras's defaults otherwise (shuffle, TensorFlow's
default threads, Keras's own choice of jit_compile). It prints one JSON line:
images/s over steps 101..steps (the first 100 hold tracing and warm-up), as
the Go benchmark measures the runner.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pyexport import model  # noqa: E402


class SeedModel(keras.Model):
    """The seed's model: encoder, discriminators, and its losses in train_step."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.encoder = model.build_encoder(spec)
        _, needs, _ = model.objective(spec)
        self.heads = [model.NETS[n](spec, self.encoder) for n in needs]
        self.nets = {"encoder": self.encoder, **dict(zip(needs, self.heads))}

    def call(self, images):
        return self.encoder(model.scale_images(images, self.spec))[1]

    def train_step(self, images):
        b = tf.shape(images)[0]
        # the noise in the dtype z_log_var comes in (bfloat16 under mixed_bfloat16)
        eps = tf.random.normal([b, self.spec["model"]["z_dim"]], dtype=keras.mixed_precision.global_policy().compute_dtype)
        perm_global = tf.random.shuffle(tf.range(b))
        perm_local = tf.random.shuffle(tf.range(b))
        with tf.GradientTape() as tape:
            terms = model.loss_terms(
                self.nets, self.spec, model.scale_images(images, self.spec), eps, perm_global, perm_local, training=True
            )
        grads = tape.gradient(terms["loss"], self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": terms["loss"]}


class Timer(keras.callbacks.Callback):
    def __init__(self, skip):
        super().__init__()
        self.skip, self.t0, self.t1, self.n = skip, None, None, 0

    def on_train_batch_end(self, batch, logs=None):
        self.n = batch + 1
        if self.n == self.skip:
            self.t0 = time.perf_counter()
        self.t1 = time.perf_counter()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--export", required=True, help="the exported model whose manifest holds the spec")
    p.add_argument("--images", required=True, help="uint8 N×H×W×C training images as .npy")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=0, help="default: the recipe's (train.batch_size is not in the spec: 64)")
    p.add_argument("--policy", default="float32", help="Keras's dtype policy: float32, or mixed_bfloat16 (bfloat16 compute, float32 variables; Keras keeps batch norm and the losses in float32)")
    a = p.parse_args(argv)
    with open(os.path.join(a.export, "manifest.json")) as f:
        spec = json.load(f)["spec"]
    images = np.load(a.images, mmap_mode="r")
    batch = a.batch or 64
    if len(images) < a.steps * batch:
        raise SystemExit("%s: %d images, want at least %d (steps × batch)" % (a.images, len(images), a.steps * batch))
    keras.utils.set_random_seed(spec["seed"])
    keras.mixed_precision.set_global_policy(a.policy)
    m = SeedModel(spec)
    m.compile(optimizer=keras.optimizers.Adam(spec["optimizer"]["learning_rate"]))
    timer = Timer(100)
    m.fit(np.asarray(images[: a.steps * batch]), batch_size=batch, epochs=1, steps_per_epoch=a.steps, verbose=0, callbacks=[timer])
    ips = (timer.n - timer.skip) * batch / (timer.t1 - timer.t0)
    print(json.dumps({"images_per_second": ips, "steps": timer.n, "batch": batch, "jit_compile": bool(m.jit_compile), "policy": a.policy,
                      "tensorflow": tf.__version__, "keras": keras.__version__}))


if __name__ == "__main__":
    main()
