"""A custom training loop checkpointed with tf.train.CheckpointManager, as a crash target.

    ckpt-harness crash --mode kill --target examples/custom_loop.py:target

`target()` returns an object speaking the harness's protocol (docs/crash.md,
"Your own save code"): build, update(generation), values, save(directory,
generation), restore(directory). The training step and the checkpointing are
what a hand-written TF2 loop does; only the model is tiny.
"""

import numpy as np
import tensorflow as tf

LEARNING_RATE = 0.05
MAX_TO_KEEP = 2


class CustomLoop:
    def build(self):
        rng = np.random.default_rng(0)   # the same start in every process: generations are reproducible
        self.model = tf.Module(name="mlp")
        self.model.w1 = tf.Variable(rng.standard_normal((8, 16)).astype("float32"), name="w1")
        self.model.b1 = tf.Variable(np.zeros(16, "float32"), name="b1")
        self.model.w2 = tf.Variable(rng.standard_normal((16, 1)).astype("float32"), name="w2")
        self.model.b2 = tf.Variable(np.zeros(1, "float32"), name="b2")
        self.step = tf.Variable(0, dtype=tf.int64, name="step")
        self.ckpt = tf.train.Checkpoint(model=self.model, step=self.step)
        self.managers = {}
        self.x = rng.standard_normal((32, 8)).astype("float32")
        self.y = rng.standard_normal((32, 1)).astype("float32")

    def _train_step(self):
        m = self.model
        params = [m.w1, m.b1, m.w2, m.b2]
        with tf.GradientTape() as tape:
            hidden = tf.nn.relu(self.x @ m.w1 + m.b1)
            loss = tf.reduce_mean(tf.square(hidden @ m.w2 + m.b2 - self.y))
        for var, grad in zip(params, tape.gradient(loss, params)):
            var.assign_sub(LEARNING_RATE * grad)
        self.step.assign_add(1)

    def update(self, generation):
        while int(self.step) < generation:   # generation g = the weights after g training steps
            self._train_step()

    def values(self):
        m = self.model
        return {"w1": m.w1.numpy(), "b1": m.b1.numpy(), "w2": m.w2.numpy(), "b2": m.b2.numpy(),
                "step": self.step.numpy()}

    def _manager(self, directory):
        if directory not in self.managers:
            self.managers[directory] = tf.train.CheckpointManager(self.ckpt, directory, max_to_keep=MAX_TO_KEEP)
        return self.managers[directory]

    def save(self, directory, generation):
        self._manager(directory).save(checkpoint_number=generation)

    def restore(self, directory):
        latest = self._manager(directory).latest_checkpoint
        if latest is None:
            return None   # a restarted job would start from scratch
        self.ckpt.restore(latest).assert_existing_objects_matched()
        return self.values()


def target():
    return CustomLoop()
