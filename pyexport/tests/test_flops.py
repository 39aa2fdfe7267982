"""pyexport.flops counts what TensorFlow's own profiler counts for the same layers."""

import copy

import tensorflow as tf

from pyexport import flops, model

from .test_export import NCE, SMALL, TWO_SCALE, TWO_VIEW

CIFAR_SEED = copy.deepcopy(SMALL)
CIFAR_SEED["model"].update(image_size=32, channels=3, z_dim=256)
CIFAR_NCE = copy.deepcopy(NCE)
CIFAR_NCE["model"].update(image_size=32, channels=3, z_dim=256)
CIFAR_NCE["loss"].update(head_dim=64)


def profiled_flops(fn, shape):
    """Conv2D and MatMul FLOPs of fn's graph, by TensorFlow's profiler (its registered op statistics)."""
    graph = tf.function(fn).get_concrete_function(tf.TensorSpec(shape, tf.float32)).graph
    products = {op.name for op in graph.get_operations() if op.type in ("Conv2D", "MatMul", "BatchMatMulV2")}
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.compat.v1.profiler.profile(graph, cmd="scope", options=opts)

    def walk(node):
        return (node.float_ops if node.name in products else 0) + sum(walk(c) for c in node.children)

    return walk(prof)


def test_encoder_and_discriminator_flops_match_tensorflows_profiler():
    for spec in (SMALL, CIFAR_SEED, CIFAR_NCE):
        m = spec["model"]
        encoder = model.build_encoder(spec)
        ours = sum(f for _, f in flops.layer_flops(encoder))
        theirs = profiled_flops(lambda x: encoder(x, training=False), [1, m["image_size"], m["image_size"], m["channels"]])
        assert ours == theirs, (spec["loss"]["objective"], ours, theirs)
        _, needs, _ = model.objective(spec)
        for name in needs:
            net = model.NETS[name](spec, encoder)
            shape = [1, *net.inputs[0].shape[1:]]
            assert sum(f for _, f in flops.layer_flops(net)) == profiled_flops(lambda x: net(x), shape), name


def test_training_flops_of_the_seeds_cifar10_recipe():
    f = flops.training_flops(CIFAR_SEED, 64)
    # The encoder dominates; the discriminators run twice each (positive and
    # shuffled pairs); training is 3× forward less the first convolution's
    # input gradient.
    assert f["forward_parts"]["encoder"] > f["forward_parts"]["local_disc"] > f["forward_parts"]["global_disc"]
    assert f["training"] == 3 * f["forward"] - f["first_conv"]
    assert 100e6 < f["forward"] < 200e6, f


def test_a_two_view_image_costs_two_local_nce_images():
    # two_view_nce encodes both views of each image and scores each view's
    # code against the other view's B maps, both ways: per image, twice
    # local_nce's work on the same model (docs/results.md measured a
    # two-view step at 0.49 of local_nce's images/s).
    nce = copy.deepcopy(TWO_VIEW)
    nce["loss"].update(objective="local_nce")
    one, two = flops.training_flops(nce, 64), flops.training_flops(TWO_VIEW, 64)
    assert (one["views"], two["views"]) == (1, 2)
    assert two["forward_parts"] == {k: 2 * v for k, v in one["forward_parts"].items()}
    assert (two["training"], two["first_conv"]) == (2 * one["training"], 2 * one["first_conv"])
    # The scores of one view's code against the other view's 4×4 maps, both ways.
    assert two["forward_parts"]["scores"] == 2 * (2 * 4 * 4 * 64 * TWO_VIEW["loss"]["head_dim"])


def test_the_second_scale_adds_its_head_and_its_scores():
    one, two = flops.training_flops(TWO_VIEW, 64), flops.training_flops(TWO_SCALE, 64)
    encoder = model.build_encoder(TWO_SCALE)
    head_2 = sum(f for _, f in flops.layer_flops(model.NETS["local_head_2"](TWO_SCALE, encoder)))
    assert two["forward_parts"]["local_head_2"] == 2 * head_2
    # The 8×8 map's scores next to the 4×4 map's.
    d = TWO_SCALE["loss"]["head_dim"]
    assert two["forward_parts"]["scores"] == 2 * 2 * (4 * 4 + 8 * 8) * 64 * d
    assert two["forward"] == one["forward"] + 2 * head_2 + 2 * 2 * 8 * 8 * 64 * d
