"""One adapter per save/restore API, all behind `SaverAdapter` (base.py).

The registry maps API names to "module:Class" so that listing APIs never
imports TensorFlow.
"""

from __future__ import annotations

import importlib

from ..errors import UsageError

_REGISTRY = {
    "tf2-checkpoint": ("tf2", "TF2Checkpoint", "tf.train.Checkpoint write/read"),
    "tf2-restore-on-create": ("tf2", "TF2RestoreOnCreate",
                              "Checkpoint.write; restore by read() into an empty model, variables restored as created"),
    "tf2-manager": ("tf2", "TF2Manager", "tf.train.CheckpointManager save (max_to_keep) / restore latest"),
    "tf1-saver": ("tf1", "TF1Saver", "tf.compat.v1 graph + Session + Saver save/restore"),
    "keras-weights": ("keras_weights", "KerasWeights", "Keras Model.save_weights / load_weights (.weights.h5)"),
    "keras-model": ("keras_model", "KerasModel", "Keras Model.save / keras.models.load_model (.keras)"),
    "savedmodel": ("savedmodel", "SavedModel", "tf.saved_model.save / load"),
    "tf2-sharded": ("tf2", "TF2Sharded",
                    "CheckpointManager save with MaxShardSizePolicy sharding (many data shards)"),
    "async-checkpoint": ("tf2", "AsyncCheckpoint",
                         "Checkpoint.write with experimental_enable_async_checkpoint (return and done timed)"),
}
API_NAMES = tuple(_REGISTRY)


def describe(api: str) -> str:
    return _REGISTRY[api][2]


def check_api(api: str) -> str:
    if api not in _REGISTRY:
        raise UsageError(f"unknown api {api!r}; choose from {', '.join(API_NAMES)}")
    return api


def get_adapter(api: str):
    module, cls, _ = _REGISTRY[check_api(api)]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
