"""keras-model: Keras Model.save("model.keras") / keras.models.load_model.

A .keras file is a zip (config.json, metadata.json, model.weights.h5) written in
place over the previous one on every save into a directory, as user code does.
The model is rebuilt from its config on load, so the holder model carries its
variable specs in its config; restore takes the weights of the loaded model.
"""

from __future__ import annotations

import functools
import io
import os

from .keras_weights import KerasWeights, add_weights, names_from_h5

FILE_NAME = "model.keras"
WEIGHTS_MEMBER = "model.weights.h5"


@functools.lru_cache(maxsize=None)
def _model_classes():
    """(Scope, SpecModel), made once per process so load_model maps the saved class names to them."""
    import tensorflow as tf

    keras = tf.keras  # the Keras this environment gives TensorFlow (3, or tf-keras with --keras 2)

    from ..specs import VarSpec

    class Scope(keras.layers.Layer):
        """A layer per name scope; weights and sub-scopes hang off it."""

        def call(self, inputs):  # never called: the model only holds state
            return inputs

    class SpecModel(keras.Model):
        """A model holding one weight per variable spec; its config is the specs."""

        def __init__(self, var_specs=(), **kw):
            super().__init__(**kw)
            self.var_specs = [[str(n), [int(d) for d in shape], str(dtype)] for n, shape, dtype in var_specs]
            self.root = Scope(name="root")
            specs = [VarSpec(n, tuple(shape), dtype) for n, shape, dtype in self.var_specs]
            # not a tracked attribute: the weights are saved once, under their scopes
            object.__setattr__(self, "spec_weights", add_weights(self, Scope, specs))

        def call(self, inputs):
            return inputs

        def get_config(self):
            return {**super().get_config(), "var_specs": self.var_specs}

    return Scope, SpecModel


def _zip_problem(path: str) -> str | None:
    """What is wrong with the zip at `path` (None when it opens and its members read back)."""
    import zipfile

    if not os.path.isfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        return f"zipfile says {type(e).__name__}: {e}"
    return f"its member {bad} is damaged (CRC mismatch)" if bad else None


class KerasModel(KerasWeights):
    api = "keras-model"
    supports_optimizer = False

    def build(self) -> None:
        _, SpecModel = _model_classes()
        self.model = SpecModel([[v.name, list(v.shape), v.dtype] for v in self.variables], name="holder")
        self.vars = dict(self.model.spec_weights)

    file_name = FILE_NAME

    def write(self, path: str) -> None:
        self.model.save(path)

    def restore(self, path: str) -> None:
        import tensorflow as tf

        keras = tf.keras
        Scope, SpecModel = _model_classes()
        try:
            loaded = keras.models.load_model(path, custom_objects={"SpecModel": SpecModel, "Scope": Scope},
                                             compile=False)
        except Exception as e:
            why = _zip_problem(path)
            if why is None:
                raise
            # Keras reads a torn zip as "File not found": say what is really wrong with it
            first = (str(e).strip().splitlines() or [""])[0]
            said = first if isinstance(e, ValueError) else f"{type(e).__name__}: {first}"  # named once
            raise ValueError(f"{said} (the file is there, but {why})") from e
        missing = [n for n in self.vars if n not in getattr(loaded, "spec_weights", {})]
        if missing:
            raise ValueError(f"the loaded model lacks {len(missing)} variable(s), e.g. {missing[0]}")
        self.model, self.vars = loaded, dict(loaded.spec_weights)

    def checkpoint_names(self, path: str):
        import zipfile

        import h5py

        with zipfile.ZipFile(path) as z:
            data = z.read(WEIGHTS_MEMBER)
        with h5py.File(io.BytesIO(data), "r") as f:
            return names_from_h5(f, self.vars)
