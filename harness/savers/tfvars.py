"""Reading and overwriting many tf.Variables cheaply.

At 100,000 small variables the judge's reads and the poisoning before each restore
were the harness's largest share of a phase: `var.numpy()` costs about 45 us a
variable and `var.assign(tf.zeros_like(var))` about 75 us (TF 2.21, this 2-core
VM), most of it Python-level dispatch. The raw ops skip that dispatch: about 19 us
to read and 17 us to overwrite. TensorFlow is imported by the caller's module
(these helpers take live variables).
"""

from __future__ import annotations

import numpy as np

# zero tensors up to this size are kept and reused; larger ones are made per call,
# so the cache never holds more than a few MiB whatever the layout
_CACHE_LIMIT_BYTES = 64 * 1024
_CACHE_MAX_ENTRIES = 4096


def read(var) -> np.ndarray:
    """The variable's current value as a NumPy array."""
    import tensorflow as tf

    return tf.raw_ops.ReadVariableOp(resource=var.handle, dtype=var.dtype).numpy()


class ZeroFill:
    """Overwrites variables with zeros, reusing one zero tensor per small (shape, dtype)."""

    def __init__(self):
        self._zeros: dict = {}

    def _zeros_for(self, var):
        import tensorflow as tf

        shape, dtype = tuple(var.shape), var.dtype
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.size
        if nbytes > _CACHE_LIMIT_BYTES:
            return tf.zeros(shape, dtype)
        key = (shape, dtype)
        z = self._zeros.get(key)
        if z is None:
            z = tf.zeros(shape, dtype)
            if len(self._zeros) < _CACHE_MAX_ENTRIES:
                self._zeros[key] = z
        return z

    def __call__(self, variables) -> None:
        import tensorflow as tf

        for var in variables:
            tf.raw_ops.AssignVariableOp(resource=var.handle, value=self._zeros_for(var))
