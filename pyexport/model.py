"""pyexport.model: the seed's Deep InfoMax network and losses, in the seed's order.

Encoder → reparameterisation → shuffle → discriminators → losses. Everything
here is a pure function of the spec and of the random draws passed in (ε and the
two permutations), so tests can feed fixed draws and compare with NumPy.
"""

import keras
import tensorflow as tf
from keras import layers

from .spec import SCALINGS


def scale_images(images, spec):
    """uint8 [N,H,W,C] → float32, scaled as the config says (x * scale + offset)."""
    scale, offset = SCALINGS[spec["model"]["scaling"]]
    return tf.cast(images, tf.float32) * scale + offset


def build_encoder(spec):
    """Image → (C, z_mean, z_log_var).

    n blocks of Conv 3×3 → BN → LeakyReLU(0.2) → MaxPool 2×2 with z_dim/2^(n-1-i)
    filters give the local feature map C; two more Conv z_dim → BN → LeakyReLU and
    a global max pool give the code, read out by two Dense layers.
    """
    m = spec["model"]
    z_dim, n = m["z_dim"], m["blocks"]
    x_in = keras.Input((m["image_size"], m["image_size"], m["channels"]), name="x")
    x = x_in
    for i in range(n):
        x = layers.Conv2D(max(1, z_dim >> (n - 1 - i)), 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        x = layers.MaxPooling2D(2)(x)
    feature_map = x  # C: the local features, h×w×z_dim
    for _ in range(2):
        x = layers.Conv2D(z_dim, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.GlobalMaxPooling2D()(x)
    z_mean = layers.Dense(z_dim, name="z_mean")(x)
    z_log_var = layers.Dense(z_dim, name="z_log_var")(x)
    return keras.Model(x_in, [feature_map, z_mean, z_log_var], name="encoder")


def build_discriminator(input_shape, z_dim, name):
    """3 × Dense(z_dim, relu) → Dense(1, sigmoid). Dense acts on the last axis, so
    with input_shape (h, w, d) it scores every position of a map: the per-location MLP."""
    return keras.Sequential(
        [keras.Input(input_shape)]
        + [layers.Dense(z_dim, activation="relu") for _ in range(3)]
        + [layers.Dense(1, activation="sigmoid")],
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


def loss_terms(nets, spec, images, eps, perm_global, perm_local, training):
    """Forward pass to every loss term: dict of scalars total, global, local, prior."""
    encoder, global_disc, local_disc = nets
    x = scale_images(images, spec)
    feature_map, z_mean, z_log_var = encoder(x, training=training)
    z = sample_z(z_mean, z_log_var, eps)
    g_pos, g_neg = global_pairs(spec, z, feature_map, perm_global)
    l_pos, l_neg = local_pairs(z, feature_map, perm_local)
    terms = {
        "global": info_loss(global_disc(g_pos), global_disc(g_neg)),
        "local": info_loss(local_disc(l_pos), local_disc(l_neg)),
        "prior": prior_kl(z_mean, z_log_var),
    }
    w = spec["loss"]
    alpha = w["alpha"]  # weight of global MI
    beta = w["beta"]  # weight of local MI
    gamma = w["gamma"]  # weight of the prior KL
    terms["loss"] = alpha * terms["global"] + beta * terms["local"] + gamma * terms["prior"]
    return terms
