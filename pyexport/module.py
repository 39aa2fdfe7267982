"""pyexport.module: the trainable InfoMax module and its signatures.

The module owns its training step and optimizer; Go only feeds uint8 images and
reads back scalars (see tensorflow/rust's regression_savedmodel example). Its
random draws come from stateless ops seeded by (spec seed, step), so a run that
resumes from a checkpoint draws what an uninterrupted run would have drawn.
"""

import json

import keras
import tensorflow as tf

from . import model


class _Untracked:
    """A plain holder: tf.Module does not track what it holds."""


class InfoMax(tf.Module):
    def __init__(self, spec):
        super().__init__(name="infomax")
        # Kept as text: tf.Module would wrap a dict attribute in a tracking wrapper.
        self._spec_json = json.dumps(spec)
        m = spec["model"]
        keras.utils.set_random_seed(spec["seed"])  # weight initialisation
        k = self._keras = _Untracked()
        k.encoder = model.build_encoder(spec)
        k.conv = model.conv_features(k.encoder)
        z_dim = m["z_dim"]
        self.map_shape = model.map_shape(k.encoder)
        # Only the networks the objective uses: an unused one would get no gradient.
        # With loss.local_scales 2 the training step's encoder also hands out
        # the map before C: the same layers and variables, one more output.
        k.nets = {"encoder": model.encoder_scales(k.encoder) if model.local_scales(spec) == 2 else k.encoder}
        for name in model.needed_nets(spec):
            k.nets[name] = model.NETS[name](spec, k.encoder)
        k.optimizer = keras.optimizers.Adam(spec["optimizer"]["learning_rate"])
        k.optimizer.build(self.trainable)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # The checkpoint tracks the tf.Variables under the Keras variables, by
        # path. Keras 3 exports each Keras variable as a fresh copy ("Variable_N")
        # that TensorFlow's graph-mode loader (the C API's) never connects to
        # the handles the functions read, so they would stay uninitialised.
        # Tracking the underlying variables gives the saver_def one variable per
        # handle that the functions use.
        self.weights = {
            v.path.replace("/", "."): v.value
            for net in (*k.nets.values(), k.optimizer)
            for v in net.variables
        }
        self._seed = tf.constant([spec["seed"], 0], dtype=tf.int64)

        image = tf.TensorSpec([None, m["image_size"], m["image_size"], m["channels"]], tf.uint8, name="images")
        self.train_step = tf.function(self._train_step, input_signature=[image])
        self.train_step_with_noise = tf.function(
            self._train_step_with_noise,
            input_signature=[
                image,
                tf.TensorSpec([None, z_dim], tf.float32, name="eps"),
                tf.TensorSpec([None], tf.int32, name="perm_global"),
                tf.TensorSpec([None], tf.int32, name="perm_local"),
            ],
        )
        self.encode = tf.function(self._encode, input_signature=[image])
        self.encode_conv = tf.function(self._encode_conv, input_signature=[image])
        self.set_learning_rate = tf.function(
            self._set_learning_rate, input_signature=[tf.TensorSpec([], tf.float32, name="learning_rate")]
        )

    @property
    def spec(self):
        """The spec this module was built from, as a plain dict."""
        return json.loads(self._spec_json)

    # The Keras objects, kept out of tf.Module's tracking (see __init__).
    encoder = property(lambda self: self._keras.encoder)
    optimizer = property(lambda self: self._keras.optimizer)
    nets = property(lambda self: self._keras.nets)  # name → Keras model

    @property
    def trainable(self):
        return [v for net in self.nets.values() for v in net.trainable_variables]

    def draws(self, batch):
        """ε and the two permutations for this step, from (seed, step) alone."""
        seed = tf.random.experimental.stateless_fold_in(self._seed, self.step)
        fold = tf.random.experimental.stateless_fold_in
        eps = tf.random.stateless_normal([batch, self.spec["model"]["z_dim"]], seed=fold(seed, 0))
        perm_global = tf.argsort(tf.random.stateless_uniform([batch], seed=fold(seed, 1)))
        perm_local = tf.argsort(tf.random.stateless_uniform([batch], seed=fold(seed, 2)))
        return eps, perm_global, perm_local

    def _train_step(self, images):
        """One Adam step on a batch; returns the loss terms (before the update) and the new step.
        A two-view objective trains on two augmented views of every image."""
        tf.debugging.assert_greater_equal(tf.shape(images)[0], 2, message="a batch needs at least 2 images to shuffle")
        fold = tf.random.experimental.stateless_fold_in
        seed = fold(self._seed, self.step)
        if model.views(self.spec) == 2:
            x = model.two_views(images, self.spec, fold(seed, 4))
            return self._step(x, *self.draws(tf.shape(x)[0]))
        eps, perm_global, perm_local = self.draws(tf.shape(images)[0])
        x = model.scale_images(images, self.spec)
        if self.spec["model"]["augment"]:
            x = model.augment(x, self.spec, fold(seed, 3))
        return self._step(x, eps, perm_global, perm_local)

    def _train_step_with_noise(self, images, eps, perm_global, perm_local):
        """train_step with the random draws given, and no augmentation: for
        tests and for exact replays. For a two-view objective the batch holds
        the views, [view 1; view 2]."""
        if model.views(self.spec) == 2:
            tf.debugging.assert_equal(tf.shape(images)[0] % 2, 0, message="a two-view batch holds its two views: an even number of images")
        return self._step(model.scale_images(images, self.spec), eps, perm_global, perm_local)

    def _step(self, x, eps, perm_global, perm_local):
        tf.debugging.assert_greater_equal(tf.shape(x)[0], 2, message="a batch needs at least 2 images to shuffle")
        with tf.GradientTape() as tape:
            terms = model.loss_terms(self.nets, self.spec, x, eps, perm_global, perm_local, training=True)
        variables = self.trainable
        grads = tape.gradient(terms["loss"], variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        terms["step"] = self.step.assign_add(1)
        terms["learning_rate"] = tf.identity(self.optimizer.learning_rate)
        return terms

    def _set_learning_rate(self, learning_rate):
        """Change Adam's learning rate (kept in checkpoints): the runner lowers
        it when it rolls back from a non-finite loss."""
        self.optimizer.learning_rate.assign(learning_rate)
        return {"learning_rate": tf.identity(self.optimizer.learning_rate)}

    def _encode(self, images):
        """z_mean, the feature, with BatchNorm in inference mode."""
        _, z_mean, _ = self.encoder(model.scale_images(images, self.spec), training=False)
        return {"z_mean": z_mean}

    def _encode_conv(self, images):
        """The last convolutional feature map (h×w×z_dim, before the global
        max pool; the Deep InfoMax paper's "conv" features), BatchNorm in
        inference mode: the MLP probe's second input."""
        return {"conv": self._keras.conv(model.scale_images(images, self.spec), training=False)}
