"""A run's trained encoder, exported by `runner export --run-dir`, loads in
plain Python (tf.saved_model.load) and in ONNX Runtime, and gives the
features Go's encoder computes for the same images.

The run, the exports, the images and Go's features are made by the Go test
runner.TestTrainedEncoderExport, which runs this file with their paths in
INFOMAX_TRAINED_*; run alone (plain `pytest`), it is skipped.
"""

import json
import os

import numpy as np
import pytest

ENV = ("INFOMAX_TRAINED_SAVEDMODEL", "INFOMAX_TRAINED_ONNX", "INFOMAX_TRAINED_IMAGES", "INFOMAX_TRAINED_FEATURES")
pytestmark = pytest.mark.skipif(not all(os.environ.get(k) for k in ENV),
                                reason="run by the Go test runner.TestTrainedEncoderExport, which makes the run and exports")


def inputs():
    images = np.load(os.environ["INFOMAX_TRAINED_IMAGES"])
    want = np.load(os.environ["INFOMAX_TRAINED_FEATURES"])
    assert images.dtype == np.uint8 and images.ndim == 4 and len(images) == len(want) >= 1000
    return images, want


def check_close(got, want):
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cos.min() >= 0.99999, cos.min()


def test_savedmodel_in_plain_tensorflow():
    import tensorflow as tf

    images, want = inputs()
    folder = os.environ["INFOMAX_TRAINED_SAVEDMODEL"]
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["kind"] == "encoder" and list(images.shape[1:]) == manifest["input"]["shape"]
    serve = tf.saved_model.load(folder).signatures["serving_default"]
    got = np.concatenate([serve(images=tf.constant(images[i:i + 250]))["z_mean"].numpy() for i in range(0, len(images), 250)])
    check_close(got, want)


def test_conv_map_pools_to_the_runs_features():
    """encode_conv gives the last convolutional map before the global max
    pool: max-pooled over h×w and through the export's z_mean layer, it is
    the run's z_mean as Go's encoder computed it from the checkpoint."""
    import tensorflow as tf

    images, want = inputs()
    folder = os.environ["INFOMAX_TRAINED_SAVEDMODEL"]
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    h, w, c = manifest["feature_map"]
    assert manifest["signatures"]["encode_conv"]["outputs"]["conv"]["shape"] == [-1, h, w, c]
    loaded = tf.saved_model.load(folder)
    conv = loaded.signatures["encode_conv"](images=tf.constant(images[:250]))["conv"].numpy()
    assert conv.shape == (250, h, w, c) and conv.dtype == np.float32
    kernel, bias = loaded.weights["z_mean.kernel"].numpy(), loaded.weights["z_mean.bias"].numpy()
    check_close(conv.max(axis=(1, 2)) @ kernel + bias, want[:250])


def test_onnx_in_onnxruntime():
    import onnxruntime as ort

    images, want = inputs()
    folder = os.environ["INFOMAX_TRAINED_ONNX"]
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    session = ort.InferenceSession(os.path.join(folder, manifest["format_onnx"]["file"]), providers=["CPUExecutionProvider"])
    (got,) = session.run(["z_mean"], {"images": images})
    check_close(got, want)
