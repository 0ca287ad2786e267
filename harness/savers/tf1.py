"""tf1-saver: tf.compat.v1 graph + Session + Saver, the API most legacy
training code still uses."""

from __future__ import annotations

import os
import time

from .base import (LEARNING_RATE, SaveResult, SaverAdapter, files_with_prefix,
                   tf_dtype_name)

_BATCH_BYTES = 64 * 1024**2  # fetch values in batches: one session.run per variable is slow at 100k vars


class TF1Saver(SaverAdapter):
    api = "tf1-saver"
    prefix_name = "model.ckpt"

    def build(self) -> None:
        import tensorflow as tf

        v1 = tf.compat.v1
        self.graph = tf.Graph()
        self.op_to_logical = {}
        self.vars = {}
        with self.graph.as_default():
            for i, v in enumerate(self.variables):
                with tf.device(self.device_for(i)):
                    var = v1.get_variable(v.name, shape=v.shape, dtype=v.dtype,
                                          initializer=v1.zeros_initializer(), use_resource=True)
                self.vars[v.name] = var
                self.op_to_logical[var.op.name] = v.name
            self.slots = []
            if self.optimizer:
                self.global_step = v1.train.get_or_create_global_step()
                trained = [self.vars[v.name] for v in self.trained()]
                loss = tf.add_n([tf.reduce_sum(tf.square(t)) for t in trained])
                self.opt = v1.train.AdamOptimizer(LEARNING_RATE)
                self.train_op = self.opt.minimize(loss, global_step=self.global_step, var_list=trained)
                for v in self.trained():
                    for slot in ("m", "v"):
                        s = self.opt.get_slot(self.vars[v.name], slot)
                        self.slots.append((f"{v.name}@adam_{slot}", s))
                b1, b2 = self.opt._get_beta_accumulators()
                self.slots += [("optimizer/beta1_power", b1), ("optimizer/beta2_power", b2),
                               ("step", self.global_step)]
                for name, s in self.slots:
                    self.op_to_logical[s.op.name] = name
            self.saver = v1.train.Saver(max_to_keep=self.max_to_keep)
            self.init_op = v1.global_variables_initializer()
            self.report_op = v1.report_uninitialized_variables()
            # built for every model, run only when asked: keep TF's "never used" alarm quiet
            getattr(self.report_op, "mark_used", lambda: None)()
        self.graph.finalize()  # nothing may add ops later (keeps 100k-var graphs honest)
        self.sess = v1.Session(graph=self.graph)
        self.sess.run(self.init_op)

    def init(self, generation: int = 1) -> None:
        # Feed values in place of the initializers' zeros, many variables per session.run:
        # each distinct feed set costs TF a new pruned executor, so one run per variable
        # would dominate at 100k variables.
        from ..specs import values

        ops, feeds, size = [], {}, 0
        for v in self.variables:
            init = self.vars[v.name].initializer
            ops.append(init)
            feeds[init.inputs[1]] = values(v, self.seed, generation)
            size += v.nbytes
            if size >= _BATCH_BYTES or len(ops) >= 4096:
                self.sess.run(ops, feed_dict=feeds)
                ops, feeds, size = [], {}, 0
        if ops:
            self.sess.run(ops, feed_dict=feeds)
        if self.optimizer:
            self.train_step()

    def assign(self, name, value):
        # feed the value in place of the initializer's zeros: no new ops in a finalized graph
        init = self.vars[name].initializer
        self.sess.run(init, feed_dict={init.inputs[1]: value})

    def train_step(self) -> None:
        self.sess.run(self.train_op)

    def _all_state(self):
        return list(self.vars.items()) + self.slots

    def iter_values(self, skip=()):
        batch, size = [], 0
        for name, var in self._all_state():
            if name in skip:
                continue
            batch.append((name, var))
            size += var.shape.num_elements() * var.dtype.size
            if size >= _BATCH_BYTES or len(batch) >= 4096:
                yield from zip([n for n, _ in batch], self.sess.run([t for _, t in batch]))
                batch, size = [], 0
        if batch:
            yield from zip([n for n, _ in batch], self.sess.run([t for _, t in batch]))

    def poison(self) -> None:
        # A fresh session: every variable is uninitialized, as in a new process.
        import tensorflow as tf

        self.sess.close()
        self.sess = tf.compat.v1.Session(graph=self.graph)

    def poison_fast(self) -> None:
        # A fresh Session re-plans the restore graph (~80 ms); re-running the zero initializers
        # in this one poisons as surely (no save is all zeros) in well under a millisecond.
        self.sess.run(self.init_op)

    def uninitialized(self) -> list[str]:
        return [n.decode() if isinstance(n, bytes) else str(n) for n in self.sess.run(self.report_op)]

    def save(self, directory: str) -> SaveResult:
        os.makedirs(directory, exist_ok=True)
        prefix = os.path.join(directory, self.prefix_name)
        step = self.options.get("save_step")
        with self.graph.as_default():  # Saver decides graph vs eager from the default graph
            t0 = time.perf_counter()
            path = self.saver.save(self.sess, prefix, global_step=step,
                                   write_meta_graph=bool(self.options.get("meta_graph", False)))
            t = time.perf_counter() - t0
        return SaveResult(path, files_with_prefix(path, ("checkpoint",)), t, t)

    def latest(self, directory: str):
        import tensorflow as tf

        found = tf.train.latest_checkpoint(directory)
        if found:
            return found
        prefix = os.path.join(directory, self.prefix_name)
        return prefix if os.path.exists(prefix + ".index") else None

    def restore(self, path: str) -> None:
        with self.graph.as_default():
            self.saver.restore(self.sess, path)

    def checkpoint_names(self, path: str):
        import tensorflow as tf

        reader = tf.train.load_checkpoint(path)
        dtypes = reader.get_variable_to_dtype_map()
        return {self.op_to_logical.get(k, "?" + k): (tuple(s), tf_dtype_name(dtypes[k]))
                for k, s in reader.get_variable_to_shape_map().items()}

    def close(self) -> None:
        sess = getattr(self, "sess", None)
        if sess is not None:
            sess.close()
