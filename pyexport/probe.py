"""pyexport.probe: the probes on frozen features, as small SavedModels that Go
trains through the C API: the linear probe (multinomial logistic regression)
and, with --hidden, the Deep InfoMax paper's classifier (Hjelm et al. 2019,
its code's ClassificationEval: Linear(hidden) → BatchNorm → Dropout 0.1 →
ReLU → Linear).

    python -m pyexport.probe --dim 256 --classes 10 --out exports/probe-256x10
    python -m pyexport.probe --dim 256 --classes 10 --hidden 200 --out exports/probe-mlp200-256x10

Signatures: train_step(x float32 [N,dim], y int32 [N]) → loss (mean softmax
cross-entropy, one Adam step; the MLP's batch norm on the batch's statistics,
its dropout drawn from (seed, step)); predict(x) → class int32 [N] (the MLP's
batch norm on its moving statistics, no dropout).
"""

import argparse
import os
import sys

import tensorflow as tf

try:
    from .atomic import new_folder, write_json
except ImportError:  # run as the file a model export carries (probe/probe.py, beside atomic.py)
    from atomic import new_folder, write_json

LEARNING_RATE = 1e-3  # Adam, as the encoder's
WEIGHT_DECAY = 1e-4  # L2 on the weights, a light regulariser


DROPOUT = 0.1  # the MLP's, as the paper's classifier
BN_MOMENTUM = 0.9  # moving statistics ← 0.9·moving + 0.1·batch (PyTorch's BatchNorm1d default)
BN_EPSILON = 1e-5


class Probe(tf.Module):
    def __init__(self, dim, classes, hidden=0, seed=0):
        super().__init__(name="probe")
        self.hidden = hidden
        normal = lambda shape, k, std: tf.random.stateless_normal(shape, seed=[seed, k], stddev=std)  # noqa: E731
        if hidden:
            # He initialisation before the ReLU; the output layer as the linear probe's.
            self.w1 = tf.Variable(normal([dim, hidden], 1, (2.0 / dim) ** 0.5), name="w1")
            self.b1 = tf.Variable(tf.zeros([hidden]), name="b1")
            self.gamma = tf.Variable(tf.ones([hidden]), name="gamma")
            self.beta = tf.Variable(tf.zeros([hidden]), name="beta")
            self.moving_mean = tf.Variable(tf.zeros([hidden]), trainable=False, name="moving_mean")
            self.moving_var = tf.Variable(tf.ones([hidden]), trainable=False, name="moving_var")
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.w = tf.Variable(normal([hidden or dim, classes], 0, 0.01), name="w")
        self.b = tf.Variable(tf.zeros([classes]), name="b")
        self.opt = tf.keras.optimizers.Adam(LEARNING_RATE)
        self.opt.build(self.params)
        # Track the optimizer's underlying tf.Variables directly (see module.py).
        self.slots = {v.path.replace("/", "."): v.value for v in self.opt.variables}
        self._seed = seed
        x = tf.TensorSpec([None, dim], tf.float32, name="x")
        self.train_step = tf.function(self._train_step, input_signature=[x, tf.TensorSpec([None], tf.int32, name="y")])
        self.predict = tf.function(self._predict, input_signature=[x])

    @property
    def params(self):
        if self.hidden:
            return [self.w1, self.b1, self.gamma, self.beta, self.w, self.b]
        return [self.w, self.b]

    def logits(self, x, training=False):
        if self.hidden:
            h = tf.matmul(x, self.w1) + self.b1
            if training:
                mean, var = tf.nn.moments(h, axes=[0])
                m = BN_MOMENTUM
                n = tf.cast(tf.shape(h)[0], tf.float32)
                self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)
                self.moving_var.assign(m * self.moving_var + (1 - m) * var * n / tf.maximum(n - 1, 1))  # unbiased, as PyTorch
            else:
                mean, var = self.moving_mean, self.moving_var
            h = tf.nn.batch_normalization(h, mean, var, self.beta, self.gamma, BN_EPSILON)
            if training:
                h = tf.nn.experimental.stateless_dropout(h, DROPOUT, seed=tf.stack([tf.constant(self._seed, tf.int64), self.step]))
            x = tf.nn.relu(h)
        return tf.matmul(x, self.w) + self.b

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=self.logits(x, training=True)))
            decay = tf.reduce_sum(tf.square(self.w))
            if self.hidden:
                decay += tf.reduce_sum(tf.square(self.w1))
            loss = ce + WEIGHT_DECAY * decay
        grads = tape.gradient(loss, self.params)
        self.opt.apply_gradients(zip(grads, self.params))
        if self.hidden:
            self.step.assign_add(1)
        return {"loss": ce}

    def _predict(self, x):
        return {"class": tf.argmax(self.logits(x), axis=1, output_type=tf.int32)}


def export(dim, classes, out, hidden=0):
    probe = Probe(dim, classes, hidden)
    with new_folder(out, ".probe-") as tmp:
        tf.saved_model.save(probe, tmp, signatures={"train_step": probe.train_step, "predict": probe.predict})
        settings = {"dim": dim, "classes": classes, "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY}
        if hidden:
            settings.update(hidden=hidden, dropout=DROPOUT, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON)
        write_json(os.path.join(tmp, "probe.json"), dict(settings, tensorflow_version=tf.__version__))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pyexport.probe", description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--hidden", type=int, default=0, help="hidden units of the MLP probe (0: the linear probe)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.dim < 1 or a.classes < 2 or a.hidden < 0:
        print("pyexport.probe: --dim must be >= 1, --classes >= 2 and --hidden >= 0", file=sys.stderr)
        return 2
    export(a.dim, a.classes, a.out, a.hidden)
    print("pyexport.probe: wrote %s (%d → %s%d)" % (a.out, a.dim, "%d → " % a.hidden if a.hidden else "", a.classes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
