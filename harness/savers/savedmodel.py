"""savedmodel: tf.saved_model.save / tf.saved_model.load of the module tree.

load() returns new objects: after restore the adapter reads the loaded tree.
"""

from __future__ import annotations

import os
import time

from .base import SaveResult
from .tf2 import TF2Checkpoint, lookup

DIR_NAME = "savedmodel"


class SavedModel(TF2Checkpoint):
    api = "savedmodel"
    supports_optimizer = False
    key_root = ""  # the module tree is the SavedModel's root object

    def save(self, directory: str) -> SaveResult:
        import tensorflow as tf
        from ..fsio import files_under

        path = os.path.join(directory, DIR_NAME)
        t0 = time.perf_counter()
        tf.saved_model.save(self.root, path)
        t = time.perf_counter() - t0
        return SaveResult(path, files_under(path), t, t)

    def latest(self, directory: str):
        path = os.path.join(directory, DIR_NAME)
        return path if os.path.exists(os.path.join(path, "saved_model.pb")) else None

    def restore(self, path: str) -> None:
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        found = {}
        for name in self.vars:
            try:
                found[name] = lookup(loaded, name)
            except AttributeError:
                pass  # absent from the SavedModel: keeps the poisoned live variable
        self.vars = {name: found.get(name, var) for name, var in self.vars.items()}
        self.root = loaded

    def checkpoint_names(self, path: str):
        return super().checkpoint_names(os.path.join(path, "variables", "variables"))
