#!/usr/bin/env python3
"""The task-fault matrix on local clusters: MultiWorkerMirroredStrategy with 3 workers, and
ParameterServerStrategy with a chief, 1 worker and 2 ps tasks.

    python scripts/distributed_matrix.py [--out DIR] [--tf-defaults] [--collective-timeout S]
                                         [--size SIZE] [--vars N] [--seed S]

Cells, one trial each (harness/distributed/faults.py, the same trial as
`ckpt-harness crash --strategy S --mode ... --task ... --point ...`):
  multi-worker:3
    {task-kill, task-freeze} x {worker:1, chief} x {before_save, after_save}
    task-absent of worker:1 (held at start: it never joins)
    task-kill x {worker:1, chief} x {before_merge, during_merge, before_checkpoint_update}
    task-freeze of the chief at before_checkpoint_update
    (the last three points are inside the save: strace signals the task at one call)
  parameter-server:1,2 (the chief alone saves; ps:0 and ps:1 each write a shard, ps:1 merges)
    task-kill x {ps:0, ps:1} x {before_save, after_save}
    task-freeze of ps:0 at before_save
    task-kill x {worker:0, chief} at before_save
    task-absent of ps:0
with the harness's fail-fast settings (collective and barrier timeout, default 60 s), or
TensorFlow's defaults with --tf-defaults.

Writes DIR/matrix.csv (default DIR: results/distributed) after every cell, atomically: a first
line `# commit <git rev-parse HEAD>[-dirty] ...` naming the tree it ran on, then one row per
cell and other task with the columns of harness/distributed/faults.py (COLUMNS; docs/distributed.md).
Exit 1 if any cell's restart did not end `complete` or a cell could not run. Temporary
directories and every task process are removed on every exit path (Ctrl-C and SIGTERM too).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# none of these imports TensorFlow
from harness.child import sigterm_as_interrupt  # noqa: E402
from harness.distributed.faults import COLUMNS, FaultPlan, run_trial, write_manifests  # noqa: E402
from harness.distributed.launcher import ClusterTimeout, TaskFailed  # noqa: E402
from harness.distributed.run import COLLECTIVE_TIMEOUT_S  # noqa: E402
from harness.distributed.strategy import parse_strategy  # noqa: E402
from harness.errors import HarnessError, UsageError  # noqa: E402
from harness.metadata import git_commit, installed_tf_version  # noqa: E402
from harness.outcomes import Outcome  # noqa: E402
from harness.results import atomic_write_text  # noqa: E402
from harness.specs import GraphSpec  # noqa: E402
from harness.units import parse_positive_int, parse_size  # noqa: E402

MW, PS = "multi-worker:3", "parameter-server:1,2"
CELLS = [(MW, mode, task, point) for mode in ("task-kill", "task-freeze") for task in ("worker:1", "chief")
         for point in ("before_save", "after_save")] + [(MW, "task-absent", "worker:1", "start")] + \
        [(MW, "task-kill", task, point) for task in ("worker:1", "chief")
         for point in ("before_merge", "during_merge", "before_checkpoint_update")] + \
        [(MW, "task-freeze", "chief", "before_checkpoint_update")] + \
        [(PS, "task-kill", task, point) for task in ("ps:0", "ps:1") for point in ("before_save", "after_save")] + \
        [(PS, "task-freeze", "ps:0", "before_save"), (PS, "task-kill", "worker:0", "before_save"),
         (PS, "task-kill", "chief", "before_save"), (PS, "task-absent", "ps:0", "start")]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def render(header: str, rows: list[dict]) -> str:
    buf = io.StringIO()
    buf.write(header + "\n")
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "results", "distributed"), metavar="DIR")
    ap.add_argument("--tf-defaults", action="store_true", help="TensorFlow's defaults: no collective timeout")
    ap.add_argument("--collective-timeout", default=str(int(COLLECTIVE_TIMEOUT_S)), metavar="S")
    ap.add_argument("--size", default="1MiB", metavar="SIZE")
    ap.add_argument("--vars", default="16", metavar="N")
    ap.add_argument("--seed", default=0, type=int)
    args = ap.parse_args(argv)
    try:
        spec = GraphSpec(n_vars=parse_positive_int(args.vars, "--vars"), state_bytes=parse_size(args.size),
                         seed=args.seed)
        timeout = float(parse_positive_int(args.collective_timeout, "--collective-timeout"))
        os.makedirs(args.out, exist_ok=True)
    except (HarnessError, OSError) as e:
        print(f"distributed_matrix: error: {e}", file=sys.stderr)
        return e.exit_code if isinstance(e, UsageError) else 2
    return run(args.out, spec, timeout, not args.tf_defaults)


def run(out: str, spec: GraphSpec, timeout: float, fail_fast: bool) -> int:
    from harness.faults.checker import Checker

    settings = "fail-fast" if fail_fast else "tf-defaults"
    header = (f"# commit {git_commit()} {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ} "
              f"tensorflow {installed_tf_version()} {' '.join(dict.fromkeys(c[0] for c in CELLS))} {settings}"
              + (f" collective_timeout_s={timeout:g}" if fail_fast else "")
              + f" size={spec.state_bytes} vars={spec.n_vars} seed={spec.seed}")
    path = os.path.join(out, "matrix.csv")
    work = tempfile.mkdtemp(prefix=".distributed-matrix-", dir=out)
    rows: list[dict] = []
    failures: list[str] = []
    t_all = time.monotonic()
    checker = Checker(os.path.join(work, "checker.log"), timeout=120.0)
    try:
        with sigterm_as_interrupt():
            manifests = os.path.join(work, "manifests")
            write_manifests(spec, manifests)
            for i, (label, mode, task, point) in enumerate(CELLS):
                strategy = parse_strategy(label)
                plan = FaultPlan(strategy, spec, mode, strategy.chief() if task == "chief" else task, point,
                                 fail_fast, collective_timeout=timeout)
                trial_dir = os.path.join(work, f"cell-{i}")
                try:
                    res = run_trial(plan, trial_dir, checker, manifests)
                except (ClusterTimeout, TaskFailed, RuntimeError) as e:
                    failures.append(f"{label} {mode} {task} {point}: could not reach the fault: {e}")
                    say(failures[-1])
                    continue
                finally:
                    shutil.rmtree(trial_dir, ignore_errors=True)
                who = f"{plan.task} (chief)" if task == "chief" else task
                rows.extend(dict(r, fault_task=who) for r in res.rows("matrix", i))
                atomic_write_text(path, render(header, rows))
                print(res.summary(i), flush=True)
                if res.restart is None or res.restart.outcome is not Outcome.COMPLETE:
                    failures.append(f"{label} {mode} {task} {point}: restart {res.restart.outcome if res.restart else '-'}")
    except KeyboardInterrupt:
        say("distributed_matrix: interrupted; every task was killed")
        return 130
    finally:
        checker.close()
        shutil.rmtree(work, ignore_errors=True)
    say(f"{len(CELLS)} cells in {time.monotonic() - t_all:.0f}s -> {path}")
    for f in failures:
        say(f"distributed_matrix: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
