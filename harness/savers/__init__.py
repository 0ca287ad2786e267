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
    "keras-modelcheckpoint": ("keras_callbacks", "KerasModelCheckpoint",
                              "Keras ModelCheckpoint(save_weights_only=True) at epoch end / load_weights"),
    "savedmodel": ("savedmodel", "SavedModel", "tf.saved_model.save / load"),
    "tf2-sharded": ("tf2", "TF2Sharded",
                    "CheckpointManager save with MaxShardSizePolicy sharding (many data shards)"),
    "async-checkpoint": ("tf2", "AsyncCheckpoint",
                         "Checkpoint.write with experimental_enable_async_checkpoint (return and done timed)"),
}
API_NAMES = tuple(_REGISTRY)

# adapters that only make sense as crash targets: a save sequence, not one timed save
_CRASH_ONLY = {
    "async-restart": ("tf2", "AsyncRestarted",
                      "async CheckpointManager saves, the job restarted (restore_or_initialize) before each"),
    "keras-backup": ("keras_backup", "KerasBackup",
                     "Keras 3 BackupAndRestore epoch-end backups / a restarted fit's on_train_begin"),
    "keras-backup-double": ("keras_backup", "KerasBackupDouble",
                            "keras-backup with double_checkpoint=True (.bkp copies of the previous backup)"),
    "keras-backup-batch": ("keras_backup", "KerasBackupBatch",
                           "keras-backup with save_freq=3 (a backup every 3 batches, 4 batches an epoch)"),
    "keras-modelcheckpoint-full": ("keras_callbacks", "KerasModelCheckpointFull",
                                   "Keras ModelCheckpoint(save_weights_only=False) at epoch end / load_model"),
    "keras-modelcheckpoint-best": ("keras_callbacks", "KerasModelCheckpointBest",
                                   "ModelCheckpoint(save_weights_only=True, save_best_only=True), loss "
                                   "improving every epoch / load_weights"),
}


def describe(api: str) -> str:
    return {**_REGISTRY, **_CRASH_ONLY}[api][2]


def check_api(api: str) -> str:
    """`api` if it can be timed (`run`, `profile`); else one clear UsageError."""
    if api in _CRASH_ONLY:
        raise UsageError(f"api {api!r} is a crash target only (ckpt-harness crash --api {api})")
    if api not in _REGISTRY:
        raise UsageError(f"unknown api {api!r}; choose from {', '.join(API_NAMES)}")
    return api


def get_adapter(api: str):
    """The adapter class of a timed API or a crash-only target."""
    module, cls, _ = _CRASH_ONLY[api] if api in _CRASH_ONLY else _REGISTRY[check_api(api)]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
