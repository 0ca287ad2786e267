"""keras-modelcheckpoint: the weights file a Keras `ModelCheckpoint` callback writes during `fit`.

The callback is the one users put in `fit(callbacks=[...])`, configured as its common use:
`save_weights_only=True`, `save_best_only=False`, a fixed file name, so every epoch writes
over the same model.weights.h5. No `fit` runs: the adapter calls the hooks `fit` calls, in
its order (`set_model`, `on_train_begin` once; `on_epoch_begin`, `on_epoch_end` per epoch),
and the epoch-end hook is what writes (Keras 3 and tf-keras both save there when
`save_freq="epoch"`). Save number g is epoch g-1 of one training run in its directory.
Restore, names and latest are those of keras-weights: the file is a plain weights file.
(Were the callback ever to skip a save, the judge would find the previous save's values: no
separate check here.)
"""

from __future__ import annotations

import os

from .keras_weights import KerasWeights


class KerasModelCheckpoint(KerasWeights):
    api = "keras-modelcheckpoint"

    _callback = None
    _epoch = 0

    def _callback_for(self, path: str):
        """The callback of the training run writing `path`: one per file, made as `fit` makes it."""
        import tensorflow as tf

        cb = self._callback
        if cb is None or os.path.abspath(cb.filepath) != os.path.abspath(path):
            cb = tf.keras.callbacks.ModelCheckpoint(path, save_weights_only=True, save_best_only=False)
            cb.set_model(self.model)
            cb.on_train_begin(logs={})
            self._callback, self._epoch = cb, 0
        return cb

    def write(self, path: str) -> None:
        cb = self._callback_for(path)
        epoch = self._epoch
        cb.on_epoch_begin(epoch, logs={})
        cb.on_epoch_end(epoch, logs={"loss": 1.0 / (epoch + 1)})
        self._epoch = epoch + 1
