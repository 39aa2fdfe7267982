"""pyexport.flops counts what TensorFlow's own profiler counts for the same layers."""

import copy

import tensorflow as tf

from pyexport import flops, model

from .test_export import NCE, SMALL

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
