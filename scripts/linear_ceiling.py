"""How well can any linear classifier separate a run's features?

    .venv/bin/python scripts/linear_ceiling.py RUN_OR_REPORT_DIR [--steps 3000]

Reads the features `runner eval` saved (features_train.npy, labels_train.npy,
features_test.npy, labels_test.npy), standardises them with the training
moments as the linear probe does, and fits multinomial logistic regression
on all the training features at once (full batch, no weight decay, Adam
until the loss settles). Its training accuracy is the linear ceiling of the
features: when it is below the weighted kNN's test accuracy, no linear
readout of them can catch up with kNN, whatever the probe's schedule. Prints
training and test accuracy every 500 steps.
"""

import argparse
import os

import numpy as np
import tensorflow as tf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="a run folder or an `runner eval --out` folder with the features as .npy")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=0.01)
    a = ap.parse_args()

    def load(name):
        path = os.path.join(a.dir, name)
        if not os.path.exists(path):
            raise SystemExit(f"{path}: not there; `runner eval --run-dir RUN` writes the features as .npy")
        return np.load(path)

    xtr, ytr = load("features_train.npy").astype(np.float32), load("labels_train.npy").astype(np.int64)
    xte, yte = load("features_test.npy").astype(np.float32), load("labels_test.npy").astype(np.int64)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise SystemExit(f"{a.dir}: {len(xtr)} training features for {len(ytr)} labels, {len(xte)} test features for {len(yte)}")
    mean, std = xtr.mean(0), xtr.std(0)
    std[std == 0] = 1
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    classes = int(max(ytr.max(), yte.max())) + 1
    print(f"{len(xtr)} training and {len(xte)} test features of {xtr.shape[1]}, {classes} classes")

    w = tf.Variable(tf.zeros([xtr.shape[1], classes]))
    b = tf.Variable(tf.zeros([classes]))
    opt = tf.keras.optimizers.Adam(a.lr)
    xtr_t, ytr_t, xte_t = tf.constant(xtr), tf.constant(ytr), tf.constant(xte)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ytr_t, xtr_t @ w + b))
        opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
        return loss

    def acc(x, y):
        return float(np.mean(np.argmax((x @ w + b).numpy(), 1) == y))

    for i in range(1, a.steps + 1):
        loss = step()
        if i % 500 == 0 or i == a.steps:
            print(f"step {i}: loss {float(loss):.4f}  train accuracy {acc(xtr_t, ytr):.4f}  test accuracy {acc(xte_t, yte):.4f}")


if __name__ == "__main__":
    main()
