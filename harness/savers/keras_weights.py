"""keras-weights: a Keras model's save_weights / load_weights (.weights.h5).

save_weights stores layer weights only, never optimizer state. Every save into a
directory writes the same file, model.weights.h5, over the previous one, as user code
does (Keras truncates it at open and rewrites it in place); `ckpt-harness crash`
relies on that.
"""

from __future__ import annotations

import os
import time

from .base import SaveResult, SaverAdapter

FILE_NAME = "model.weights.h5"


def _holder_classes():
    import tensorflow as tf
    keras = tf.keras   # Keras 3, or tf-keras (Keras 2) under TF_USE_LEGACY_KERAS=1 (`--keras 2`)

    class Scope(keras.layers.Layer):
        """A layer per name scope; weights and sub-scopes hang off it."""

        def call(self, inputs):  # never called: the model only holds state
            return inputs

    class Holder(keras.Model):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.root = Scope(name="root")

        def call(self, inputs):
            return inputs

    return Scope, Holder


class KerasWeights(SaverAdapter):
    api = "keras-weights"
    supports_optimizer = False

    def build(self) -> None:
        Scope, Holder = _holder_classes()
        self.model = Holder(name="holder")
        self.vars = add_weights(self.model, Scope, self.variables, self.device_for)

    def assign(self, name, value):
        self.vars[name].assign(value)

    def iter_values(self, skip=()):
        for name, var in self.vars.items():
            if name not in skip:
                yield name, var.numpy()

    def poison(self) -> None:
        import tensorflow as tf

        for var in self.vars.values():   # var.dtype: a name (Keras 3) or a tf.DType (tf-keras)
            var.assign(tf.zeros(var.shape, dtype=tf.as_dtype(var.dtype)))

    file_name = FILE_NAME   # one file, written over in place by every save

    def write(self, path: str) -> None:
        self.model.save_weights(path)

    def save(self, directory: str) -> SaveResult:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, self.file_name)
        t0 = time.perf_counter()
        self.write(path)
        t = time.perf_counter() - t0
        return SaveResult(path, [path], t, t)

    def latest(self, directory: str):
        path = os.path.join(directory, self.file_name)
        return path if os.path.exists(path) else None

    def restore(self, path: str) -> None:
        self.model.load_weights(path)

    def checkpoint_names(self, path: str):
        import h5py

        with h5py.File(path, "r") as f:
            return names_from_h5(f, self.vars)


def add_weights(model, scope_cls, variables, device_for=lambda i: "/device:CPU:0") -> dict:
    """One weight per VarSpec under `model.root`, one `scope_cls` layer per name scope;
    returns {logical name: weight}."""
    import tensorflow as tf

    out = {}
    scopes = {"": model.root}
    for i, v in enumerate(variables):
        *parts, leaf = v.name.split("/")
        node, path = model.root, ""
        for p in parts:
            path = f"{path}/{p}" if path else p
            if path not in scopes:
                child = scope_cls(name=p)
                setattr(node, p, child)   # attribute assignment makes Keras track it
                scopes[path] = child
            node = scopes[path]
        with tf.device(device_for(i)):
            w = node.add_weight(name=leaf, shape=v.shape, dtype=v.dtype, initializer="zeros",
                                trainable=v.trainable)
        out[v.name] = w
    for s in scopes.values():
        s.built = True
    model.built = True
    return out


def names_from_h5(f, variables: dict) -> dict:
    """Logical name -> (shape, dtype) of the weights in an open Keras weights h5 file.

    Keras keys weights by layer path and position ("layers/<root>/<scope...>/vars/<i>"),
    not by name: each position maps back to the logical variable created there."""
    by_scope: dict[str, list[str]] = {}
    for name in variables:
        scope = name.rsplit("/", 1)[0] if "/" in name else ""
        by_scope.setdefault(scope, []).append(name)
    out = {}
    found = []
    f.visit(found.append)
    for key in found:
        parts = key.split("/")
        if parts[0] != "layers":   # tf-keras (Keras 2) writes "<root>/<scope...>/vars/<i>", no "layers/"
            parts = ["layers"] + parts
        if len(parts) < 4 or parts[-2] != "vars":
            continue
        try:
            ds = f[key]
            shape, dtype = tuple(ds.shape), ds.dtype
        except (KeyError, RuntimeError, OSError):
            out["?" + key] = ((), "unreadable")
            continue
        dname = "bfloat16" if dtype.kind == "V" and dtype.itemsize == 2 else str(dtype)
        scope, idx = "/".join(parts[2:-2]), parts[-1]
        names = by_scope.get(scope, [])
        if idx.isdigit() and int(idx) < len(names):
            out[names[int(idx)]] = (shape, dname)
        else:
            out["?" + key] = (shape, dname)
    return out
