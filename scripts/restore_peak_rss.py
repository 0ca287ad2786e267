"""Peak RSS of restoring a TF2 checkpoint, without the harness around it.

  python scripts/restore_peak_rss.py --mode live   [--gib 2]
  python scripts/restore_peak_rss.py --mode create [--gib 2]

One mode per process (TF's allocator keeps freed memory, so a second measurement in the
same process would start from the first one's peak). Compares Checkpoint.read() into a live model with read() into an empty model whose
variables are created afterwards (TF restores each one as it is created). Evidence for
the 8 GiB figures of issue 2.
"""

import argparse
import gc
import os
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import psutil  # noqa: E402

from harness.tfenv import import_tensorflow  # noqa: E402

GIB = 2**30


class Peak:
    def __init__(self):
        self.proc, self.value = psutil.Process(), 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            self.value = max(self.value, self.proc.memory_info().rss)
            time.sleep(0.005)

    def reset(self):
        self.value = self.proc.memory_info().rss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gib", type=float, default=2.0)
    p.add_argument("--mode", choices=["live", "create"], required=True)
    args = p.parse_args()
    n = 16
    elems = int(args.gib * GIB / 4 / n)
    tf = import_tensorflow()
    peak = Peak()
    with tempfile.TemporaryDirectory(prefix="restore-rss-") as d:
        root = tf.Module()
        for i in range(n):
            setattr(root, f"v{i}", tf.Variable(tf.random.uniform([elems])))
        path = tf.train.Checkpoint(model=root).write(os.path.join(d, "ckpt"))
        state = n * elems * 4
        peak.reset()
        base = peak.value
        if args.mode == "live":
            tf.train.Checkpoint(model=root).read(path).assert_consumed()
            what = "read() into the live model"
        else:
            del root  # a restarted process has no model yet
            gc.collect()
            peak.reset()
            base = peak.value
            fresh = tf.Module()
            status = tf.train.Checkpoint(model=fresh).read(path)
            for i in range(n):
                setattr(fresh, f"v{i}", tf.Variable(tf.zeros([elems])))
            status.assert_consumed()
            what = "read() into an empty model, then create the variables"
        print(f"{what}: state {state / GIB:.2f} GiB, RSS before {base / GIB:.2f} GiB, "
              f"peak {peak.value / GIB:.2f} GiB (+{(peak.value - base) / GIB:.2f})")


if __name__ == "__main__":
    main()
