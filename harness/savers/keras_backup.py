"""keras-backup (crash only): the backup a Keras `BackupAndRestore` callback keeps during `fit`.

The callback writes, at every epoch end, into its backup directory (here `<dir>/backup`):
`latest.weights.h5` (the model's weights, written over in place) and then
`training_metadata.json` (the epoch a restarted `fit` resumes at). With
`double_checkpoint=True` (target `keras-backup-double`) it first copies both to `.bkp` files.

No `fit` runs. Save number g: the hooks `fit` calls, in its order (`set_model` and
`on_train_begin` once per backup directory; `on_epoch_begin`, `on_epoch_end` for epoch g-1),
so the metadata says epoch g. Restore: what a restarted `fit` does, a fresh callback on the
same directory, `set_model`, `on_train_begin` (which loads the backup, and with
`double_checkpoint` falls back to the `.bkp` files on an OSError), then the epoch `fit` would
start at (`model._initial_epoch or initial_epoch`, initial_epoch 0).

That epoch is judged with the weights: the adapter reports it as one more value,
`backup/epoch` (an int64 scalar: the generation the epoch implies), so a restore that gives the
weights of one save and the epoch of another equals no completed save (`silent`: training goes
on and repeats or skips an epoch).

Under tf-keras (`--keras 2`) the same callback keeps something else: a tf.train checkpoint of
the model, the optimizer and the epoch (`ckpt_saved_epoch`), written by a CheckpointManager with
`max_to_keep=1` into `<backup_dir>/chief/`. Restore is again what a restarted `fit` does: a fresh
callback's `on_train_begin` (`restore_or_initialize`), then the epoch tf-keras's fit asks the
training state for (`maybe_load_initial_counters_from_ckpt`). tf-keras has no
`double_checkpoint`, so keras-backup-double stays a Keras 3 target.

keras-backup-batch: the same callback with `save_freq=3` (a backup every 3 batches) in a fit of 4
batches an epoch, so backups fall inside epochs. Save number g is the batch end of the
(3g)-th batch; a run that resumes right after it starts at batch 3g (counted over epochs), the
value judged as `backup/step`. Keras 3 writes `{"epoch": e, "batch": b}` but a restarted fit
reads only the epoch and starts it at its first batch: the batches of that epoch before the
backup run twice, a clean restart included (the judge says `silent`). tf-keras's fit resumes at
(epoch, batch + 1) from the training state (`maybe_load_initial_counters_from_ckpt`).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ..errors import UsageError
from .base import SaveResult
from .keras_weights import KerasWeights, names_from_h5

BACKUP_DIR = "backup"            # the callback's backup_dir, inside the crash target's directory
WEIGHTS = "latest.weights.h5"     # Keras 3's names for the files it writes there
METADATA = "training_metadata.json"
CHIEF = "chief"                   # tf-keras: its CheckpointManager's folder in the backup directory
EPOCH = "backup/epoch"            # the pseudo-value: the epoch a restarted fit resumes at
STEP = "backup/step"              # keras-backup-batch's: the batch it resumes at, counted over epochs
_NO_EPOCH = -1                    # after poison(): equals no save's epoch or step


class KerasBackup(KerasWeights):
    api = "keras-backup"
    double_checkpoint = False
    save_freq = "epoch"
    # where fit stands is counted in batches: an epoch save is one "batch" of a one-batch epoch
    steps_per_epoch = 1
    batches_per_save = 1
    progress = EPOCH      # the name of the pseudo-value

    _callback = None
    _epoch = 0            # the next epoch the saving callback ends
    _step = 0             # keras-backup-batch: the next batch fit runs, counted over epochs
    _resume = _NO_EPOCH   # where fit would resume (`progress`'s unit), for the live state

    def build(self) -> None:
        from ..tfenv import legacy_keras

        self.legacy = legacy_keras()
        if self.legacy and self.double_checkpoint:
            raise UsageError(f"{self.api} needs Keras 3 (tf-keras's BackupAndRestore has no "
                             f"double_checkpoint); drop --keras 2 for this target")
        super().build()
        # fit needs a compiled model; plain SGD, whose state the backup (weights only) does not hold
        self.model.compile(optimizer="sgd", loss="mse")

    def init(self, generation: int = 1) -> None:
        super().init(generation)
        # once saved, a restart resumes right after the batch (epoch) that wrote save `generation`
        self._resume = generation * self.batches_per_save

    def expected_names(self) -> list[str]:
        return super().expected_names() + [self.progress]

    def iter_values(self, skip=()):
        yield from super().iter_values(skip)
        if self.progress not in skip:
            yield self.progress, np.int64(self._resume)

    def poison(self) -> None:
        super().poison()
        self._resume = _NO_EPOCH
        self.model._initial_epoch = None   # a restarted process starts with no resumed epoch

    def _new_callback(self, backup_dir: str):
        import tensorflow as tf

        if self.legacy:
            cb = tf.keras.callbacks.BackupAndRestore(backup_dir, save_freq=self.save_freq)
        else:
            cb = tf.keras.callbacks.BackupAndRestore(backup_dir, save_freq=self.save_freq,
                                                     double_checkpoint=self.double_checkpoint)
        cb.set_model(self.model)
        return cb

    def save(self, directory: str) -> SaveResult:
        backup_dir = os.path.join(directory, BACKUP_DIR)
        cb = self._callback
        if cb is None or os.path.abspath(cb.backup_dir) != os.path.abspath(backup_dir):
            cb = self._new_callback(backup_dir)   # the training run of this directory begins
            cb.on_train_begin(logs={})
            self._callback, self._epoch, self._step = cb, 0, 0
        t = self._train_to_next_backup(cb)
        files = sorted(os.path.join(d, f) for d, _dirs, names in os.walk(backup_dir) for f in names)
        return SaveResult(backup_dir, files, t, t)

    def _train_to_next_backup(self, cb) -> float:
        """The hooks of one epoch, whose end writes the backup; the seconds they took."""
        epoch = self._epoch
        t0 = time.perf_counter()
        cb.on_epoch_begin(epoch, logs={})
        cb.on_epoch_end(epoch, logs={"loss": 1.0 / (epoch + 1)})
        self._epoch = epoch + 1
        return time.perf_counter() - t0

    def latest(self, directory: str):
        """The backup directory when a restarted fit would load something from it (else it
        trains from scratch: no checkpoint found)."""
        d = os.path.join(directory, BACKUP_DIR)
        if self.legacy:
            import tensorflow as tf

            if not os.path.isdir(os.path.join(d, CHIEF)):
                return None
            try:   # what the manager in a restarted fit finds; None: it trains from scratch
                found = tf.train.latest_checkpoint(os.path.join(d, CHIEF))
            except Exception:   # e.g. a damaged `checkpoint` file: the restarted fit raises it
                return d
            return d if found else None
        return d if any(os.path.exists(os.path.join(d, f)) for f in (WEIGHTS, METADATA)) else None

    def restore(self, path: str) -> None:
        cb = self._new_callback(path)
        self.model._initial_epoch = None
        cb.on_train_begin(logs={})   # raises what a restarted fit raises
        if self.legacy:
            # tf-keras's fit asks the training state for the epoch and the batch to start at
            epoch, step = self.model._training_state.maybe_load_initial_counters_from_ckpt(
                self.steps_per_epoch, 0, "train")
        else:
            # Keras 3's fit: `initial_epoch = self._initial_epoch or initial_epoch` (initial_epoch=0),
            # always from the epoch's first batch
            epoch, step = self.model._initial_epoch or 0, 0
        self._resume = int(epoch) * self.steps_per_epoch + int(step)

    def checkpoint_names(self, path: str):
        if self.legacy:
            return self._tf_checkpoint_names(path)
        import h5py

        out = {}
        weights = os.path.join(path, WEIGHTS)
        if os.path.exists(weights):
            with h5py.File(weights, "r") as f:   # the model's weights; the SGD's "optimizer/" group is not judged
                if "layers" in f:
                    out.update(names_from_h5(f["layers"], self.vars))
        try:
            with open(os.path.join(path, METADATA)) as f:
                if isinstance(json.load(f).get("epoch"), int):
                    out[self.progress] = ((), "int64")
        except (OSError, ValueError, AttributeError):
            pass
        return out


    # tf-keras's checkpoint also holds the training loop's own state, which the judge leaves out
    _NOT_JUDGED = ("save_counter", "ckpt_saved_batch", "train_counter", "model/optimizer")

    def _tf_checkpoint_names(self, path: str):
        """Logical names in tf-keras's backup checkpoint: the model's weights by their object
        path (`model/root/<scope>/<leaf>`, the logical name itself) and the epoch."""
        import tensorflow as tf

        prefix = tf.train.latest_checkpoint(os.path.join(path, CHIEF))
        if prefix is None:
            return {}
        reader = tf.train.load_checkpoint(prefix)
        dtypes = reader.get_variable_to_dtype_map()
        out = {}
        for key, shape in reader.get_variable_to_shape_map().items():
            obj = key.split("/.ATTRIBUTES/")[0]
            if key == "_CHECKPOINTABLE_OBJECT_GRAPH" or any(obj == n or obj.startswith(n + "/")
                                                             for n in self._NOT_JUDGED):
                continue
            dtype = dtypes[key].name
            if obj == "ckpt_saved_epoch":
                out[self.progress] = (tuple(shape), dtype)
            elif obj.startswith("model/root/") and obj[len("model/root/"):] in self.vars:
                out[obj[len("model/root/"):]] = (tuple(shape), dtype)
            else:
                out["?" + key] = (tuple(shape), dtype)
        return out


class KerasBackupDouble(KerasBackup):
    api = "keras-backup-double"
    double_checkpoint = True


class KerasBackupBatch(KerasBackup):
    api = "keras-backup-batch"
    save_freq = 3
    steps_per_epoch = 4   # not a multiple of save_freq: backups land inside epochs
    batches_per_save = 3
    progress = STEP

    def _train_to_next_backup(self, cb) -> float:
        """The hooks of fit's next `save_freq` batches, in fit's order (an epoch's end and the
        next one's begin between its batches); the last batch end writes the backup. The
        seconds of that batch end."""
        t = 0.0
        for _ in range(self.batches_per_save):
            epoch, batch = divmod(self._step, self.steps_per_epoch)
            if batch == 0:
                if epoch:   # no backup at an epoch end with an int save_freq
                    cb.on_epoch_end(epoch - 1, logs={"loss": 1.0 / epoch})
                cb.on_epoch_begin(epoch, logs={})
            cb.on_train_batch_begin(batch, logs={})
            t0 = time.perf_counter()
            cb.on_train_batch_end(batch, logs={"loss": 1.0 / (self._step + 1)})
            t = time.perf_counter() - t0
            self._step += 1
        return t
