"""pyexport.probe: the linear probe, multinomial logistic regression on frozen
features, as a small SavedModel that Go trains through the C API.

    python -m pyexport.probe --dim 256 --classes 10 --out exports/probe-256x10

Signatures: train_step(x float32 [N,dim], y int32 [N]) → loss (mean softmax
cross-entropy, one Adam step); predict(x) → class int32 [N].
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import tensorflow as tf

from .atomic import swap_into_place

LEARNING_RATE = 1e-3  # Adam, as the encoder's
WEIGHT_DECAY = 1e-4  # L2 on the weights, a light regulariser


class Probe(tf.Module):
    def __init__(self, dim, classes, seed=0):
        super().__init__(name="probe")
        init = tf.random.stateless_normal([dim, classes], seed=[seed, 0], stddev=0.01)
        self.w = tf.Variable(init, name="w")
        self.b = tf.Variable(tf.zeros([classes]), name="b")
        self.opt = tf.keras.optimizers.Adam(LEARNING_RATE)
        self.opt.build([self.w, self.b])
        # Track the optimizer's underlying tf.Variables directly (see module.py).
        self.slots = {v.path.replace("/", "."): v.value for v in self.opt.variables}
        x = tf.TensorSpec([None, dim], tf.float32, name="x")
        self.train_step = tf.function(self._train_step, input_signature=[x, tf.TensorSpec([None], tf.int32, name="y")])
        self.predict = tf.function(self._predict, input_signature=[x])

    def logits(self, x):
        return tf.matmul(x, self.w) + self.b

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=self.logits(x)))
            loss = ce + WEIGHT_DECAY * tf.reduce_sum(tf.square(self.w))
        grads = tape.gradient(loss, [self.w, self.b])
        self.opt.apply_gradients(zip(grads, [self.w, self.b]))
        return {"loss": ce}

    def _predict(self, x):
        return {"class": tf.argmax(self.logits(x), axis=1, output_type=tf.int32)}


def export(dim, classes, out):
    probe = Probe(dim, classes)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".probe-", dir=parent)
    try:
        tf.saved_model.save(probe, tmp, signatures={"train_step": probe.train_step, "predict": probe.predict})
        with open(os.path.join(tmp, "probe.json"), "w") as f:
            json.dump({"dim": dim, "classes": classes, "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY,
                       "tensorflow_version": tf.__version__}, f, indent=2)
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pyexport.probe", description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.dim < 1 or a.classes < 2:
        print("pyexport.probe: --dim must be >= 1 and --classes >= 2", file=sys.stderr)
        return 2
    export(a.dim, a.classes, a.out)
    print("pyexport.probe: wrote %s (%d → %d)" % (a.out, a.dim, a.classes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
