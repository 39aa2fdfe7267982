"""pyexport.model: the seed's Deep InfoMax network and losses, in the seed's order.

Encoder → reparameterisation → shuffle → discriminators → losses. Everything
here is a pure function of the spec and of the random draws passed in (ε and the
two permutations), so tests can feed fixed draws and compare with NumPy.
"""

import math

import keras
import tensorflow as tf
from keras import layers

from .spec import OBJECTIVE_NAMES, SCALINGS, TWO_VIEW


def scale_images(images, spec):
    """uint8 [N,H,W,C] → float32, scaled as the config says (x * scale + offset)."""
    scale, offset = SCALINGS[spec["model"]["scaling"]]
    return tf.cast(images, tf.float32) * scale + offset


class FusedBatchNorm(layers.Layer):
    """Keras's BatchNormalization (momentum 0.99, ε 1e-3, moving statistics
    from the batch's mean and biased variance in training, used in inference)
    as one op, FusedBatchNormV3, instead of Keras 3's dozen elementwise ops
    (17% of a float32 training step). Its statistics, scale and offset stay
    float32 whatever the input's type (the op's design: a bfloat16 input is
    normalised in float32). Its weights are Keras's, in Keras's order."""

    def __init__(self, momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon = momentum, epsilon

    def build(self, input_shape):
        # autocast off: under a mixed policy the op wants its statistics,
        # scale and offset in float32 while x is bfloat16.
        c = (input_shape[-1],)
        self.gamma = self.add_weight(shape=c, initializer="ones", name="gamma", autocast=False)
        self.beta = self.add_weight(shape=c, initializer="zeros", name="beta", autocast=False)
        self.moving_mean = self.add_weight(shape=c, initializer="zeros", trainable=False, name="moving_mean", autocast=False)
        self.moving_variance = self.add_weight(shape=c, initializer="ones", trainable=False, name="moving_variance", autocast=False)

    def call(self, x, training=False):
        bn = tf.compat.v1.nn.fused_batch_norm
        if not training:
            y, _, _ = bn(x, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                         epsilon=self.epsilon, is_training=False)
            return y
        y, mean, var = bn(x, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        # The op returns the batch variance with Bessel's correction, n/(n-1);
        # Keras's moving variance follows the biased one, which normalises.
        n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
        var = var * (n - 1) / n
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1 - m))
        self.moving_variance.assign(self.moving_variance * m + var * (1 - m))
        return y


def batch_norm(spec, dtype=None):
    """The batch normalisation layer model.batch_norm names: keras (the
    seed's BatchNormalization) or fused (FusedBatchNorm, the same
    normalisation as one op)."""
    if spec["model"].get("batch_norm", "keras") == "fused":
        return FusedBatchNorm(dtype=dtype)
    return layers.BatchNormalization(dtype=dtype)


def encoder_policy(spec):
    """The dtype policy of the encoder's convolution blocks and of the
    heads' and discriminators' hidden Dense layers: None (float32), or for
    model.precision bfloat16 Keras's mixed_bfloat16 (bfloat16 products with
    float32 accumulation, float32 variables). The batch norm keeps its
    statistics, scale and offset in float32 either way; the code's Dense
    layers, the feature map handed on, every head's output (cast back,
    head_output), the discriminators' sigmoid layer, the scores and the
    losses stay float32."""
    return "mixed_bfloat16" if spec["model"].get("precision", "float32") == "bfloat16" else None


def head_output(dt):
    """The layers that end a head: none in float32; under mixed_bfloat16 a
    cast back to float32 (no weights, so the checkpoint's keys stay
    float32's), so that normalisation, scores and losses see float32."""
    return [layers.Identity(dtype="float32")] if dt else []


LAST_CONV = "last_conv"  # the layer whose output is the encoder's last convolutional feature map
PREV_MAP = "prev_map"  # the layer whose output is the map of the block before the last (twice C's side)


def conv_features(encoder):
    """The encoder's last convolutional feature map (h×w×z_dim, before the
    global max pool), as a model of the same layers: no weights of its own."""
    x = encoder.get_layer(LAST_CONV).output
    if x.dtype != "float32":
        x = layers.Identity(dtype="float32", name="last_conv_float32")(x)
    return keras.Model(encoder.inputs, x, name="conv_features")


def encoder_scales(encoder):
    """The encoder with the map of the block before the last in front of its
    outputs: image → (C', C, z_mean, z_log_var), C' twice C's side and half
    its depth (the 8×8 map beside the 4×4 on Tiny ImageNet). The same layers:
    no weights of its own. For loss.local_scales 2."""
    x = encoder.get_layer(PREV_MAP).output
    if x.dtype != "float32":
        x = layers.Identity(dtype="float32", name="prev_map_float32")(x)
    return keras.Model(encoder.inputs, [x, *encoder.outputs], name="encoder_scales")


def map_shape(encoder):
    """(h, w, channels) of the local feature map C, read off the built encoder."""
    return tuple(int(d) for d in encoder.outputs[0].shape[1:])


def prev_map_shape(encoder):
    """(h, w, channels) of the map encoder_scales adds (block n−1's output),
    read off the built encoder."""
    return tuple(int(d) for d in encoder.get_layer(PREV_MAP).output.shape[1:])


def build_encoder(spec):
    """Image → (C, z_mean, z_log_var).

    n blocks of Conv 3×3 → BN → LeakyReLU(0.2) → MaxPool 2×2 with z_dim/2^(n-1-i)
    filters give the local feature map C; two more Conv z_dim → BN → LeakyReLU and
    a global max pool give the code, read out by two Dense layers.
    """
    m = spec["model"]
    z_dim, n = m["z_dim"], m["blocks"]
    dt = encoder_policy(spec)
    x_in = keras.Input((m["image_size"], m["image_size"], m["channels"]), name="x")
    x = x_in
    for i in range(n):
        x = layers.Conv2D(max(1, z_dim >> (n - 1 - i)), 3, padding="same", dtype=dt)(x)
        x = batch_norm(spec, dt)(x)
        x = layers.LeakyReLU(negative_slope=0.2, dtype=dt)(x)
        x = layers.MaxPooling2D(2, dtype=dt, name=PREV_MAP if i == n - 2 else None)(x)
    feature_map = x  # C: the local features, h×w×z_dim
    if dt:
        feature_map = layers.Identity(dtype="float32", name="feature_map_float32")(x)
    for i in range(2):
        x = layers.Conv2D(z_dim, 3, padding="same", dtype=dt)(x)
        x = batch_norm(spec, dt)(x)
        # The last one's output is the "conv" feature of the Deep InfoMax
        # paper's Table 1 (the encode_conv signature).
        x = layers.LeakyReLU(negative_slope=0.2, dtype=dt, name=LAST_CONV if i == 1 else None)(x)
    x = layers.GlobalMaxPooling2D(dtype=dt)(x)
    z_mean = layers.Dense(z_dim, name="z_mean")(x)
    z_log_var = layers.Dense(z_dim, name="z_log_var")(x)
    return keras.Model(x_in, [feature_map, z_mean, z_log_var], name="encoder")


def build_discriminator(input_shape, z_dim, name, dt=None):
    """3 × Dense(z_dim, relu) → Dense(1, sigmoid). Dense acts on the last axis, so
    with input_shape (h, w, d) it scores every position of a map: the per-location MLP.
    dt: the hidden layers' policy (encoder_policy); the sigmoid layer is float32."""
    return keras.Sequential(
        [keras.Input(input_shape)]
        + [layers.Dense(z_dim, activation="relu", dtype=dt) for _ in range(3)]
        + [layers.Dense(1, activation="sigmoid", dtype="float32" if dt else None)],
        name=name,
    )


def global_input_dim(spec, map_shape):
    """Width of the global discriminator's input for the chosen pairing."""
    z_dim = spec["model"]["z_dim"]
    if spec["model"]["global_pairing"] == "seed":
        return 2 * z_dim
    h, w, c = map_shape
    return h * w * c + z_dim


def sample_z(z_mean, z_log_var, eps):
    """Reparameterisation trick: z = z_mean + exp(z_log_var/2)·ε."""
    return z_mean + tf.exp(z_log_var / 2) * eps


def prior_kl(z_mean, z_log_var):
    """KL to N(0, I), averaged over batch and dimensions as in the seed."""
    return -0.5 * tf.reduce_mean(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var))


def shuffle(x, perm):
    """Negatives: the batch reordered by perm (the seed's `shuffling`)."""
    return tf.gather(x, perm)


def info_loss(pos_scores, neg_scores):
    """Jensen-Shannon MI bound as binary cross-entropy (the seed's form, with its 1e-6)."""
    return -tf.reduce_mean(tf.math.log(pos_scores + 1e-6) + tf.math.log(1 - neg_scores + 1e-6))


def global_pairs(spec, z, feature_map, perm):
    """(positive, negative) inputs of the global discriminator."""
    if spec["model"]["global_pairing"] == "seed":
        return tf.concat([z, z], -1), tf.concat([z, shuffle(z, perm)], -1)
    flat = tf.reshape(feature_map, [tf.shape(feature_map)[0], -1])
    return tf.concat([flat, z], -1), tf.concat([shuffle(flat, perm), z], -1)


def local_pairs(z, feature_map, perm):
    """(positive, negative): z tiled over the h×w map, concatenated with C or shuffled C."""
    s = tf.shape(feature_map)
    z_map = tf.tile(z[:, None, None, :], [1, s[1], s[2], 1])
    return tf.concat([z_map, feature_map], -1), tf.concat([z_map, shuffle(feature_map, perm)], -1)


def build_global_disc(spec, encoder):
    """The seed's global discriminator, on the pairs global_pairs makes."""
    return build_discriminator((global_input_dim(spec, map_shape(encoder)),), spec["model"]["z_dim"],
                               "global_discriminator", encoder_policy(spec))


def build_local_disc(spec, encoder):
    """The seed's local discriminator, on [z at every location, C]."""
    z_dim = spec["model"]["z_dim"]
    h, w, c = map_shape(encoder)
    return build_discriminator((h, w, z_dim + c), z_dim, "local_discriminator", encoder_policy(spec))


def build_local_head(spec, encoder):
    """The DIM paper's projection head on every location of C, to head_dim."""
    return projection_head(spec, map_shape(encoder), "local_head")


def build_local_head_2(spec, encoder):
    """The second scale's projection head (loss.local_scales 2), on every
    location of the map before C (prev_map_shape), to head_dim."""
    return projection_head(spec, prev_map_shape(encoder), "local_head_2")


def build_global_head(spec, encoder):
    """The DIM paper's projection head on the code z, to head_dim."""
    return projection_head(spec, (spec["model"]["z_dim"],), "global_head")


def projection_head(spec, input_shape, name):
    """Dense(head_dim, relu) → Dense(head_dim) on the last axis, in the
    encoder's policy (bfloat16 products for model.precision bfloat16), its
    output float32."""
    d, dt = spec["loss"]["head_dim"], encoder_policy(spec)
    return keras.Sequential([keras.Input(input_shape), layers.Dense(d, activation="relu", dtype=dt), layers.Dense(d, dtype=dt)]
                            + head_output(dt), name=name)


# name → builder(spec, encoder) of every network besides the encoder that an
# objective may name in OBJECTIVES; they are built in the order it names them
# (the order draws their initial weights from the seeded generator).
NETS = {
    "global_disc": build_global_disc,
    "local_disc": build_local_disc,
    "local_head": build_local_head,
    "global_head": build_global_head,
    "local_head_2": build_local_head_2,
}


def augment(x, spec, seed):
    """Random crop after zero padding (0 is mid-grey after centring), horizontal
    flip and, optionally, brightness/contrast jitter; per image, from stateless
    draws seeded by seed. x is the scaled float batch."""
    fold = tf.random.experimental.stateless_fold_in
    m = spec["model"]
    pad = m["augment_pad"]
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    if pad > 0:
        xp = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        oy = tf.random.stateless_uniform([b], fold(seed, 0), 0, 2 * pad + 1, dtype=tf.int32)
        ox = tf.random.stateless_uniform([b], fold(seed, 1), 0, 2 * pad + 1, dtype=tf.int32)
        rows = oy[:, None] + tf.range(h)[None, :]
        cols = ox[:, None] + tf.range(w)[None, :]
        x = tf.gather(tf.gather(xp, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([b], fold(seed, 2)) < 0.5
    x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)
    if m["color_jitter"]:
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        contrast = tf.random.stateless_uniform([b, 1, 1, 1], fold(seed, 3), 0.6, 1.4)
        brightness = tf.random.stateless_uniform([b, 1, 1, 1], fold(seed, 4), -0.2, 0.2)
        x = (x - mean) * contrast + mean + brightness
    return x


# AMDIM's ImageNet crop: RandomResizedCrop(scale=(0.3, 1.0), ratio=(0.7, 1.4)).
CROP_RATIO = (0.7, 1.4)


def random_crops(x, min_area, seed):
    """AMDIM's random resized crop of every image of x [B, H, W, C], per image
    from stateless draws seeded by seed: an area fraction uniform in
    [min_area, 1], an aspect ratio (width / height) log-uniform in
    CROP_RATIO, the box's sides clipped to the image's (torchvision retries a
    draw that does not fit; clipping keeps one draw per image) and its corner
    uniform among the places where it fits; the box resized back to H × W,
    bilinearly (AMDIM: bicubic, which crop_and_resize does not offer)."""
    fold = tf.random.experimental.stateless_fold_in
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    area = tf.random.stateless_uniform([b], fold(seed, 0), min_area, 1.0)
    lo, hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    ratio = tf.exp(tf.random.stateless_uniform([b], fold(seed, 1), lo, hi))
    ch = tf.minimum(tf.sqrt(area / ratio), 1.0)  # fractions of the side
    cw = tf.minimum(tf.sqrt(area * ratio), 1.0)
    y0 = tf.random.stateless_uniform([b], fold(seed, 2)) * (1.0 - ch)
    x0 = tf.random.stateless_uniform([b], fold(seed, 3)) * (1.0 - cw)
    boxes = tf.stack([y0, x0, y0 + ch, x0 + cw], axis=1)  # crop_and_resize: 0 and 1 are the edge pixels' centres
    return tf.image.crop_and_resize(x, boxes, tf.range(b), tf.stack([h, w]), method="bilinear")


def luminance(x):
    """ITU-R 601 luma of an RGB batch in [0, 1], keeping a channel axis."""
    return tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def two_views(images, spec, seed):
    """Two augmented views of a uint8 batch, stacked [view 1; view 2] and
    scaled as the config says: AMDIM's CIFAR augmentation. One horizontal
    flip shared by both views; then per view and per image, from stateless
    draws seeded by seed: a random translation of up to model.augment_pad
    pixels (reflect padding, p 0.8), or with model.crop_min_area > 0
    instead AMDIM's ImageNet crop (random_crops); then, for RGB input with
    model.color_jitter, colour jitter (brightness, contrast and saturation
    factors in [0.6, 1.4], hue shift in [-0.1, 0.1], in that order; p 0.8)
    and greyscale (p 0.25). Grey input gets the flip and the translation or
    crop."""
    fold = tf.random.experimental.stateless_fold_in
    m = spec["model"]
    pad = m["augment_pad"]
    crop = m.get("crop_min_area", 0.0)  # optional (spec.OPTIONAL): off
    x = tf.cast(images, tf.float32) / 255.0  # the colour ops work in [0, 1]
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    flip = tf.random.stateless_uniform([b], fold(seed, 0)) < 0.5
    x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)
    colour = m["color_jitter"] and m["channels"] == 3

    def view(v):
        vs = fold(seed, v)
        u = lambda k, shape=None, lo=0.0, hi=1.0: tf.random.stateless_uniform(  # noqa: E731
            [b] if shape is None else shape, fold(vs, k), lo, hi)
        y = x
        if pad > 0:
            yp = tf.pad(y, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
            move = u(0) < 0.8
            oy = tf.where(move, tf.random.stateless_uniform([b], fold(vs, 1), 0, 2 * pad + 1, dtype=tf.int32), pad)
            ox = tf.where(move, tf.random.stateless_uniform([b], fold(vs, 2), 0, 2 * pad + 1, dtype=tf.int32), pad)
            rows = oy[:, None] + tf.range(h)[None, :]
            cols = ox[:, None] + tf.range(w)[None, :]
            y = tf.gather(tf.gather(yp, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        if crop > 0:
            y = random_crops(y, crop, fold(vs, 9))
        if colour:
            on = tf.cast(u(3) < 0.8, tf.float32)[:, None, None, None]
            factor = lambda k: 1.0 + on * (u(k, [b, 1, 1, 1], 0.6, 1.4) - 1.0)  # noqa: E731
            y = tf.clip_by_value(y * factor(4), 0.0, 1.0)  # brightness
            mean = tf.reduce_mean(luminance(y), axis=[1, 2, 3], keepdims=True)
            y = tf.clip_by_value((y - mean) * factor(5) + mean, 0.0, 1.0)  # contrast
            grey = luminance(y)
            y = tf.clip_by_value((y - grey) * factor(6) + grey, 0.0, 1.0)  # saturation
            hsv = tf.image.rgb_to_hsv(y)
            shift = on * u(7, [b, 1, 1, 1], -0.1, 0.1)
            hue = tf.math.floormod(hsv[..., :1] + shift, 1.0)
            y = tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], -1))
            to_grey = (u(8) < 0.25)[:, None, None, None]
            y = tf.where(to_grey, tf.tile(luminance(y), [1, 1, 1, 3]), y)
        return y

    scale, offset = SCALINGS[m["scaling"]]
    return tf.concat([view(1), view(2)], 0) * (255.0 * scale) + offset


# ---- objectives: each returns its terms (without the weighted total) ----


def seed_objective(nets, spec, feature_map, z, perm_global, perm_local):
    """The seed's: JSD-as-BCE with one shuffled negative per pair."""
    g_pos, g_neg = global_pairs(spec, z, feature_map, perm_global)
    l_pos, l_neg = local_pairs(z, feature_map, perm_local)
    return {
        "global": info_loss(nets["global_disc"](g_pos), nets["global_disc"](g_neg)),
        "local": info_loss(nets["local_disc"](l_pos), nets["local_disc"](l_neg)),
    }


def locations(head, feature_map):
    """A local head on every location of a map [B, h, w, c], flattened: [B, hw, d]."""
    l = head(feature_map)  # [B, h, w, d]
    return tf.reshape(l, [tf.shape(l)[0], -1, tf.shape(l)[-1]])


def local_scores(nets, feature_map, z):
    """The global head's output for every image's code [B, d] and the local
    head's for every location of its map [B, hw, d]."""
    return nets["global_head"](z), locations(nets["local_head"], feature_map)


def nce(g, l, temperature):
    """InfoNCE of unit global codes g [B, d] against unit local features l
    [B, hw, d]: each location of image j picks g[j] out of the batch."""
    logits = tf.einsum("id,jpd->jpi", g, l) / temperature  # [B(j), hw, B(i)]
    b, hw = tf.shape(logits)[0], tf.shape(logits)[1]
    labels = tf.tile(tf.range(b)[:, None], [1, hw])
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def local_nce_objective(nets, spec, feature_map, z, perm_global, perm_local):
    """DIM(L) with InfoNCE: each location of image j picks its own image's
    global code out of the batch; cosine scores / temperature."""
    g, l = local_scores(nets, feature_map, z)
    g = tf.math.l2_normalize(g, axis=-1)
    l = tf.math.l2_normalize(l, axis=-1)
    return {"local": nce(g, l, spec["loss"]["temperature"])}


def two_view_nce_objective(nets, spec, feature_map, z, perm_global, perm_local, prev_map=None):
    """AMDIM's cross-view InfoNCE: the batch is [view 1; view 2] of the same
    B images (two_views); the code of each view against every location of
    the other view, the rest of the batch's images as negatives (in the
    other view), cosine scores / temperature; the mean of both directions.
    With prev_map (loss.local_scales 2), the same again between the code
    and the map before C through its own local head (AMDIM's 1-to-5 and
    1-to-7 beside each other), and the mean over both scales."""
    g = tf.math.l2_normalize(nets["global_head"](z), axis=-1)
    b = tf.shape(g)[0] // 2
    t = spec["loss"]["temperature"]

    def cross(head, fmap):
        l = tf.math.l2_normalize(locations(head, fmap), axis=-1)  # [2B, hw, d]
        return 0.5 * (nce(g[:b], l[b:], t) + nce(g[b:], l[:b], t))

    local = cross(nets["local_head"], feature_map)
    if prev_map is not None:
        local = 0.5 * (local + cross(nets["local_head_2"], prev_map))
    return {"local": local}


def local_jsd_objective(nets, spec, feature_map, z, perm_global, perm_local):
    """DIM(L) with the JSD estimator, all in-batch pairs: softplus(−T) on the
    matching pairs, softplus(T) on every other pair, T a raw dot product."""
    g, l = local_scores(nets, feature_map, z)
    t = tf.einsum("id,jpd->jpi", g, l)  # [B(j), hw, B(i)]
    b = tf.shape(t)[0]
    pos = tf.eye(b)[:, None, :]  # 1 where i == j
    n_pos = tf.cast(b * tf.shape(t)[1], tf.float32)
    n_neg = tf.cast((b - 1) * b * tf.shape(t)[1], tf.float32)
    e_pos = tf.reduce_sum(pos * tf.nn.softplus(-t)) / n_pos
    e_neg = tf.reduce_sum((1 - pos) * tf.nn.softplus(t)) / n_neg
    return {"local": e_pos + e_neg}


# name → (objective, nets it needs besides the encoder, its terms besides prior)
OBJECTIVES = {
    "seed": (seed_objective, ("global_disc", "local_disc"), ("global", "local")),
    "local_nce": (local_nce_objective, ("local_head", "global_head"), ("local",)),
    "local_jsd": (local_jsd_objective, ("local_head", "global_head"), ("local",)),
    "two_view_nce": (two_view_nce_objective, ("local_head", "global_head"), ("local",)),
}

assert tuple(OBJECTIVES) == OBJECTIVE_NAMES, "spec.OBJECTIVE_NAMES and model.OBJECTIVES name the same objectives"


def views(spec):
    """How many views of each image the spec's objective trains on."""
    return 2 if spec["loss"]["objective"] in TWO_VIEW else 1


def objective(spec):
    name = spec["loss"]["objective"]
    if name not in OBJECTIVES:
        raise ValueError("unknown objective %r: known are %s" % (name, ", ".join(sorted(OBJECTIVES))))
    return OBJECTIVES[name]


def local_scales(spec):
    """How many of the encoder's maps the local objective contrasts with the
    code: 1 (C) or 2 (C and the map before it; spec.OPTIONAL leaves it out at 1)."""
    return spec["loss"].get("local_scales", 1)


def needed_nets(spec):
    """The networks besides the encoder that the spec's objective trains, in
    the order they are built (the order draws their initial weights): the
    objective's, then the second scale's head."""
    needs = objective(spec)[1]
    return needs + ("local_head_2",) if local_scales(spec) == 2 else needs


def term_names(spec):
    """The loss terms the train step returns for this spec, in order."""
    return objective(spec)[2] + ("prior",)


def loss_terms(nets, spec, x, eps, perm_global, perm_local, training):
    """Forward pass to every loss term of the spec's objective and the
    weighted total. x is the scaled (and maybe augmented) float batch."""
    # nets["encoder"] is encoder_scales(encoder) for loss.local_scales 2:
    # the map before C comes first.
    *prev, feature_map, z_mean, z_log_var = nets["encoder"](x, training=training)
    z = sample_z(z_mean, z_log_var, eps)
    fn, _, _ = objective(spec)
    terms = fn(nets, spec, feature_map, z, perm_global, perm_local, **({"prev_map": prev[0]} if prev else {}))
    terms["prior"] = prior_kl(z_mean, z_log_var)
    w = spec["loss"]
    alpha = w["alpha"]  # weight of global MI
    beta = w["beta"]  # weight of local MI
    gamma = w["gamma"]  # weight of the prior KL
    terms["loss"] = alpha * terms.get("global", 0.0) + beta * terms["local"] + gamma * terms["prior"]
    return terms
