"""The first Checkpoint.read in a process against the ones after it, by how the state was zeroed.

  python scripts/first_restore.py [--vars 20000] [--size 100MiB] [--reads 3] [--zero raw|assign] [--gc on|frozen]

One process: a tf2-checkpoint ScenarioSession (what `ckpt-harness run` times) is
built, initialised and saved once; then `--reads` times the live variables are
zeroed, untimed, and the restore call alone (`restore_call`, Checkpoint.read)
is timed. `--zero raw` zeroes the way the harness poisons before a restore
(one raw AssignVariableOp a variable, harness/savers/tfvars.py); `--zero
assign` the way scripts/bare_save.py does (`var.assign(tf.zeros_like(var))`).
`--gc frozen` runs gc.collect() and gc.freeze() before each timed read (and
gc.unfreeze() after it), so Python's cyclic collector has nothing old to scan
during the read: the difference to `--gc on` is what collections cost a read
in this process. Prints wall and process CPU seconds of each step.

Why: at 100,000 variables the harness's timed restore ran longer than the bare
script's. This shows where that goes: the first read of a process carries a
one-time cost the later ones do not, and its size depends on how the variables
were last written before it.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vars", type=int, default=20000)
    p.add_argument("--size", default="100MiB")
    p.add_argument("--reads", type=int, default=3)
    p.add_argument("--zero", choices=["raw", "assign"], default="raw")
    p.add_argument("--gc", choices=["on", "frozen"], default="on",
                   help="frozen: collect and freeze Python's heap before each timed read")
    p.add_argument("--dir", default=None, help="where the checkpoint is written [a temp dir]")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from harness.session import Scenario, ScenarioSession
    from harness.specs import GraphSpec
    from harness.units import parse_size

    spec = GraphSpec(n_vars=a.vars, state_bytes=parse_size(a.size))
    session = ScenarioSession(Scenario("tf2-checkpoint", spec=spec), tempfile.mkdtemp(prefix="first-restore-",
                                                                                      dir=a.dir))
    import tensorflow as tf

    tf.zeros([1]).numpy()  # device set-up is not the first step's

    def step(label, fn):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        print(f"{label:<14} wall {time.perf_counter() - t0:8.2f} s   cpu {time.process_time() - c0:8.2f} s",
              flush=True)

    def zero():
        if a.zero == "raw":
            session.adapter.poison()
        else:
            for _, var in session.adapter._all_state():
                var.assign(tf.zeros_like(var))

    try:
        step("build", session.build)
        step("init", session.init)
        session.prepare_save()
        step("save", session.save_call)
        for i in range(a.reads):
            step(f"zero ({a.zero})", zero)
            if a.gc == "frozen":
                gc.collect()
                gc.freeze()
            step(f"read #{i + 1}", session.restore_call)
            gc.unfreeze()
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
