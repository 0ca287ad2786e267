"""Checkpoint.write of a model built once against models rebuilt after it, in one process.

  python scripts/rebuilt_model_writes.py [--vars 64] [--size 64MiB] [--writes 6] [--models 4]
  MALLOC_MMAP_THRESHOLD_=131072 python scripts/rebuilt_model_writes.py     # glibc's threshold fixed

TensorFlow and NumPy only (the bare script's layout, values and tf.Module tree,
scripts/bare_save.py). Builds and initialises one model and times `--writes`
writes of it, then `--models` times drops the model, builds a new one and
times three writes of it. Each write: fresh directory, os.sync(), then
Checkpoint.write alone, directory removed after. Prints milliseconds per write.

Why: the harness rebuilds its model in every repeat, the bare script saves
the model it built first; this shows what a rebuild does to the writes that
follow it, apart from any harness code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bare_save  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vars", type=int, default=64)
    p.add_argument("--size", default="64MiB")
    p.add_argument("--writes", type=int, default=6, help="writes of the first model")
    p.add_argument("--models", type=int, default=4, help="models rebuilt after it (3 writes each)")
    p.add_argument("--dir", default=None)
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    variables = bare_save.layout(a.vars, bare_save.parse_size(a.size))
    work = tempfile.mkdtemp(prefix="rebuilt-writes-", dir=a.dir)
    count = [0]

    def fresh_model():
        root, tf_vars = bare_save.build(tf, variables)
        for (name, shape), var in zip(variables, tf_vars):
            var.assign(bare_save.values(name, shape))
        return tf.train.Checkpoint(model=root)

    def write_ms(ckpt) -> float:
        d = os.path.join(work, f"save-{count[0]}")
        count[0] += 1
        os.makedirs(d)
        os.sync()
        t0 = time.perf_counter()
        ckpt.write(os.path.join(d, "ckpt"))
        ms = (time.perf_counter() - t0) * 1000
        shutil.rmtree(d)
        return ms

    try:
        tf.zeros([1]).numpy()
        ckpt = fresh_model()
        first = [write_ms(ckpt) for _ in range(a.writes)]
        print("first model:   " + " ".join(f"{ms:6.1f}" for ms in first) + "  ms (the first write includes "
              "TensorFlow's one-time set-up)")
        for k in range(a.models):
            ckpt = None   # the previous model goes, as in the harness's next repeat
            ckpt = fresh_model()
            print(f"rebuilt #{k + 1}:    " + " ".join(f"{write_ms(ckpt):6.1f}" for _ in range(3)) + "  ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
