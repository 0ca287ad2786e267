"""TF2 object-based checkpoints: tf2-checkpoint, tf2-manager, async-checkpoint.

The model is a tree of tf.Module objects mirroring the variable scopes, so a
checkpoint key is the logical name plus TF's attribute suffix.
"""

from __future__ import annotations

import os
import time

from . import tfvars
from .base import (LEARNING_RATE, SaveResult, SaverAdapter,
                   files_with_prefix, tf_dtype_name)

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SLOT_MARK = "/.OPTIMIZER_SLOT/optimizer/"
_BOOKKEEPING = {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"}


def build_module_tree(variables, device_for, root=None):
    """A tf.Module tree with one attribute per scope; returns (root, {logical name: tf.Variable})."""
    import tensorflow as tf

    root = root if root is not None else tf.Module(name="model")
    by_name = {}
    for i, v in enumerate(variables):
        *scopes, leaf = v.name.split("/")
        node = root
        for s in scopes:
            child = getattr(node, s, None)
            if child is None:
                child = tf.Module(name=s)
                setattr(node, s, child)
            node = child
        with tf.device(device_for(i)):
            var = tf.Variable(tf.zeros(v.shape, dtype=v.dtype), name=leaf)
        setattr(node, leaf, var)
        by_name[v.name] = var
    return root, by_name


def lookup(root, name: str):
    node = root
    for part in name.split("/"):
        node = getattr(node, part)
    return node


class TF2Checkpoint(SaverAdapter):
    """tf.train.Checkpoint.write / read."""

    api = "tf2-checkpoint"
    prefix_name = "ckpt"
    key_root = "model/"  # the attribute the module tree hangs off in the checkpoint

    def build(self) -> None:
        import tensorflow as tf

        self.root, self.vars = build_module_tree(self.variables, self.device_for)
        parts = {"model": self.root}
        if self.optimizer:
            self.opt = tf.compat.v1.train.AdamOptimizer(LEARNING_RATE)
            self.step = tf.Variable(0, dtype=tf.int64, name="step")
            parts.update(optimizer=self.opt, step=self.step)
        self._parts = parts
        self.ckpt = tf.train.Checkpoint(**parts)

    def assign(self, name, value):
        self.vars[name].assign(value)

    def train_step(self) -> None:
        import tensorflow as tf

        trained = [self.vars[v.name] for v in self.trained()]
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in trained])
        grads = tape.gradient(loss, trained)
        self.opt.apply_gradients(zip(grads, trained))
        self.step.assign_add(1)

    def _optimizer_state(self):
        """(logical name, tf.Variable) for slots and optimizer globals, in a fixed order."""
        if not self.optimizer:
            return []
        out = []
        for v in self.trained():
            var = self.vars[v.name]
            for slot in ("m", "v"):
                s = self.opt.get_slot(var, slot)
                if s is not None:
                    out.append((f"{v.name}@adam_{slot}", s))
        b1, b2 = self.opt._get_beta_accumulators()
        return out + [("optimizer/beta1_power", b1), ("optimizer/beta2_power", b2), ("step", self.step)]

    def _all_state(self):
        return list(self.vars.items()) + self._optimizer_state()

    def iter_values(self, skip=()):
        for name, var in self._all_state():
            if name not in skip:
                yield name, tfvars.read(var)

    def poison(self) -> None:
        if getattr(self, "_zero_fill", None) is None:
            self._zero_fill = tfvars.ZeroFill()
        self._zero_fill(var for _, var in self._all_state())

    # -- save / restore --------------------------------------------------------
    def save(self, directory: str) -> SaveResult:
        os.makedirs(directory, exist_ok=True)
        prefix = os.path.join(directory, self.prefix_name)
        t0 = time.perf_counter()
        path = self.ckpt.write(prefix)
        t = time.perf_counter() - t0
        return SaveResult(path, files_with_prefix(path), t, t)

    def latest(self, directory: str):
        prefix = os.path.join(directory, self.prefix_name)
        return prefix if os.path.exists(prefix + ".index") else None

    def restore(self, path: str) -> None:
        # like most users: read() and carry on; unmatched values are silently skipped,
        # which is exactly what the oracle is there to catch
        self.ckpt.read(path).expect_partial()

    def checkpoint_names(self, path: str):
        import tensorflow as tf

        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
        out = {}
        for key, shape in shapes.items():
            if key.split("/", 1)[0] in _BOOKKEEPING:
                continue
            out[logical_name(key, self.key_root)] = (tuple(shape), tf_dtype_name(dtypes[key]))
        return out


def logical_name(key: str, root: str = "model/") -> str:
    """Object-graph checkpoint key -> logical name ('?key' when it is not ours)."""
    if not key.endswith(_VALUE_SUFFIX):
        return "?" + key
    body = key[: -len(_VALUE_SUFFIX)]
    if body.startswith(root):
        body = body[len(root):]
        if _SLOT_MARK in body:
            var, slot = body.split(_SLOT_MARK, 1)
            return f"{var}@adam_{slot}"
        return body
    if body in ("optimizer/beta1_power", "optimizer/beta2_power", "step"):
        return body
    return "?" + key


class TF2Manager(TF2Checkpoint):
    """tf.train.CheckpointManager.save with max_to_keep; restore the latest."""

    api = "tf2-manager"

    def _manager(self, directory: str):
        import tensorflow as tf

        mgr = getattr(self, "_managers", {}).get(directory)
        if mgr is None:
            mgr = tf.train.CheckpointManager(self.ckpt, directory, max_to_keep=self.max_to_keep)
            self._managers = {**getattr(self, "_managers", {}), directory: mgr}
        return mgr

    def save(self, directory: str) -> SaveResult:
        mgr = self._manager(directory)
        t0 = time.perf_counter()
        path = mgr.save()
        t = time.perf_counter() - t0
        return SaveResult(path, files_with_prefix(path, ("checkpoint",)), t, t)

    def latest(self, directory: str):
        import tensorflow as tf

        return tf.train.latest_checkpoint(directory)


class TF2Sharded(TF2Manager):
    """CheckpointManager.save with CheckpointOptions(experimental_sharding_callback=
    MaxShardSizePolicy): the data is split into many `ckpt-N.data-*` shards. Option
    `shard_bytes` (default: an eighth of the state, at least 4 KiB) is the shard size cap."""

    api = "tf2-sharded"

    def _options(self):
        import tensorflow as tf

        total = sum(v.nbytes for v in self.variables) * (3 if self.optimizer else 1)
        size = int(self.options.get("shard_bytes") or max(4096, total // 8))
        policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=size)
        return tf.train.CheckpointOptions(experimental_sharding_callback=policy)

    def save(self, directory: str) -> SaveResult:
        mgr = self._manager(directory)
        opts = self._options()
        t0 = time.perf_counter()
        path = mgr.save(options=opts)
        t = time.perf_counter() - t0
        return SaveResult(path, files_with_prefix(path, ("checkpoint",)), t, t)


class AsyncCheckpoint(TF2Checkpoint):
    """Checkpoint.write with experimental_enable_async_checkpoint: the call returns early.

    Options (the crash target sets both): `manager=True` saves through a CheckpointManager
    (`ckpt-N`, as most async users do); `wait=False` returns when the API call returns, with
    the write still going on in the background (`finish_pending()` waits for it)."""

    api = "async-checkpoint"

    def save(self, directory: str) -> SaveResult:
        import tensorflow as tf

        os.makedirs(directory, exist_ok=True)
        opts = tf.train.CheckpointOptions(experimental_enable_async_checkpoint=True)
        t0 = time.perf_counter()
        if self.options.get("manager"):
            path = self._manager(directory).save(options=opts)
        else:
            path = self.ckpt.write(os.path.join(directory, self.prefix_name), options=opts)
        t_return = time.perf_counter() - t0
        if not self.options.get("wait", True):
            return SaveResult(path, [], t_return, 0.0)
        self.ckpt.sync()  # blocks until the background write has finished
        t_done = time.perf_counter() - t0
        return SaveResult(path, files_with_prefix(path), t_return, t_done)

    def _manager(self, directory: str):
        return TF2Manager._manager(self, directory)

    def finish_pending(self) -> None:
        """Wait for a background write still going on."""
        self.ckpt.sync()

    def latest(self, directory: str):
        if self.options.get("manager"):
            import tensorflow as tf

            return tf.train.latest_checkpoint(directory)
        return super().latest(directory)

    def restore(self, path: str) -> None:
        self.ckpt.sync()
        super().restore(path)

    def close(self) -> None:
        ckpt = getattr(self, "ckpt", None)
        if ckpt is not None:
            ckpt.sync()


class AsyncRestarted(AsyncCheckpoint):
    """async-restart: async CheckpointManager saves by a job that restarts before every save.

    Each generation after the first begins as a restarted job does: a new tf.train.Checkpoint
    over the variables and a new CheckpointManager on the directory last saved to, which
    restores the latest checkpoint there (`restore_or_initialize`); then the new values are set
    (the job trains) and saved. The variables themselves are reused: a restarted process would
    recreate them, and the restore gives them the same values. This is the sequence in which
    async saves lose their history on TF 2.21: they store `save_counter` 0, so after a restart
    the next save is named ckpt-1 again and replaces the only checkpoint in place.
    """

    api = "async-restart"

    def build(self) -> None:
        self.options.setdefault("manager", True)  # the restart restores through the manager
        super().build()
        self._saved_to = None

    def init(self, generation: int = 1) -> None:
        if self._saved_to is not None:
            self._restart(self._saved_to)
        super().init(generation)

    def save(self, directory: str) -> SaveResult:
        self._saved_to = directory
        return super().save(directory)

    def _restart(self, directory: str) -> None:
        import tensorflow as tf

        self.ckpt.sync()  # the old job's last write ends before the new job starts
        self.ckpt = tf.train.Checkpoint(**self._parts)
        self._managers = {}
        self._manager(directory).restore_or_initialize()


class TF2RestoreOnCreate(TF2Checkpoint):
    """Saved like tf2-checkpoint; restored the way a restarted process restores: Checkpoint.read()
    into an empty model, then every variable is created and TF restores it as it is attached
    (deferred restoration). Each variable is read on its own, so restore never holds a second
    copy of the state, unlike read() into a live model, which loads every tensor first."""

    api = "tf2-restore-on-create"
    supports_optimizer = False  # Adam slots would be created only by the next training step

    def poison(self) -> None:
        # drop the live model: the point of this API is restoring without one
        self.root, self.vars, self.ckpt = None, {}, None
        import gc
        gc.collect()

    def restore(self, path: str) -> None:
        import tensorflow as tf

        root = tf.Module(name="model")
        ckpt = tf.train.Checkpoint(model=root)
        status = ckpt.read(path)
        self.root, self.vars = build_module_tree(self.variables, self.device_for, root=root)
        self.ckpt = ckpt
        status.expect_partial()
