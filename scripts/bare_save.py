"""Bare TensorFlow save (and restore) timing, with no harness in the process.

  python scripts/bare_save.py --vars 64 --size 64MiB [--repeats 7] [--read] [--rebuild] [--gc on|frozen] [--dir DIR]

Imports only TensorFlow, NumPy and the standard library. Builds the same
variables with the same values as `ckpt-harness run --api tf2-checkpoint`
(layout and values below replicate harness/specs.py for float32;
tests/test_timing.py checks that they agree), in the same tf.Module tree, then
for each repeat: removes the previous save, os.sync(), and times
tf.train.Checkpoint.write alone. With --read it also times Checkpoint.read
into the live model after each write (zeroed first, untimed). With --rebuild
every repeat builds and initialises a new model first (timed), as the harness
does: each read is then the first into its model, as a restarted job's is (at
100,000 variables a first read took 34 s, the next 30 s). With --gc
frozen, gc.collect() and gc.freeze() come before each timed write and read
(gc.unfreeze() after), as scripts/first_restore.py --gc frozen. Prints one JSON
object: per-phase wall seconds (build, init, write, read), the process CPU
seconds of each (`*_cpu_s`, all threads) and medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import zlib

import numpy as np

_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise SystemExit(f"cannot parse size {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


# -- harness/specs.py, float32 only ----------------------------------------------
def _byte_weights(n: int, shape_mix: str, seed: int) -> np.ndarray:
    if shape_mix == "many-small":
        return np.ones(n)
    if shape_mix == "few-large":
        n_large = max(1, n // 10)
        w = np.full(n, 0.1 / max(1, n - n_large))
        w[:n_large] = 0.9 / n_large
        if n_large == n:
            w[:] = 1.0
        return w
    rng = np.random.default_rng([seed, 7])
    return np.exp(rng.uniform(0.0, math.log(1000.0), n))


def layout(n_vars: int, state_bytes: int, shape_mix: str = "mixed", seed: int = 0,
           depth: int = 2, fanout: int = 8) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of each float32 variable, as harness.specs.layout gives them."""
    w = _byte_weights(n_vars, shape_mix, seed)
    w = w / w.sum()
    out = []
    for i in range(n_vars):
        elements = max(1, int(state_bytes * w[i]) // 4)
        k, digits = i, []
        for _ in range(depth):
            digits.append(k % fanout)
            k //= fanout
        scope = "/".join(f"s{level}_{d:02d}" for level, d in enumerate(reversed(digits)))
        name = f"{scope}/v{i:06d}" if scope else f"v{i:06d}"
        shape = (elements,) if elements < 64 else (elements // min(1024, elements), min(1024, elements))
        out.append((name, shape))
    return out


def values(name: str, shape, seed: int = 0, generation: int = 1) -> np.ndarray:
    rng = np.random.default_rng([seed & 0xFFFFFFFF, generation & 0xFFFFFFFF, zlib.crc32(name.encode())])
    return rng.random(size=shape, dtype=np.float32) * 2.0 - 1.0


# -- measurement -------------------------------------------------------------------
def build(tf, variables):
    """The same object graph as the harness: one tf.Module per name scope."""
    root = tf.Module(name="model")
    modules = {}
    out = []
    for name, shape in variables:
        *scopes, leaf = name.split("/")
        node, path = root, ""
        for s in scopes:
            path += "/" + s
            child = modules.get(path)
            if child is None:
                child = modules[path] = tf.Module(name=s)
                setattr(node, s, child)
            node = child
        var = tf.Variable(tf.zeros(shape, tf.float32), name=leaf)
        setattr(node, leaf, var)
        out.append(var)
    return root, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vars", type=int, default=64)
    p.add_argument("--size", default="64MiB")
    p.add_argument("--shape-mix", default="mixed", choices=["mixed", "few-large", "many-small"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--read", action="store_true", help="also time Checkpoint.read after each write")
    p.add_argument("--rebuild", action="store_true",
                   help="build and initialise a new model before every repeat, as the harness does")
    p.add_argument("--gc", choices=["on", "frozen"], default="on",
                   help="frozen: collect and freeze Python's heap before each timed write and read")
    p.add_argument("--dir", default=None, help="where to write [a temp dir]")
    a = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    variables = layout(a.vars, parse_size(a.size), a.shape_mix, a.seed)
    work = tempfile.mkdtemp(prefix="bare-save-", dir=a.dir)
    res = {"tf_version": tf.__version__, "n_vars": a.vars,
           "state_bytes": sum(4 * math.prod(s) for _, s in variables),
           "build_s": [], "init_s": [], "write_s": [], "read_s": [],
           "build_cpu_s": [], "init_cpu_s": [], "write_cpu_s": [], "read_cpu_s": []}

    def timed(phase, fn):
        if a.gc == "frozen" and phase in ("write", "read"):
            gc.collect()
            gc.freeze()
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        res[phase + "_s"].append(time.perf_counter() - t0)
        res[phase + "_cpu_s"].append(time.process_time() - c0)
        if a.gc == "frozen":
            gc.unfreeze()
        return out

    def init(tf_vars):
        for (name, shape), var in zip(variables, tf_vars):
            var.assign(values(name, shape, a.seed))

    try:
        tf.zeros([1]).numpy()  # device set-up belongs to start-up, not to build
        previous = tf_vars = None
        for r in range(a.repeats):
            if tf_vars is None or a.rebuild:
                # --rebuild: each read is the first into its model, as a restarted job's is
                root = tf_vars = ckpt = None   # the previous model goes first, as in the harness
                root, tf_vars = timed("build", lambda: build(tf, variables))
                timed("init", lambda: init(tf_vars))
                ckpt = tf.train.Checkpoint(model=root)
            if previous:
                shutil.rmtree(previous)
            previous = os.path.join(work, f"save-{r}")
            os.makedirs(previous)
            os.sync()
            path = timed("write", lambda: ckpt.write(os.path.join(previous, "ckpt")))
            if a.read:
                for var in tf_vars:
                    var.assign(tf.zeros_like(var))
                timed("read", lambda: ckpt.read(path).expect_partial())
        if a.read:  # the restore must have brought the values back
            name, shape = variables[-1]
            if not np.array_equal(tf_vars[-1].numpy(), values(name, shape, a.seed)):
                raise SystemExit("bare read did not restore the saved values")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for k in ("build", "init", "write", "read"):
        if res[k + "_s"]:
            res[k + "_median_s"] = statistics.median(res[k + "_s"])
    try:
        with open("/proc/self/status") as f:
            res["vm_hwm_bytes"] = 1024 * int(next(ln for ln in f if ln.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        pass
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
