"""`ckpt-harness run --strategy ...` for tf.distribute strategies other than `none`.

One cluster (launcher.py) lives for the whole run; each repeat is a round: every task
sets the state of save number round+1, the chief saves (non-chief workers save to a
temporary dir and delete it), the barrier, every task restores the latest checkpoint
and fingerprints every replica (task.py). The harness judges each task's digests
against the manifest the chief wrote before its save, with the one judge, and the
tasks against each other (verdict.py): disagreement is `diverged`.

Under parameter-server only the chief holds the model and runs the rounds; the worker and
ps tasks serve (see task.py).

Rows (phases.csv, with a `task` column): per task `strategy` (the strategy's
constructor, i.e. joining the cluster), `build`, and per round `init`, `save`,
`barrier` (multi-worker), `restore_warm` and `verify` (the task's own verdict); per
round one `agree` row with task `cluster` holding the cluster's verdict. The run exits 1
unless every task and every round is `complete`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from .. import metadata
from ..child import sigterm_as_interrupt
from ..errors import UsageError, finish_command
from ..fsio import ensure_writable_dir
from ..judge.manifest import Manifest
from ..judge.restore import expected_digests
from ..outcomes import Outcome, Verdict
from ..results import PHASE_COLUMNS, atomic_write_csv, atomic_write_json, new_run_id
from ..specs import GraphSpec, total_bytes, layout
from ..summary import print_summary
from ..units import parse_positive_int, parse_size
from .launcher import ClusterTimeout, LocalCluster, TaskFailed
from .strategy import StrategySpec
from .verdict import judge_round

API = "tf2-manager"           # what the tasks use: tf.train.Checkpoint + CheckpointManager
ACCEPTED_APIS = (API, "tf2-checkpoint")
DEFAULT_SIZE = "16MiB"
DEFAULT_VARS = 64
COLLECTIVE_TIMEOUT_S = 60.0   # the harness's fail-fast default for collectives and the barrier
CLUSTER_COLUMN = "cluster"    # the task column of the rows that judge the whole cluster


class ClusterRun:
    """A started cluster of one strategy and spec, and its rounds. Use as a context manager."""

    def __init__(self, strategy: StrategySpec, spec: GraphSpec, workdir: str, deadline: float,
                 collective_timeout: float = COLLECTIVE_TIMEOUT_S, pause_at: dict | None = None):
        self.strategy, self.spec, self.workdir = strategy, spec, workdir
        self.ckpt_dir = os.path.join(workdir, "ckpt")
        os.makedirs(self.ckpt_dir, exist_ok=True)
        self.name = f"{API}/{strategy.label}/{spec.label}"
        self.state_bytes = total_bytes(layout(spec))
        job = {"strategy": {"kind": strategy.kind, "count": strategy.count, "ps": strategy.ps}, "spec": spec.to_dict(),
               "ckpt_dir": self.ckpt_dir, "chief": strategy.chief(),
               "collective_timeout_s": collective_timeout}
        self.pause_at = pause_at or {}   # task label -> point: where a task stops (faults, tests)
        self.cluster = LocalCluster(strategy.tasks(), job, workdir, deadline,
                                    use_tf_config=strategy.multi_process,
                                    per_task={t: {"pause_at": p} for t, p in self.pause_at.items()})
        self.meta: dict = {}
        self.start_rows: list[dict] = []

    def base(self) -> dict:
        return {"scenario": self.name, "api": API, "device": "cpu", "n_vars": self.spec.n_vars,
                "shape_mix": self.spec.shape_mix, "optimizer": False, "state_bytes": self.state_bytes,
                "strategy": self.strategy.label}

    def start(self) -> list[dict]:
        """Start the tasks; returns their `strategy` and `build` rows once all are ready."""
        self.cluster.start()
        clients = self.strategy.clients()
        servers = [t for t in self.cluster.labels if t not in clients]
        ready = self.cluster.gather("ready", labels=servers)   # parameter-server: servers first
        if servers:
            self.cluster.send_all({"cmd": "connect"}, labels=clients)
        ready.update(self.cluster.gather("ready", labels=clients))
        first = ready[self.strategy.chief()]
        self.meta = {"tensorflow_runtime_version": first.get("tf_version"),
                     "replicas_in_sync": first.get("replicas"), "placement": first.get("placement")}
        self.start_rows = [dict(self.base(), **row) for msg in ready.values() for row in msg["rows"]]
        return self.start_rows

    def round(self, r: int, barrier: bool = True, delay_save: float = 0.0) -> tuple[list[dict], Verdict]:
        """Round r (save number r+1 on every task): the rows and the cluster's verdict."""
        gen = r + 1
        clients = self.strategy.clients()
        self.cluster.send_all({"cmd": "round", "round": r, "generation": gen, "barrier": barrier,
                               "delay_save": delay_save}, labels=clients)
        results = self.cluster.gather("round", labels=clients)
        manifest = Manifest.load(os.path.join(self.ckpt_dir, f"manifest-g{gen}.json"))
        return judged_rows(self.base(), r, manifest, results, self.state_bytes)

    def close(self) -> None:
        self.cluster.close(grace=5.0)

    def __enter__(self) -> "ClusterRun":
        try:
            self.start()
        except BaseException:
            self.cluster.close(grace=0)
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.cluster.close(grace=5.0 if exc_type is None else 0)


def judged_rows(base: dict, r: int, manifest: Manifest, results: dict[str, dict], state_bytes: int,
                missing: dict[str, Verdict] | None = None) -> tuple[list[dict], Verdict]:
    """Round r's rows from the tasks' round messages (task -> message), judged against the
    chief's manifest: each task's verdict on its `restore_warm` and `verify` rows, one `agree`
    row for the cluster. `missing`: tasks with no message, and their verdict (hang, error):
    the cluster's verdict is then the worst of theirs and the others'. (--cluster-from-env too.)"""
    rows = []
    cluster = None
    if results:
        per_task, cluster = judge_round(expected_digests(manifest), results)
        for task, msg in results.items():
            for row in msg["rows"]:
                row = dict(base, **row)
                if row["phase"] in ("restore_warm", "verify"):
                    row.update(per_task[task].as_dict())
                rows.append(row)
    for task, verdict in (missing or {}).items():
        rows.append(dict(base, phase="verify", repeat=r, task=task, seconds=0.0, **verdict.as_dict()))
        if cluster is None or verdict.outcome > cluster.outcome:
            cluster = Verdict(verdict.outcome, f"{task}: {verdict.detail}")
    if cluster is None:
        raise ValueError("a round needs at least one task's result or verdict")
    rows.append(dict(base, phase="agree", repeat=r, task=CLUSTER_COLUMN, seconds=0.0, **cluster.as_dict()))
    if cluster.outcome == Outcome.COMPLETE:
        for row in rows:
            if row["phase"] in ("save", "restore_warm") and row["seconds"] > 0:
                row["gbps"] = state_bytes / row["seconds"] / 1e9
    return rows, cluster


def plan(args, strategy: StrategySpec) -> GraphSpec:
    """The spec a distributed run uses; options it does not support are refused in one line."""
    for api in args.api or ():
        if api not in ACCEPTED_APIS:
            raise UsageError(f"--strategy {strategy.label} saves with {API} (tf.train.Checkpoint and "
                             f"CheckpointManager); --api {api} is not supported with a strategy")
    if str(args.device).strip().lower() != "cpu":
        raise UsageError(f"--strategy {strategy.label} places variables itself; leave --device at cpu")
    if getattr(args, "optimizer", False):
        raise UsageError(f"--optimizer is not supported with --strategy {strategy.label} yet")
    for name in ("model", "keras"):
        if getattr(args, name, None):
            raise UsageError(f"--{name} is not supported with --strategy {strategy.label}")
    size = parse_size(args.size if args.size is not None else DEFAULT_SIZE)
    n_vars = parse_positive_int(args.vars if args.vars is not None else DEFAULT_VARS, "--vars")
    return GraphSpec(n_vars=n_vars, state_bytes=size, shape_mix=args.shape_mix,
                     dtypes=tuple(args.dtype or ("float32",)), seed=args.seed)


def main(args, strategy: StrategySpec) -> int:
    if getattr(args, "cluster_from_env", False):   # one task of a cluster an external launcher started
        from .fromenv import main as from_env_main
        return from_env_main(args, strategy)
    spec = plan(args, strategy)
    rounds = parse_positive_int(args.repeat, "--repeat")
    timeout = float(parse_positive_int(args.timeout, "--timeout"))
    barrier = not getattr(args, "no_barrier", False)
    delay = float(getattr(args, "chief_save_delay", 0.0) or 0.0)   # hidden: plants the barrier race
    if delay < 0:
        raise UsageError("--chief-save-delay must not be negative")
    out_root = ensure_writable_dir(args.out or os.path.join("results", "runs"), "output directory")
    scratch_root = ensure_writable_dir(args.scratch, "scratch directory") if args.scratch else None

    run_id = new_run_id("run")
    run_dir = os.path.join(out_root, run_id)
    os.makedirs(run_dir)
    scratch = tempfile.mkdtemp(prefix=".scratch-", dir=scratch_root or run_dir)
    meta = metadata.collect(run_dir, run_id=run_id, kind="run", repeats=rounds, strategy=strategy.label,
                            barrier=barrier, tasks=[t.label for t in strategy.tasks()],
                            scenarios=[{"api": API, "device": "cpu", "spec": spec.to_dict(),
                                        "strategy": strategy.label}],
                            scratch_filesystem=metadata.filesystem_type(scratch), status="running")
    meta_path = os.path.join(run_dir, "metadata.json")
    atomic_write_json(meta_path, meta)
    say = (lambda _t: None) if args.quiet else (lambda t: print(t, file=sys.stderr, flush=True))
    rows: list[dict] = []
    failures: list[str] = []
    status = "complete"
    with sigterm_as_interrupt():   # SIGTERM unwinds like Ctrl-C: every task killed, scratch removed
        try:
            run = ClusterRun(strategy, spec, os.path.join(scratch, "cluster"), timeout)
            say(f"ckpt-harness run {run_id}: {run.name}, {len(strategy.tasks())} task(s) x {rounds} "
                f"round(s){'' if barrier else ', NO barrier'} -> {run_dir}")
            try:
                with run:
                    rows.extend(dict(r, run_id=run_id) for r in run.start_rows)
                    meta.update(run.meta)
                    for r in range(rounds):
                        got, verdict = run.round(r, barrier=barrier, delay_save=delay)
                        rows.extend(dict(x, run_id=run_id) for x in got)
                        atomic_write_csv(os.path.join(run_dir, "phases.csv"), rows, PHASE_COLUMNS)
                        say(f"  round {r}: {verdict.outcome} ({verdict.detail})")
                        bad = sorted({x["task"] for x in got if x.get("outcome") not in (None, "")
                                      and x["outcome"] != Outcome.COMPLETE.value})
                        if bad:
                            failures.append(f"{run.name} round {r}: {verdict.outcome} "
                                            f"(not complete: {', '.join(bad)}): {verdict.detail}")
            except (ClusterTimeout, TaskFailed) as e:
                failures.append(f"{run.name}: {e}")
                say(f"  failed: {e}")
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            if rows:
                atomic_write_csv(os.path.join(run_dir, "phases.csv"), rows, PHASE_COLUMNS)
            shutil.rmtree(scratch, ignore_errors=True)
            metadata.finish(meta, meta_path, status, failures)
    if rows:
        print_summary([dict(r, scenario=f"{r['scenario']} [{r.get('task', '')}]") for r in rows])
    return finish_command(run_dir, status, failures, "the cluster's tasks were killed", "scenario failed: ")
