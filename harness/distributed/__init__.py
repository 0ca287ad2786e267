"""tf.distribute checkpointing: the local cluster launcher, the task process, the cross-task
verdict and `run --strategy` (docs/distributed.md)."""
