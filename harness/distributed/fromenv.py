"""`ckpt-harness run --strategy multi-worker:N --cluster-from-env`: this process is ONE task of a
cluster that an external launcher started (a Kubernetes Job, Slurm's srun, a user's script),
each task with its own `TF_CONFIG`. There is no harness parent: every task runs the same command.

The task code is task.py's, unchanged: this process (which never imports TensorFlow) starts it as
a child through harness/child.py, its TF_CONFIG inherited, and sends it exactly the commands the
local driver (run.py) sends a multi-worker task — one `round` per `--repeat`, then `exit`. A child
and not a thread: a task waiting inside TensorFlow (the strategy's constructor, for a task that
never comes) holds the GIL, and nothing else in its process would run. The tasks meet only
through TensorFlow (collectives, the coordination service's barriers). Results meet in the
output directory, which every task must see (as every task must see the checkpoint directory
anyway): each task's driver rewrites `OUT/<run>/task-worker-<i>.json` atomically after each of
its task's messages, and marks it final (complete, error, or hang at `--timeout`). Every driver
then waits until every file is final (or its deadline + a grace) before it lets its task exit, so
no task leaves while another still needs it. The chief (worker:0) then judges each round with the
one judge (run.judged_rows -> verdict.py: `diverged` when the tasks disagree; a task with no word
is `hang`, one that failed `error`) and writes phases.csv and metadata.json like `run --strategy`;
it exits 1 unless every task of every round is `complete`. A non-chief exits 0 once its own task
ran every round (its code says only whether it failed itself).

The run's name is the same on every task without any message: a hash of TF_CONFIG's cluster spec
and the optional `--run-id` (give each launch its own, e.g. the Slurm job id: a chief refuses a
run directory that holds an earlier run's files).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sys
import threading
import time

from .. import metadata
from ..child import ChannelClosed, Child, ChildFailed, exit_text, sigterm_as_interrupt
from ..errors import UsageError
from ..fsio import ensure_writable_dir
from ..judge.manifest import Manifest
from ..outcomes import Outcome, Verdict
from ..results import PHASE_COLUMNS, atomic_write_csv, atomic_write_json
from ..specs import layout, total_bytes
from ..summary import print_summary
from ..units import parse_positive_int
from .launcher import TASK_MODULE, TaskFailed
from .run import API, COLLECTIVE_TIMEOUT_S, judged_rows, plan
from .strategy import StrategySpec

DEFAULT_OUT = os.path.join("results", "runs")
GATHER_GRACE_S = 15.0    # how long past its own deadline the chief waits for the others' files
POLL_S = 0.5
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ADDRESS = re.compile(r"^[^\s:]+:\d{1,5}$")


def read_tf_config(strategy: StrategySpec, environ=None) -> tuple[dict, str]:
    """(the cluster spec, this task's label) from TF_CONFIG, checked against `strategy`;
    anything missing, malformed or not matching is one UsageError line."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    where = "--cluster-from-env: TF_CONFIG"
    if not text.strip():
        raise UsageError(f"{where} is not set; the launcher must give every task its own "
                         "(see docs/distributed.md, 'Running on a real cluster')")
    try:
        conf = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{where} is not valid JSON ({e})") from None
    if not isinstance(conf, dict) or not isinstance(conf.get("cluster"), dict) \
            or not isinstance(conf.get("task"), dict):
        raise UsageError(f"{where} needs a \"cluster\" object and a \"task\" object")
    cluster, task = conf["cluster"], conf["task"]
    jobs = sorted(cluster)
    if jobs != ["worker"]:
        raise UsageError(f"{where} names the job(s) {', '.join(map(str, jobs)) or 'none'}; "
                         f"--strategy {strategy.label} needs exactly one job, worker (worker 0 is the chief)")
    workers = cluster["worker"]
    if not isinstance(workers, list) or not all(isinstance(a, str) and _ADDRESS.match(a) for a in workers):
        raise UsageError(f"{where}: cluster.worker must be a list of host:port addresses")
    if len(set(workers)) != len(workers):
        raise UsageError(f"{where}: cluster.worker names an address twice")
    if len(workers) != strategy.count:
        raise UsageError(f"{where} names {len(workers)} worker task(s) but --strategy {strategy.label} "
                         f"needs {strategy.count}")
    index = task.get("index")
    if task.get("type") != "worker" or isinstance(index, bool) or not isinstance(index, int) \
            or not 0 <= index < len(workers):
        raise UsageError(f"{where}: task must be {{\"type\": \"worker\", \"index\": 0..{len(workers) - 1}}}, "
                         f"got {json.dumps(task)}")
    return {"worker": list(workers)}, f"worker:{index}"


def run_id_for(cluster: dict, given: str | None) -> str:
    """The run's name, the same on every task: `--run-id` (or `cluster`) and a hash of both."""
    if given is not None and not _RUN_ID.match(given):
        raise UsageError(f"--run-id {given!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
    key = json.dumps({"cluster": cluster, "run_id": given}, sort_keys=True)
    return f"{given or 'cluster'}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def task_file(run_dir: str, label: str) -> str:
    return os.path.join(run_dir, f"task-{label.replace(':', '-')}.json")


class TaskReport:
    """This task's file: rewritten atomically after each message; frozen once final."""

    def __init__(self, path: str, label: str, run_id: str):
        self.path = path
        self._lock = threading.Lock()
        self.state = {"task": label, "run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
                      "stage": "start", "ready": None, "rows": [], "rounds": {}, "status": "running",
                      "error": None, "final": False}

    def on_message(self, msg: dict) -> None:
        with self._lock:
            if self.state["final"]:
                return
            event = msg.get("event")
            if event == "ready":
                self.state["ready"] = {k: msg.get(k) for k in ("tf_version", "replicas", "placement")}
                self.state["rows"].extend(msg.get("rows", []))
                self.state["stage"] = "ready"
            elif event == "round":
                r = int(msg["round"])
                self.state["rounds"][str(r)] = {k: msg.get(k) for k in ("rows", "digests", "error", "restored")}
                self.state["stage"] = f"round {r} done"
            elif event == "error":
                self.state["error"] = msg.get("message")
            self._write()

    def note(self, **entries) -> None:
        with self._lock:
            if not self.state["final"]:
                self.state.update(entries)
                self._write()

    def finish(self, status: str, error: str | None = None) -> None:
        with self._lock:
            if self.state["final"]:
                return
            self.state.update(status=status, final=True, error=error or self.state["error"])
            self._write()

    def _write(self) -> None:
        atomic_write_json(self.path, self.state)


def missing_verdict(state: dict | None, r: int) -> Verdict:
    """A task that has no result for round r, from its file (None: no file at all)."""
    if state is None:
        return Verdict(Outcome.HANG, "no task file by the chief's deadline: the task never started, "
                                     "or hung before writing one")
    if not state.get("final"):
        return Verdict(Outcome.HANG, f"its file stops at '{state.get('stage')}' with no final word by the "
                                     "chief's deadline")
    if state.get("status") == "hang":
        return Verdict(Outcome.HANG, f"hit its own deadline ({state.get('error')})")
    return Verdict(Outcome.ERROR, state.get("error") or f"reported no result for round {r}")


def gather(run_dir: str, labels: list[str], until: float) -> dict[str, dict | None]:
    """Every task's file (None where none), waiting until each is final or `until` (monotonic)."""
    got: dict[str, dict | None] = {label: None for label in labels}
    while True:
        for label in labels:
            if got[label] is not None and got[label].get("final"):
                continue
            try:
                with open(task_file(run_dir, label)) as f:
                    got[label] = json.load(f)
            except (OSError, ValueError):
                pass
        if all(s is not None and s.get("final") for s in got.values()) or time.monotonic() >= until:
            return got
        time.sleep(POLL_S)


def judge_files(states: dict[str, dict | None], rounds: int, ckpt_dir: str, base: dict,
                state_bytes: int) -> tuple[list[dict], list[str]]:
    """phases.csv rows from the tasks' files, and one failure line per round not complete."""
    rows = [dict(base, **row) for state in states.values() if state for row in state.get("rows", [])]
    failures = []
    for r in range(rounds):
        gen = r + 1
        path = os.path.join(ckpt_dir, f"manifest-g{gen}.json")
        manifest = Manifest.load(path) if os.path.exists(path) else None
        results, missing = {}, {}
        for label, state in states.items():
            got = (state or {}).get("rounds", {}).get(str(r))
            if got is not None and manifest is not None:
                results[label] = got
            elif got is not None:
                missing[label] = Verdict(Outcome.ERROR, f"no manifest-g{gen}.json: the chief never began save {gen}")
            else:
                missing[label] = missing_verdict(state, r)
        got_rows, cluster = judged_rows(base, r, manifest, results, state_bytes, missing)
        rows.extend(got_rows)
        bad = sorted({x["task"] for x in got_rows if x.get("outcome") not in (None, "")
                      and x["outcome"] != Outcome.COMPLETE.value})
        if bad:
            failures.append(f"{base['scenario']} round {r}: {cluster.outcome} (not complete: {', '.join(bad)}): "
                            f"{cluster.detail}")
    return rows, failures


def main(args, strategy: StrategySpec) -> int:
    if strategy.kind != "multi-worker":
        raise UsageError(f"--cluster-from-env supports --strategy multi-worker:N only, not {strategy.label}")
    started = time.monotonic()
    spec = plan(args, strategy)
    rounds = parse_positive_int(args.repeat, "--repeat")
    timeout = float(parse_positive_int(args.timeout, "--timeout"))
    barrier = not getattr(args, "no_barrier", False)
    cluster, label = read_tf_config(strategy)
    run_id = run_id_for(cluster, getattr(args, "run_id", None))
    chief = strategy.chief()
    is_chief = label == chief
    run_dir = os.path.join(ensure_writable_dir(args.out or DEFAULT_OUT, "output directory"), run_id)
    os.makedirs(run_dir, exist_ok=True)
    ckpt_root = ensure_writable_dir(args.scratch, "scratch directory") if args.scratch else None
    ckpt_dir = os.path.join(ckpt_root, run_id, "ckpt") if ckpt_root else os.path.join(run_dir, "ckpt")
    own_file = task_file(run_dir, label)
    # an earlier launch of the same name: the chief's metadata or checkpoints, or this task's file.
    # (Other tasks' files may be this launch's already. A stale one cannot be judged: its task
    # refuses here, so no cluster forms and the chief never writes a manifest.)
    if is_chief and (os.path.exists(os.path.join(run_dir, "metadata.json"))
                     or (os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir))):
        raise UsageError(f"{run_dir} already holds an earlier run (metadata.json or checkpoints); "
                         "give this launch its own --run-id")
    if os.path.exists(own_file):
        raise UsageError(f"{own_file} is from an earlier run; give this launch its own --run-id")
    os.makedirs(ckpt_dir, exist_ok=True)
    say = (lambda _t: None) if args.quiet else (lambda t: print(t, file=sys.stderr, flush=True))
    name = f"{API}/{strategy.label}/{spec.label}"

    meta, meta_path = None, os.path.join(run_dir, "metadata.json")
    if is_chief:
        meta = metadata.collect(run_dir, run_id=run_id, kind="run", repeats=rounds, strategy=strategy.label,
                                barrier=barrier, tasks=[t.label for t in strategy.tasks()],
                                cluster_from_env=True, cluster=cluster,
                                scenarios=[{"api": API, "device": "cpu", "spec": spec.to_dict(),
                                            "strategy": strategy.label}],
                                scratch_filesystem=metadata.filesystem_type(ckpt_dir), status="running")
        atomic_write_json(meta_path, meta)
    say(f"ckpt-harness run {run_id}: {name}, task {label} of {len(cluster['worker'])}, {rounds} round(s) "
        f"-> {run_dir}")
    job = {"task": label, "strategy": {"kind": strategy.kind, "count": strategy.count, "ps": strategy.ps},
           "spec": spec.to_dict(), "ckpt_dir": ckpt_dir, "chief": chief,
           "collective_timeout_s": COLLECTIVE_TIMEOUT_S, "deadline_s": timeout, "started_at": time.time(),
           "env": {"GRPC_FAIL_FAST": os.environ.get("GRPC_FAIL_FAST", "use_caller")}}
    commands = [{"cmd": "round", "round": r, "generation": r + 1, "barrier": barrier, "delay_save": 0.0}
                for r in range(rounds)]
    report = TaskReport(own_file, label, run_id)
    deadline = started + timeout
    labels = [t.label for t in strategy.tasks()]
    with sigterm_as_interrupt():   # SIGTERM unwinds like Ctrl-C: the task's process group is killed
        child = None
        try:
            child = _drive(label, job, commands, report, run_dir, deadline)
            # every task's TF process stays up until every file is final (or the deadline): none
            # leaves while another still needs the collectives or the coordination service
            states = gather(run_dir, labels, deadline + GATHER_GRACE_S)
            if child is not None:
                child.close(grace=5.0)
        except KeyboardInterrupt:
            report.finish("error", "interrupted")
            if meta is not None:
                metadata.finish(meta, meta_path, "interrupted", [])
            print("ckpt-harness: interrupted; this task was killed", file=sys.stderr)
            return 130
        finally:
            if child is not None:
                child.kill()
    own_ok = report.state["status"] == "complete"
    if not own_ok:
        say(f"  task {label}: {report.state['status']}: {report.state['error']}")
    if not is_chief:
        print(f"results: {own_file}")
        return 0 if own_ok else 1
    return _finish_as_chief(strategy, spec, rounds, run_dir, ckpt_dir, run_id, name, meta, meta_path, states, say)


def _drive(label: str, job: dict, commands: list[dict], report: TaskReport, run_dir: str, deadline: float):
    """Run this task (task.py, a child process: a task stuck inside TensorFlow holds the GIL, so it
    cannot share this process) through `commands` within `deadline`; its replies go to `report`,
    which ends final: complete, error or hang. Returns the Child (to be closed), or None."""
    path = os.path.join(run_dir, f"job-{label.replace(':', '-')}.json")
    with open(path, "w") as f:
        json.dump(job, f)
    child = Child(TASK_MODULE, os.path.join(run_dir, f"task-{label.replace(':', '-')}.log"), args=(path,),
                  what=f"task {label}")

    def left() -> float:
        return deadline - time.monotonic()

    def expect(event: str) -> dict:
        while True:
            if left() <= 0:
                raise TimeoutError
            msg = child.recv(left())
            if msg.get("event") == "error":
                raise TaskFailed(label, msg.get("message", "error"))
            report.on_message(msg)
            if msg.get("event") == event:
                return msg

    try:
        hello = child.start(max(1.0, left()))
        if hello.get("event") == "error":
            raise TaskFailed(label, hello.get("message", "error"))
        report.note(task_pid=hello.get("pid"))   # the TensorFlow process (its own process group)
        expect("ready")
        for cmd in commands:
            child.send(cmd)
            expect("round")
    except (TimeoutError, ChildFailed) as e:
        if isinstance(e, ChildFailed) and not e.timed_out:
            report.finish("error", str(e))
        else:
            report.finish("hang", f"--timeout {job['deadline_s']:.0f}s passed at '{report.state['stage']}'")
        child.kill()
        return None
    except TaskFailed as e:
        report.finish("error", str(e))
        child.kill()
        return None
    except ChannelClosed:
        code = child.wait(2.0)
        report.finish("error", f"the task ended ({exit_text(code)}): {child.log_tail()}")
        child.kill()
        return None
    except BaseException:
        child.kill()
        raise
    report.finish("complete")
    return child


def _finish_as_chief(strategy, spec, rounds, run_dir, ckpt_dir, run_id, name, meta, meta_path, states, say) -> int:
    state_bytes = total_bytes(layout(spec))
    base = {"run_id": run_id, "scenario": name, "api": API, "device": "cpu", "n_vars": spec.n_vars,
            "shape_mix": spec.shape_mix, "optimizer": False, "state_bytes": state_bytes,
            "strategy": strategy.label}
    rows, failures = judge_files(states, rounds, ckpt_dir, base, state_bytes)
    ready = (states.get(strategy.chief()) or {}).get("ready") or {}
    meta.update(tensorflow_runtime_version=ready.get("tf_version"), replicas_in_sync=ready.get("replicas"),
                placement=ready.get("placement"),
                task_status={label: (s or {}).get("status", "no file") for label, s in states.items()})
    atomic_write_csv(os.path.join(run_dir, "phases.csv"), rows, PHASE_COLUMNS)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    if os.path.dirname(ckpt_dir) != run_dir:   # --scratch: SCRATCH/<run>/ckpt
        try:
            os.rmdir(os.path.dirname(ckpt_dir))
        except OSError:
            pass
    metadata.finish(meta, meta_path, "complete", failures)
    for row in rows:
        if row["phase"] == "agree":
            say(f"  round {row['repeat']}: {row['outcome']} ({row['detail']})")
    print_summary([dict(r, scenario=f"{r['scenario']} [{r.get('task', '')}]") for r in rows])
    print(f"results: {run_dir}")
    for f in failures:
        print(f"ckpt-harness: scenario failed: {f}", file=sys.stderr)
    return 1 if failures else 0
