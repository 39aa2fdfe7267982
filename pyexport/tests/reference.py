"""An independent NumPy forward pass of the seed's model, for the tests.

It reads the weights layer by layer from the Keras models and recomputes every
figure with plain NumPy (float64): convolution by sliding windows, BatchNorm
with batch or moving statistics, pooling, the discriminators and the losses.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pyexport.spec import SCALINGS


def conv2d_same(x, kernel, bias):
    """3×3 'same' cross-correlation, stride 1: x [N,H,W,Cin], kernel [3,3,Cin,Cout]."""
    kh, kw = kernel.shape[:2]
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))  # [N,H,W,Cin,kh,kw]
    return np.einsum("nhwcij,ijco->nhwo", win, kernel) + bias


def batchnorm(x, gamma, beta, moving_mean, moving_var, training, eps=1e-3):
    if training:
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    else:
        mean, var = moving_mean, moving_var
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def leaky_relu(x, slope=0.2):
    return np.where(x >= 0, x, slope * x)


def maxpool2(x):
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, : 2 * h2, : 2 * w2].reshape(n, h2, 2, w2, 2, c).max(axis=(2, 4))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def encoder(weights, spec, images, training):
    """weights: list of (kind, arrays) in layer order. Returns (C, z_mean, z_log_var)."""
    feature_map, x = conv_maps(weights, spec, images, training)
    x = x.max(axis=(1, 2))
    (wm, bm), (wv, bv) = [w for k, w in weights if k == "dense"]
    return feature_map, x @ wm + bm, x @ wv + bv


def conv_maps(weights, spec, images, training):
    """(C, the last convolutional feature map before the global max pool)."""
    blocks, last = block_maps(weights, spec, images, training)
    return blocks[-1], last


def block_maps(weights, spec, images, training):
    """(every block's output map, first to last (C), the last convolutional map)."""
    scale, offset = SCALINGS[spec["model"]["scaling"]]
    x = images.astype(np.float64) * scale + offset
    convs = [w for k, w in weights if k == "conv"]
    bns = [w for k, w in weights if k == "bn"]
    n = spec["model"]["blocks"]
    blocks = []
    for i in range(n):
        x = maxpool2(leaky_relu(batchnorm(conv2d_same(x, *convs[i]), *bns[i], training)))
        blocks.append(x)
    for i in range(n, n + 2):
        x = leaky_relu(batchnorm(conv2d_same(x, *convs[i]), *bns[i], training))
    return blocks, x


def discriminator(weights, x):
    for i, (w, b) in enumerate(weights):
        x = x @ w + b
        x = np.maximum(x, 0) if i < len(weights) - 1 else sigmoid(x)
    return x


def info_loss(pos, neg):
    return -np.mean(np.log(pos + 1e-6) + np.log(1 - neg + 1e-6))


def mlp(weights, x):
    """Dense + relu layers, the last one linear (the projection heads)."""
    for i, (w, b) in enumerate(weights):
        x = x @ w + b
        if i < len(weights) - 1:
            x = np.maximum(x, 0)
    return x


def log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def softplus(x):
    return np.logaddexp(0, x)


def nce(g, l, temperature):
    """InfoNCE by loops: location p of image j against every code g[i]."""
    n, hw = l.shape[:2]
    total = 0.0
    for j in range(n):
        for p in range(hw):
            logits = np.array([g[i] @ l[j, p] for i in range(n)]) / temperature
            total += -log_softmax(logits, 0)[j]
    return total / (n * hw)


def local_objective(w, spec, feature_map, z, head="local_head"):
    """local_nce, two_view_nce or local_jsd by loops over images and locations."""
    g = mlp(w["global_head"], z)
    n, h, wd, _ = feature_map.shape
    l = mlp(w[head], feature_map).reshape(n, h * wd, -1)
    objective, t = spec["loss"]["objective"], spec["loss"]["temperature"]
    if objective in ("local_nce", "two_view_nce"):
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        l = l / np.linalg.norm(l, axis=2, keepdims=True)
        if objective == "local_nce":
            return nce(g, l, t)
        b = n // 2  # the batch is [view 1; view 2]: each view's code against the other's locations
        return 0.5 * (nce(g[:b], l[b:], t) + nce(g[b:], l[:b], t))
    pos, neg = [], []
    for j in range(n):
        for p in range(h * wd):
            for i in range(n):
                t = g[i] @ l[j, p]
                (pos if i == j else neg).append(t)
    return softplus(-np.array(pos)).mean() + softplus(np.array(neg)).mean()


def losses(w, spec, images, eps, perm_global, perm_local, training=True):
    """Every loss term for fixed weights and draws (w from weights_of)."""
    feature_map, z_mean, z_log_var = encoder(w["encoder"], spec, images, training)
    z = z_mean + np.exp(z_log_var / 2) * eps
    lw = spec["loss"]
    if lw["objective"] != "seed":
        local = local_objective(w, spec, feature_map, z)
        if lw.get("local_scales", 1) == 2:  # and the block before C's map, through its own head
            prev = block_maps(w["encoder"], spec, images, training)[0][-2]
            local = 0.5 * (local + local_objective(w, spec, prev, z, head="local_head_2"))
        out = {"local": local,
               "prior": -0.5 * np.mean(1 + z_log_var - z_mean**2 - np.exp(z_log_var))}
        out["loss"] = lw["beta"] * out["local"] + lw["gamma"] * out["prior"]
        return out, z_mean
    if spec["model"]["global_pairing"] == "seed":
        g_pos = np.concatenate([z, z], -1)
        g_neg = np.concatenate([z, z[perm_global]], -1)
    else:
        flat = feature_map.reshape(len(z), -1)
        g_pos = np.concatenate([flat, z], -1)
        g_neg = np.concatenate([flat[perm_global], z], -1)
    n, h, wd, _ = feature_map.shape
    z_map = np.broadcast_to(z[:, None, None, :], (n, h, wd, z.shape[1]))
    l_pos = np.concatenate([z_map, feature_map], -1)
    l_neg = np.concatenate([z_map, feature_map[perm_local]], -1)
    out = {
        "global": info_loss(discriminator(w["global"], g_pos), discriminator(w["global"], g_neg)),
        "local": info_loss(discriminator(w["local"], l_pos), discriminator(w["local"], l_neg)),
        "prior": -0.5 * np.mean(1 + z_log_var - z_mean**2 - np.exp(z_log_var)),
    }
    lw = spec["loss"]
    out["loss"] = lw["alpha"] * out["global"] + lw["beta"] * out["local"] + lw["gamma"] * out["prior"]
    return out, z_mean


def weights_of(module):
    """Read the weights of an InfoMax module into the form the functions above take."""
    kinds = {"Conv2D": "conv", "BatchNormalization": "bn", "FusedBatchNorm": "bn", "Dense": "dense"}
    enc = []
    for layer in module.encoder.layers:
        kind = kinds.get(type(layer).__name__)
        if kind:
            arrays = [np.asarray(v, dtype=np.float64) for v in layer.get_weights()]
            enc.append((kind, arrays))

    def dense(model):
        return [tuple(np.asarray(v, np.float64) for v in layer.get_weights()) for layer in model.layers]

    out = {"encoder": enc}
    for key, name in (("global", "global_disc"), ("local", "local_disc"), ("global_head", "global_head"), ("local_head", "local_head"),
                      ("local_head_2", "local_head_2")):
        if name in module.nets:
            out[key] = dense(module.nets[name])
    return out
