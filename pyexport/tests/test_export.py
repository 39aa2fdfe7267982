"""The exported SavedModel computes the seed's losses, trains, and matches its manifest."""

import copy
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from pyexport import spec as specmod
from pyexport.export import MANIFEST, SIGNATURES, save
from pyexport.module import InfoMax

from . import reference

SMALL = {
    "model": {"image_size": 28, "channels": 1, "blocks": 3, "z_dim": 16,
              "scaling": "unit_centered", "global_pairing": "seed",
              "augment": False, "augment_pad": 4, "color_jitter": False},
    "loss": {"alpha": 0.5, "beta": 1.5, "gamma": 0.01, "objective": "seed", "temperature": 0.1, "head_dim": 8},
    "optimizer": {"learning_rate": 1e-3},
    "seed": 7,
}
# The DIM paper's pairing, RGB input, the Tiny ImageNet scaling, a 4×4 map.
PAPER = copy.deepcopy(SMALL)
PAPER["model"].update(image_size=32, channels=3, scaling="symmetric", global_pairing="paper")

# The DIM paper's local objectives, the second with augmentation in the train step.
NCE = copy.deepcopy(SMALL)
NCE["loss"].update(objective="local_nce", beta=1.0, gamma=0.01)
JSD = copy.deepcopy(SMALL)
JSD["loss"].update(objective="local_jsd", beta=1.0)
JSD["model"].update(augment=True, color_jitter=True)

# The default objective with the fused batch norm (model.FusedBatchNorm).
FUSED = copy.deepcopy(NCE)
FUSED["model"].update(batch_norm="fused")

# The two-view objective on RGB input with colour jitter; its
# train_step_with_noise batch holds the views [view 1; view 2].
TWO_VIEW = copy.deepcopy(PAPER)
TWO_VIEW["model"].update(global_pairing="seed", color_jitter=True, batch_norm="fused")
TWO_VIEW["loss"].update(objective="two_view_nce", beta=1.0)

# And with the second scale: the code against the 8×8 map too (32 → 16 → 8 → 4).
TWO_SCALE = copy.deepcopy(TWO_VIEW)
TWO_SCALE["loss"].update(local_scales=2)

BATCH = 6


def images(spec, n=BATCH, seed=0):
    m = spec["model"]
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, m["image_size"], m["image_size"], m["channels"]), dtype=np.uint8)


@pytest.fixture(scope="module", params=[SMALL, PAPER, NCE, JSD, FUSED, TWO_VIEW, TWO_SCALE],
                ids=["seed-pairing", "paper-pairing", "local-nce", "local-jsd-augmented", "fused-bn", "two-view-nce",
                     "two-view-two-scales"])
def exported(request, tmp_path_factory):
    """A module after one training step (so BatchNorm's moving statistics are not
    their initial 0 and 1), exported; yields (spec, module, export dir)."""
    spec = copy.deepcopy(request.param)
    module = InfoMax(spec)
    module.train_step(tf.constant(images(spec, seed=1)))
    out = str(tmp_path_factory.mktemp("export") / "model")
    save(module, "test-hash", out)
    return spec, module, out


def test_loss_terms_match_numpy(exported):
    spec, module, out = exported
    x = images(spec)
    rng = np.random.default_rng(3)
    eps = rng.standard_normal((BATCH, spec["model"]["z_dim"])).astype(np.float32)
    perm_g = rng.permutation(BATCH).astype(np.int32)
    perm_l = rng.permutation(BATCH).astype(np.int32)
    want, _ = reference.losses(reference.weights_of(module), spec, x, eps, perm_g, perm_l)

    loaded = tf.saved_model.load(out)
    got = loaded.signatures["train_step_with_noise"](
        images=tf.constant(x), eps=tf.constant(eps),
        perm_global=tf.constant(perm_g), perm_local=tf.constant(perm_l))
    assert set(got) == set(want) | {"step", "learning_rate"}
    for term in want:
        np.testing.assert_allclose(float(got[term]), want[term], rtol=2e-4, atol=1e-5, err_msg=term)
    assert int(got["step"]) == 2  # one step before export, this one after


def test_encode_uses_moving_statistics(exported):
    spec, module, out = exported
    x = images(spec, seed=5)
    w = reference.weights_of(module)
    _, want_infer = reference.encoder(w["encoder"], spec, x, training=False)[:2]
    _, train_mode = reference.encoder(w["encoder"], spec, x, training=True)[:2]
    got = tf.saved_model.load(out).signatures["encode"](images=tf.constant(x))["z_mean"].numpy()
    assert got.shape == (BATCH, spec["model"]["z_dim"])
    np.testing.assert_allclose(got, want_infer, rtol=1e-3, atol=1e-4)
    # Batch statistics give other features than the moving averages.
    assert np.abs(got - train_mode).max() > 1e-2


def test_encode_conv_is_the_last_convolutional_map(exported):
    spec, module, out = exported
    x = images(spec, seed=6)
    _, want = reference.conv_maps(reference.weights_of(module)["encoder"], spec, x, training=False)
    got = tf.saved_model.load(out).signatures["encode_conv"](images=tf.constant(x))["conv"].numpy()
    size = spec["model"]["image_size"] >> spec["model"]["blocks"]
    assert got.shape == (BATCH, size, size, spec["model"]["z_dim"])
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_steps_on_a_fixed_batch_lower_the_loss(exported):
    spec, _, out = exported
    step = tf.saved_model.load(out).signatures["train_step"]
    x = tf.constant(images(spec, n=16, seed=9))
    losses = [float(step(images=x)["loss"]) for _ in range(200)]
    # Chance level is (alpha + beta)·ln 4 ≈ 2.77; the first steps sit above it.
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10]), losses[::10]


def test_train_step_draws_depend_only_on_seed_and_step(exported):
    spec, _, out = exported
    x = tf.constant(images(spec, seed=11))
    a = tf.saved_model.load(out).signatures["train_step"]
    b = tf.saved_model.load(out).signatures["train_step"]
    ra = [float(a(images=x)["loss"]) for _ in range(3)]
    rb = [float(b(images=x)["loss"]) for _ in range(3)]
    assert ra == rb


def test_manifest_names_the_saved_signatures(exported):
    spec, _, out = exported
    with open(os.path.join(out, MANIFEST)) as f:
        manifest = json.load(f)
    assert manifest["spec"] == spec
    assert manifest["config_hash"] == "test-hash"
    loaded = tf.saved_model.load(out)
    assert set(SIGNATURES) <= set(loaded.signatures.keys())
    for name in SIGNATURES:
        fn = loaded.signatures[name]
        sig = manifest["signatures"][name]
        _, kw = fn.structured_input_signature
        assert set(kw) == set(sig["inputs"])
        for key, t in kw.items():
            assert t.dtype.name == sig["inputs"][key]["dtype"]
            assert [-1 if d is None else d for d in t.shape.as_list()] == sig["inputs"][key]["shape"]
        assert set(fn.structured_outputs) == set(sig["outputs"])
    h, w, c = manifest["feature_map"]
    size = spec["model"]["image_size"] >> spec["model"]["blocks"]
    assert (h, w, c) == (size, size, spec["model"]["z_dim"])


def test_spec_validation_names_key_and_reason():
    cases = [
        ({"model": {"z_dim": 0}}, "model.z_dim = 0: must be positive"),
        ({"model": {"zdim": 4}}, "unknown key model.zdim"),
        ({"model": {"blocks": 6}}, "halves a 28-pixel image"),
        ({"loss": {"alpha": "x"}}, "loss.alpha = 'x': want a float"),
        ({"model": {"global_pairing": "both"}}, "model.global_pairing = 'both'"),
        ({"extra": 1}, "unknown key 'extra'"),
        ({"loss": {"objective": "mine"}}, "unknown objective: known are seed, local_nce, local_jsd, two_view_nce"),
        ({"loss": {"objective": "two_view_nce"}, "model": {"augment": True}}, "model.augment = true with loss.objective two_view_nce"),
        ({"model": {"augment": 1}}, "model.augment = 1: want a bool"),
        ({"loss": {"objective": "two_view_nce", "local_scales": 3}}, "loss.local_scales = 3: must be 1 (the map C) or 2"),
        ({"loss": {"local_scales": 2}}, "loss.local_scales = 2 adds a second map to a two-view objective's contrast (two_view_nce), "
                                        "and loss.objective is seed: set loss.local_scales: 1"),
        ({"loss": {"objective": "two_view_nce", "local_scales": 2}, "model": {"blocks": 1}},
         "loss.local_scales = 2 needs the map of the block before the last, and model.blocks is 1"),
    ]
    for change, message in cases:
        spec = copy.deepcopy(SMALL)
        for section, values in change.items():
            if isinstance(values, dict):
                spec[section].update(values)
            else:
                spec[section] = values
        with pytest.raises(specmod.SpecError, match=None) as e:
            specmod.validate(spec)
        assert message in str(e.value), (change, str(e.value))


def test_go_schema_is_current():
    """config/schema.json, which Go's validation embeds, lists what the
    exporter knows: model.OBJECTIVES, SCALINGS, GLOBAL_PAIRINGS."""
    from pyexport import schema

    with open(schema.PATH) as f:
        on_disk = f.read()
    assert on_disk == schema.render(), "config/schema.json is stale: run `.venv/bin/python -m pyexport.schema`"
    assert json.loads(on_disk)["objectives"] == list(specmod.objective_names())


def test_fused_batch_norm_is_keras_batch_norm():
    """model.FusedBatchNorm normalises as Keras's BatchNormalization does, in
    training (batch statistics) and inference (moving statistics), and moves
    its statistics the same way (momentum 0.99, the biased batch variance,
    ε 1e-3), over several updates; the forward pass also equals NumPy's."""
    import keras
    from pyexport.model import FusedBatchNorm

    rng = np.random.default_rng(5)
    fused, ref = FusedBatchNorm(), keras.layers.BatchNormalization()
    shape = (8, 5, 5, 6)
    fused.build(shape)
    ref.build(shape)
    gamma, beta = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    for layer in (fused, ref):
        layer.set_weights([gamma, beta, np.zeros(6, np.float32), np.ones(6, np.float32)])
    for step in range(3):
        x = (rng.normal(size=shape) * 3 + 1).astype(np.float32)
        y_f = np.asarray(fused(x, training=True))
        y_r = np.asarray(ref(x, training=True))
        np.testing.assert_allclose(y_f, y_r, atol=2e-5, err_msg="training output, step %d" % step)
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
        np.testing.assert_allclose(y_f, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, atol=2e-5)
        for w_f, w_r, what in zip(fused.get_weights(), ref.get_weights(), ("gamma", "beta", "moving mean", "moving variance")):
            np.testing.assert_allclose(w_f, w_r, rtol=1e-5, atol=1e-6, err_msg="%s after step %d" % (what, step))
    x = rng.normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(np.asarray(fused(x, training=False)), np.asarray(ref(x, training=False)), atol=2e-5)
    mm, mv = fused.get_weights()[2:]
    np.testing.assert_allclose(np.asarray(fused(x, training=False)), (x - mm) / np.sqrt(mv + 1e-3) * gamma + beta, atol=2e-5)


def test_bfloat16_computes_the_encoder_in_bfloat16_and_the_losses_in_float32():
    """model.precision bfloat16: the convolution blocks compute in bfloat16,
    the variables, batch-norm statistics, the code and the losses stay
    float32; from the same seed the weights are float32's and every loss
    term is within 2% of float32's (bfloat16 rounds to 2^-9), and a
    training step keeps them finite."""
    from pyexport import model

    f32, bf = copy.deepcopy(FUSED), copy.deepcopy(FUSED)
    bf["model"]["precision"] = "bfloat16"
    a, b = InfoMax(f32), InfoMax(bf)
    for va, vb in zip(a.weights.values(), b.weights.values()):
        assert vb.dtype == va.dtype and vb.dtype in (tf.float32, tf.int64)  # float32, and Adam's step count
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    dtypes = {type(l).__name__: l.compute_dtype for l in b.encoder.layers}
    assert dtypes["Conv2D"] == "bfloat16" and dtypes["FusedBatchNorm"] == "bfloat16" and dtypes["Dense"] == "float32"
    x = model.scale_images(tf.constant(images(bf)), bf)
    fm, z_mean, _ = b.encoder(x, training=False)
    assert fm.dtype == tf.float32 and z_mean.dtype == tf.float32
    rng = np.random.default_rng(4)
    eps = rng.normal(size=(BATCH, 16)).astype(np.float32)
    perm = np.roll(np.arange(BATCH, dtype=np.int32), 1)
    la = a.train_step_with_noise(tf.constant(images(f32)), eps, perm, perm)
    lb = b.train_step_with_noise(tf.constant(images(bf)), eps, perm, perm)
    for key in ("loss", "local", "prior"):
        va, vb = float(la[key]), float(lb[key])
        assert np.isfinite(vb) and abs(va - vb) <= 0.02 * abs(va), (key, va, vb)


@pytest.mark.parametrize("base", [FUSED, SMALL, TWO_VIEW], ids=["local_nce", "seed", "two_view_nce"])
def test_bfloat16_runs_the_heads_in_bfloat16_with_float32_outputs(base):
    """model.precision bfloat16 also runs the heads' and discriminators'
    hidden Dense layers in bfloat16 (Keras's mixed policy: bfloat16
    products, float32 accumulation and variables): their outputs, the
    discriminators' sigmoid layer, scores and losses stay float32. The
    variables and their checkpoint keys are float32's, so a checkpoint moves
    between the precisions; every loss term is within 3% of float32's from
    the same seed."""
    f32, bf = copy.deepcopy(base), copy.deepcopy(base)
    bf["model"]["precision"] = "bfloat16"
    # Each export runs in a process of its own: Keras's layer names start
    # from the same counters for both.
    tf.keras.backend.clear_session()
    a = InfoMax(f32)
    tf.keras.backend.clear_session()
    b = InfoMax(bf)
    assert list(a.weights) == list(b.weights)  # the checkpoint's keys
    for va, vb in zip(a.weights.values(), b.weights.values()):
        assert vb.dtype == va.dtype and vb.shape == va.shape
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    heads = [n for n in b.nets if n != "encoder"]
    assert heads
    for name in heads:
        dense = [l for l in b.nets[name].layers if isinstance(l, tf.keras.layers.Dense)]
        assert all(l.compute_dtype == "bfloat16" for l in dense if l.activation.__name__ != "sigmoid"), name
        assert all(l.compute_dtype == "float32" for l in dense if l.activation.__name__ == "sigmoid"), name
        x = tf.zeros([2, *b.nets[name].inputs[0].shape[1:]])
        assert b.nets[name](x).dtype == tf.float32, name
    rng = np.random.default_rng(5)
    n = BATCH
    eps = rng.normal(size=(n, base["model"]["z_dim"])).astype(np.float32)
    perm = np.roll(np.arange(n, dtype=np.int32), 1)
    la = a.train_step_with_noise(tf.constant(images(f32)), eps, perm, perm)
    lb = b.train_step_with_noise(tf.constant(images(bf)), eps, perm, perm)
    for key in la:
        if key in ("step", "learning_rate"):
            continue
        va, vb = float(la[key]), float(lb[key])
        assert np.isfinite(vb) and abs(va - vb) <= 0.03 * abs(va) + 1e-4, (key, va, vb)


def test_export_carries_the_probe_program(exported, tmp_path):
    """The export holds probe/probe.py and what it imports, and the copy runs
    as a plain file from an unrelated folder (no pyexport package on the
    path): what a run folder's model/ needs to be evaluated without this
    source tree."""
    import subprocess
    import sys

    _, _, out = exported
    program = os.path.join(out, "probe", "probe.py")
    for name in ("probe.py", "atomic.py"):
        here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name)
        with open(os.path.join(out, "probe", name), "rb") as a, open(here, "rb") as b:
            assert a.read() == b.read(), name
    dest = tmp_path / "probe-4x3"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    subprocess.run([sys.executable, program, "--dim", "4", "--classes", "3", "--out", str(dest)],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    assert (dest / "probe.json").exists() and (dest / "saved_model.pb").exists()
