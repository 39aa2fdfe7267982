"""pyexport.probe's MLP probe against NumPy: its prediction (batch norm on the
moving statistics, no dropout) and one training step's batch statistics."""

import numpy as np
import tensorflow as tf

from pyexport import probe


def forward(p, x, mean, var):
    h = x @ p.w1.numpy() + p.b1.numpy()
    h = (h - mean) / np.sqrt(var + probe.BN_EPSILON) * p.gamma.numpy() + p.beta.numpy()
    return np.maximum(h, 0) @ p.w.numpy() + p.b.numpy()


def test_mlp_probe_matches_numpy():
    rng = np.random.default_rng(0)
    p = probe.Probe(dim=5, classes=3, hidden=7, seed=2)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = rng.integers(0, 3, 16).astype(np.int32)

    # One step: the moving statistics move towards the batch's (unbiased variance).
    h = x @ p.w1.numpy() + p.b1.numpy()
    p.train_step(tf.constant(x), tf.constant(y))
    np.testing.assert_allclose(p.moving_mean.numpy(), 0.1 * h.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p.moving_var.numpy(), 0.9 + 0.1 * h.var(0, ddof=1), rtol=1e-4)
    assert int(p.step.numpy()) == 1

    # Prediction: the moving statistics, no dropout.
    for _ in range(5):
        p.train_step(tf.constant(x), tf.constant(y))
    want = forward(p, x, p.moving_mean.numpy(), p.moving_var.numpy()).argmax(1)
    np.testing.assert_array_equal(p.predict(tf.constant(x))["class"].numpy(), want)


def test_linear_probe_is_unchanged():
    """hidden 0 is the linear probe: x·w + b, its initial w from (seed, 0)."""
    p = probe.Probe(dim=4, classes=3)
    np.testing.assert_array_equal(p.w.numpy(), tf.random.stateless_normal([4, 3], seed=[0, 0], stddev=0.01).numpy())
    assert [v.name for v in p.params] == ["w:0", "b:0"]
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_array_equal(p.predict(tf.constant(x))["class"].numpy(), (x @ p.w.numpy() + p.b.numpy()).argmax(1))
