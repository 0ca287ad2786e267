"""A Keras `fit` with keras.callbacks.ModelCheckpoint, as a crash target.

    ckpt-harness crash --mode kill --target examples/keras_fit.py:target
    ckpt-harness crash --mode kill --target examples/keras_fit.py:target --keras 2   # tf-keras

ModelCheckpoint(save_weights_only=True) with a fixed file name overwrites one
`model.weights.h5` at the end of every epoch, as many training scripts do.

The harness fingerprints a generation's weights before it saves them, so the
weights must not move during the save. Here `update(generation)` sets the
weights of that generation (as if trained) and `save()` runs one epoch of
`fit` with a learning rate of 0, so the epoch's end is a real ModelCheckpoint
save of exactly those weights, through Keras's own callback code.
"""

import os

import numpy as np
import tensorflow as tf

keras = tf.keras   # Keras 3, or tf-keras (Keras 2) when TF_USE_LEGACY_KERAS=1 (`--keras 2`)

FILE_NAME = "model.weights.h5"


class KerasFit:
    def build(self):
        self.model = keras.Sequential([keras.Input(shape=(8,)),
                                       keras.layers.Dense(16, activation="relu", name="hidden"),
                                       keras.layers.Dense(1, name="out")])
        self.model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse", run_eagerly=True)
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((16, 8)).astype("float32")
        self.y = rng.standard_normal((16, 1)).astype("float32")

    def update(self, generation):
        rng = np.random.default_rng(generation)
        self.model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in self.model.get_weights()])

    def values(self):
        return {f"{layer.name}/{i}": w for layer in self.model.layers for i, w in enumerate(layer.get_weights())}

    def save(self, directory, generation):
        checkpoint = keras.callbacks.ModelCheckpoint(os.path.join(directory, FILE_NAME), save_weights_only=True)
        self.model.fit(self.x, self.y, batch_size=len(self.x), epochs=1, shuffle=False, verbose=0,
                       callbacks=[checkpoint])

    def restore(self, directory):
        path = os.path.join(directory, FILE_NAME)
        if not os.path.exists(path):
            return None   # a restarted job would start from scratch
        self.model.load_weights(path)
        return self.values()


def target():
    return KerasFit()
