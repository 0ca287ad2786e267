"""Which save APIs `ckpt-harness crash` targets, and what is particular to each.

Per API: the adapter options a crash target runs with (the same adapter as
`ckpt-harness run`, only told to behave as a crash test needs: e.g. async
saves that return before the write is done), and where its checkpoints lie in
a directory, so the checker can try every one a user could restore.

No TensorFlow here.
"""

from __future__ import annotations

from .state import DirImage, orphan_files

CRASH_APIS = ("tf2-manager", "tf2-checkpoint", "tf1-saver", "tf2-sharded", "keras-weights", "keras-model",
              "async-checkpoint", "savedmodel", "keras-modelcheckpoint",
              "async-restart", "keras-backup", "keras-backup-double", "keras-backup-batch",
              "keras-modelcheckpoint-full", "keras-modelcheckpoint-best")

# adapter options for the crash target (run keeps the adapters' defaults)
_OPTIONS = {
    # save() returns as soon as the write is handed to the background thread, as users see it,
    # and saves go through a CheckpointManager (ckpt-N), as most async users save
    "async-checkpoint": {"wait": False, "manager": True},
    # the same saves, by a job restarted before each one (TF's save_counter after a restart)
    "async-restart": {"wait": False, "manager": True},
}

# saves whose API call returns before the checkpoint is written (kill mode aims after the return)
ASYNC_APIS = ("async-checkpoint", "async-restart")

# the file a single-file API writes over on every save
_SUFFIXES = {"keras-weights": ".weights.h5", "keras-model": ".keras", "keras-modelcheckpoint": ".weights.h5",
             "keras-modelcheckpoint-full": ".keras", "keras-modelcheckpoint-best": ".weights.h5"}


# Keras BackupAndRestore targets: a checkpoint is the backup folder they write in the directory
_BACKUP_APIS = ("keras-backup", "keras-backup-double", "keras-backup-batch")
_BACKUP_DIR = "backup"

# targets that exist under Keras 3 only: tf-keras's BackupAndRestore has no double_checkpoint
KERAS3_ONLY = ("keras-backup-double",)


# mutate damages TF bundle files (index, data shards, `checkpoint`) and rewrites them with SaveV2
MUTATE_APIS = ("tf2-manager", "tf2-checkpoint", "tf1-saver", "tf2-sharded", "async-checkpoint")


# saves that write new files and rename them into place, never into an existing file: the
# files of earlier saves may be kept by hard links while a save is recorded (record.stash)
_RENAMING = ("tf2-manager", "tf2-checkpoint", "tf1-saver", "tf2-sharded", "async-checkpoint", "async-restart")


def renames_into_place(api: str) -> bool:
    return api in _RENAMING


# restores that may write into the checkpoint's own files: Keras 3's BackupAndRestore with
# double_checkpoint copies the .bkp files over the latest ones when loading them fails, and a
# user's own restore code is unknown. The checker gets its own copy of such a state; every
# other state is hard-linked to shared blobs and the recording (BlobStore), so a write there
# would change the bytes later states are built from.
_RESTORE_WRITES = ("keras-backup-double", "user")


def restore_writes(api: str) -> bool:
    return api in _RESTORE_WRITES


# the ways a user finds the latest checkpoint, where there is more than the adapter's own
# (`latest()`); each state is judged through every one and the worst outcome counts
_MANAGER_FINDERS = ("tf.train.latest_checkpoint", "CheckpointManager.latest_checkpoint")
_FINDERS = {"tf2-manager": _MANAGER_FINDERS, "tf2-sharded": _MANAGER_FINDERS,
            "async-checkpoint": _MANAGER_FINDERS, "async-restart": _MANAGER_FINDERS}


def finders(api: str) -> tuple[str, ...]:
    """Names of the ways to find the latest checkpoint of `api` (empty: the adapter's latest() only)."""
    return _FINDERS.get(api, ())


def adapter_options(api: str) -> dict:
    return dict(_OPTIONS.get(api, {}))


def candidates(api: str, image: DirImage) -> list[str]:
    """Checkpoints present in `image` that a restore may be tried on (relative paths)."""
    if api in _SUFFIXES:
        return sorted(rel for rel in image.files if rel.endswith(_SUFFIXES[api]) and "/" not in rel)
    if api in _BACKUP_APIS:   # the callback's backup folder, all its files read by a restart
        return [_BACKUP_DIR] if any(rel.startswith(_BACKUP_DIR + "/") for rel in image.files) else []
    if api == "savedmodel":
        return sorted(rel[: -len("/saved_model.pb")] for rel in image.files if rel.endswith("/saved_model.pb"))
    # the directory's own checkpoints: one in a subfolder (a worker's workertemp_<i>/) is not
    # one that a restore of this directory can find
    return [p for p in image.prefixes() if "/" not in p]


def unread_files(api: str, image: DirImage) -> frozenset[str]:
    """Files of `image` no restore of `api` reads: its orphans (temp folders, `*.tempstate*`,
    data shards without an index) outside every candidate checkpoint. The checker is given
    them as holes of their size: a cut data file in `ckpt-N_temp/` then takes no scratch disk
    (on a file system without reflinks it would be a copy of up to one checkpoint). A user's
    own restore code may read anything: it gets every byte."""
    if api == "user":
        return frozenset()
    read = {rel for c in candidates(api, image) for rel in image.checkpoint_files(c)}
    return frozenset(orphan_files(image.files) - read)


def candidate_digests(api: str, image: DirImage) -> dict[str, str]:
    """{checkpoint: digest of the files a restore of it reads}, what the checker is given."""
    return {rel: image.prefix_digest(rel) for rel in candidates(api, image)}
