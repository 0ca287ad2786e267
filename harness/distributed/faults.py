"""Task faults on a local cluster: `ckpt-harness crash --strategy multi-worker:N|parameter-server:W,P
--mode task-kill|task-freeze|task-absent --task worker:1|chief|ps:0 [--point P]`.

One trial:
  task-kill / task-freeze  start the cluster (launcher.py), run round 1 (save 1, judged and
                           agreed: else the trial stops), then round 2 in which the chosen task
                           stops at `--point` (task.py's per-round pause) and is then SIGKILLed
                           (task-kill) or SIGSTOPped (task-freeze), its whole process group;
                           at a point inside the save (IN_SAVE_POINTS) the task is held before
                           its save, strace is attached to it, and strace signals it at the
                           first call of the point on its path.
  task-absent              the chosen task says hello and stops at `start`: it never joins
                           (TF's strategy constructor waits for it without end).
Under parameter-server the chief alone runs rounds (task.py); the worker and ps tasks only
serve. A faulted server is signalled while the chief is held at the point, then the chief
goes on; the servers that are left say nothing, and count as serving unless they die while
the chief is watched (or, the chief faulted, for SERVER_WINDOW_S). Points inside the save are
multi-worker only: under parameter-server each ps task writes its own shard.
Then the harness watches every OTHER task until it reacts or the harness's own deadline
(`notice_timeout` after the fault) passes: an error message (type and first line), a death
(which signal or exit status), a finished round, or nothing (`hang`: the harness kills the
cluster). The whole cluster is then killed and reaped.

What is on disk is judged by the crash campaign's checker (harness/faults/checker.py, one
judge: a fresh single-process restore of the latest checkpoint, compared with the manifests
of save 1 and save 2): new / rollback / detected / lost / silent. Orphans are the bytes of
TF's temporary files (`*_temp/`, ...) and of any `workertemp_*` folder left behind.

Restart: a fresh cluster of all tasks on the same directory; each task restores the latest
checkpoint (the `resume` command) and is judged against the save the checker found there,
then one more round (save 3). The restart is `complete` only if every task is complete and
they all agree (verdict.py), resume and round alike.

Settings: fail-fast (the harness's default: CommunicationOptions(timeout_seconds) and the
barrier's timeout) or TF's defaults (no collective timeout; the barrier waits up to the
task's deadline). Either way the harness's deadline bounds each wait.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from .. import metadata
from ..child import ChannelClosed, exit_text, sigterm_as_interrupt
from ..errors import UsageError, finish_command
from ..fsio import ensure_writable_dir
from ..judge.manifest import Manifest
from ..judge.restore import expected_digests
from ..outcomes import Outcome, Verdict, worst
from ..results import atomic_write_csv, atomic_write_json, new_run_id
from ..specs import GraphSpec, layout
from ..units import parse_positive_int, parse_size
from .launcher import ClusterTimeout, TaskFailed
from .run import COLLECTIVE_TIMEOUT_S, ClusterRun
from .strategy import StrategySpec
from .verdict import judge_round

MODES = ("task-kill", "task-freeze", "task-absent")
SIGNALS = {"task-kill": signal.SIGKILL, "task-freeze": signal.SIGSTOP}
# Points inside the faulted task's save 2, found by strace (-P: calls on that path only) in the
# order TF 2.21 saves: data and index written into `ckpt-2_temp/` (temp names, renamed), the
# merge reads the temp index, renames the data file into place, writes `ckpt-2.index`, removes
# `ckpt-2_temp/`; then the CheckpointManager rewrites `checkpoint`. Each point is the first call
# of `syscalls` on `path` (relative to the task's save directory); SIGKILL lands at its entry
# (the call never happens), SIGSTOP when it returns (strace delivers other signals on exit).
# The data write itself cannot be singled out: its file has a random `.tempstate` name.
IN_SAVE_POINTS = {
    "before_merge": ("open,openat", "ckpt-{g}_temp/part-00000-of-00001.index"),   # the merge's first read
    "during_merge": ("open,openat", "ckpt-{g}.index"),           # data renamed into place, no index yet
    "before_checkpoint_update": ("rmdir,unlinkat", "ckpt-{g}_temp"),   # ckpt-2 complete, unnamed
}
FAULT_POINTS = ("before_save", *IN_SAVE_POINTS, "after_save", "before_restore")   # kill/freeze (round 2)
FAULT_GENERATION = 2          # the save the fault hits; save 1 completed and was agreed
RESTART_GENERATION = 3        # the restart's own round
CHECKPOINT_KEEP = 5           # task.py's CheckpointManager max_to_keep
START_TIMEOUT_S = 240.0       # cluster start and round 1 (before the fault)
RESTART_TIMEOUT_S = 240.0     # the restart cluster's whole life
TF_DEFAULTS_NOTICE_S = 120.0  # harness deadline after the fault with TF's defaults
NOTICE_MARGIN_S = 30.0        # fail-fast: collective timeout + this
SERVER_WINDOW_S = 10.0        # parameter-server, chief faulted: how long the servers are watched

COLUMNS = ["run_id", "trial", "strategy", "mode", "fault_task", "point", "fault_detail", "settings",
           "collective_timeout_s",
           "task", "reaction", "reaction_detail", "notice_s", "disk_outcome", "disk_detail", "latest",
           "orphan_bytes", "orphans", "restart_outcome", "restart_detail", "watch_s", "trial_s", "case_dir"]
CSV_NAME = "distributed_faults.csv"


@dataclass(frozen=True)
class FaultPlan:
    strategy: StrategySpec
    spec: GraphSpec
    mode: str
    task: str                     # the faulted task's label, e.g. "worker:1"
    point: str = "before_save"    # kill/freeze: where in round 2; absent: always "start"
    fail_fast: bool = True
    collective_timeout: float = COLLECTIVE_TIMEOUT_S
    notice_timeout: float | None = None   # None: the default for the settings

    @property
    def settings(self) -> str:
        return "fail-fast" if self.fail_fast else "tf-defaults"

    @property
    def timeout(self) -> float | None:   # what the tasks get as collective timeout
        return self.collective_timeout if self.fail_fast else None

    @property
    def notice_s(self) -> float:
        if self.notice_timeout is not None:
            return float(self.notice_timeout)
        return self.collective_timeout + NOTICE_MARGIN_S if self.fail_fast else TF_DEFAULTS_NOTICE_S


@dataclass
class Reaction:
    """What one other task did after the fault."""
    outcome: Outcome    # error (it raised), crash (it died), hang (the harness's deadline), complete
    detail: str
    seconds: float | None = None   # from the fault until the harness heard of it


@dataclass
class TrialResult:
    plan: FaultPlan
    reactions: dict[str, Reaction] = field(default_factory=dict)
    disk: Verdict | None = None
    latest: str = ""
    orphan_bytes: int = 0
    orphans: list[str] = field(default_factory=list)
    restart: Verdict | None = None
    disk_note: str = ""    # why there is no disk verdict (task-absent: nothing was saved)
    fault_detail: str = ""  # how the fault was delivered (which signal, at which call)
    watch_s: float = 0.0   # from the fault until every other task reacted (or hung) and all were reaped
    seconds: float = 0.0
    pids: list[int] = field(default_factory=list)   # every task process of both clusters
    case_dir: str = ""     # the kept crash case, relative to the run directory (`cases/trial-N`)

    def rows(self, run_id: str, trial: int) -> list[dict]:
        p = self.plan
        base = {"run_id": run_id, "trial": trial, "strategy": p.strategy.label, "mode": p.mode,
                "fault_task": p.task, "point": p.point, "fault_detail": self.fault_detail,
                "settings": p.settings,
                "collective_timeout_s": "" if p.timeout is None else p.timeout,
                "disk_outcome": self.disk.outcome.value if self.disk else "",
                "disk_detail": self.disk.detail if self.disk else self.disk_note, "latest": self.latest,
                "orphan_bytes": self.orphan_bytes, "orphans": " ".join(self.orphans),
                "restart_outcome": self.restart.outcome.value if self.restart else "",
                "restart_detail": self.restart.detail if self.restart else "",
                "watch_s": round(self.watch_s, 2), "trial_s": round(self.seconds, 2), "case_dir": self.case_dir}
        return [dict(base, task=label, reaction=r.outcome.value, reaction_detail=r.detail,
                     notice_s="" if r.seconds is None else round(r.seconds, 2))
                for label, r in sorted(self.reactions.items())]

    def summary(self, trial: int) -> str:
        p = self.plan
        others = ", ".join(f"{label} {r.outcome.value}"
                           + (f" after {r.seconds:.1f}s" if r.seconds is not None else "")
                           + (f" ({r.detail.split(':')[0]})" if r.outcome is Outcome.ERROR else "")
                           for label, r in sorted(self.reactions.items()))
        disk = self.disk.outcome.value if self.disk else "-"
        restart = self.restart.outcome.value if self.restart else "-"
        return (f"trial {trial}: {p.mode} {p.task} at {p.point} ({p.settings}): others: {others}; "
                f"disk {disk}{' (' + self.latest + ')' if self.latest else ''}; orphans {self.orphan_bytes} B; "
                f"restart {restart}; {self.seconds:.0f}s")


# -- parsing ---------------------------------------------------------------------------
def parse_task(text: str | None, strategy: StrategySpec) -> str:
    """`chief`, `worker:N` or `ps:N` -> the task's label in this strategy's cluster."""
    if not text:
        raise UsageError("--task is required with a task fault: chief, worker:N or ps:N")
    t = str(text).strip().lower()
    if t == "chief":
        return strategy.chief()
    labels = [x.label for x in strategy.tasks()]
    if t not in labels:
        raise UsageError(f"--task {text!r} is not a task of {strategy.label}; use chief or one of "
                         f"{', '.join(x for x in labels if x != strategy.chief())}")
    return t


def plan_from_args(args, strategy: StrategySpec) -> tuple[FaultPlan, int]:
    """The plan and the number of trials, or one clear UsageError."""
    if args.mode not in MODES:
        raise UsageError(f"--strategy {strategy.label} works with --mode {', '.join(MODES)}, not {args.mode}")
    if strategy.kind not in ("multi-worker", "parameter-server"):
        raise UsageError(f"task faults run on --strategy multi-worker:N or parameter-server:W,P, "
                         f"not {strategy.label}")
    if strategy.kind == "multi-worker" and strategy.count < 2:
        raise UsageError("a task fault needs at least 2 workers (multi-worker:2 or more)")
    if getattr(args, "api", None) or getattr(args, "target", None):
        raise UsageError("--api and --target do not apply to task faults (the tasks save with tf2-manager)")
    task = parse_task(getattr(args, "task", None), strategy)
    point = getattr(args, "point", None)
    if args.mode == "task-absent":
        if point not in (None, "start"):
            raise UsageError("--mode task-absent holds the task at start (it never joins); leave out --point")
        point = "start"
    else:
        point = point or "before_save"
        if point not in FAULT_POINTS:
            raise UsageError(f"--point {point!r} is not a fault point; use one of {', '.join(FAULT_POINTS)}")
        if point in IN_SAVE_POINTS and strategy.kind == "parameter-server":
            raise UsageError(f"--point {point} works on multi-worker for now: under parameter-server the "
                             f"ps tasks write the shards; use before_save, after_save or before_restore")
        if point in IN_SAVE_POINTS:
            from ..faults import strace
            strace.require(f"--point {point}")   # found by strace: one clear line without it
    size = parse_size(args.size)
    if size > 256 * 1024**2:
        raise UsageError(f"--size {args.size} is too large for a task fault; use at most 256MiB")
    spec = GraphSpec(n_vars=parse_positive_int(args.vars, "--vars"), state_bytes=size, seed=args.seed)
    trials = parse_positive_int(args.trials if args.trials is not None else "1", "--trials")
    notice = getattr(args, "timeout", None)
    notice = float(parse_positive_int(notice, "--timeout")) if notice is not None else None
    fail_fast = getattr(args, "settings", "fail-fast") != "tf-defaults"
    return FaultPlan(strategy, spec, args.mode, task, point, fail_fast, notice_timeout=notice), trials


# -- one trial -------------------------------------------------------------------------
def _watch(cluster, labels: list[str], t_fault: float, until: float, done_events: tuple,
           servers: list[str] = (), server_window: float = 0.0) -> dict[str, Reaction]:
    """Each task's first reaction after the fault, heard in parallel (one thread per task),
    each timed from `t_fault`; `hang` for a task silent until `until`. `servers` (the worker
    and ps tasks of parameter-server) say nothing after `ready`: each is watched until every
    one of `labels` has reacted (or for `server_window` seconds when there are none) and then
    counts as `complete`, serving, unless it died or reported an error before."""
    out: dict[str, Reaction] = {}
    clients_done = threading.Event()

    def one(label: str, server: bool) -> None:
        child = cluster.children[label]
        while True:
            left = until - time.monotonic()
            try:
                if server and (clients_done.is_set() or left <= 0):
                    out[label] = Reaction(Outcome.COMPLETE, "kept serving")
                    return
                if left <= 0:
                    raise TimeoutError
                msg = child.recv(min(left, 0.2) if server else left)
            except TimeoutError:
                if server:
                    continue
                out[label] = Reaction(Outcome.HANG, f"no reaction within {until - t_fault:.0f}s of the fault "
                                                    f"(the harness killed the cluster)")
                return
            except ChannelClosed:
                seconds = time.monotonic() - t_fault
                code = child.wait(2.0)
                tail = child.log_tail()
                kind = Outcome.CRASH if code is not None and code < 0 else Outcome.ERROR
                out[label] = Reaction(kind, f"died ({exit_text(code)})" + (f": {tail}" if tail else ""), seconds)
                return
            seconds = time.monotonic() - t_fault
            event = msg.get("event")   # a message sent before the fault counts: it was still unheard
            if event == "error":
                out[label] = Reaction(Outcome.ERROR, msg.get("message", "error"), seconds)
                return
            if event in done_events and not server:
                what = f"restored {msg.get('restored')}" if event == "round" else "built the strategy"
                out[label] = Reaction(Outcome.COMPLETE, f"went on without noticing ({event}: {what})")
                return

    clients = [threading.Thread(target=one, args=(label, False), daemon=True) for label in labels]
    others = [threading.Thread(target=one, args=(label, True), daemon=True) for label in servers]
    for t in clients + others:
        t.start()
    if clients:
        for t in clients:
            t.join()
    else:
        time.sleep(max(0.0, min(server_window, until - time.monotonic())))
    clients_done.set()
    for t in others:
        t.join()
    return out


def _orphans(ckpt_dir: str) -> tuple[int, list[str]]:
    """Bytes and top-level names of what no restore can use: the crash checker's orphans
    (faults/state.py) and every `workertemp_*` folder."""
    from ..faults.state import orphan_files
    sizes = {}
    for dirpath, _dirs, files in os.walk(ckpt_dir):
        for f in files:
            path = os.path.join(dirpath, f)
            sizes[os.path.relpath(path, ckpt_dir)] = os.path.getsize(path)
    lost = orphan_files(sizes) | {rel for rel in sizes if rel.startswith("workertemp_")}
    names = {rel.split("/")[0] + "/" if "/" in rel else rel for rel in lost}
    return sum(sizes[rel] for rel in lost), sorted(names)


def judge_disk(checker, spec: GraphSpec, ckpt_dir: str, manifest_dir: str) -> tuple[Verdict, dict]:
    """The crash checker's verdict on the directory after a fault in save 2 (one judge)."""
    from ..faults.apis import candidate_digests
    from ..faults.state import DirImage

    image = DirImage.load(ckpt_dir)
    return checker.check(disk_target(spec), ckpt_dir, manifest_dir, candidate_digests("tf2-manager", image))


def disk_target(spec: GraphSpec):
    """What the tasks' saves are to the crash checker: tf2-manager, save 2 the one faulted."""
    from ..faults.target import CrashTarget
    return CrashTarget("tf2-manager", spec, k=FAULT_GENERATION, max_to_keep=CHECKPOINT_KEEP)


def keep_case(res: "TrialResult", ckpt_dir: str, manifest_dir: str, case_dir: str, *, run_id: str,
              trial: int) -> None:
    """The directory the fault left, as a crash case folder (faults/cases.py), before the restart
    touches it: `ckpt-harness replay CASE_DIR` judges it again with the same checker."""
    from ..faults.cases import CASE_FORMAT, write_case_json
    from ..faults.state import DirImage
    from ..faults.target import manifest_name
    from .. import __version__

    p = res.plan
    res.case_dir = os.path.join(*os.path.normpath(case_dir).split(os.sep)[-2:])   # cases/trial-N
    image = DirImage.load(ckpt_dir)
    image.materialize(os.path.join(case_dir, "state"), link=True)
    os.makedirs(os.path.join(case_dir, "manifests"), exist_ok=True)
    for g in range(1, FAULT_GENERATION + 1):
        shutil.copy2(os.path.join(manifest_dir, manifest_name(g)), os.path.join(case_dir, "manifests"))
    rerun = (f"ckpt-harness crash --strategy {p.strategy.label} --mode {p.mode} --task {p.task}"
             + ("" if p.mode == "task-absent" else f" --point {p.point}") + f" --{p.settings}"
             + f" --size {p.spec.state_bytes}B --vars {p.spec.n_vars} --seed {p.spec.seed}")
    write_case_json(case_dir, {
        "case_format": CASE_FORMAT, "run_id": run_id, "state_id": f"trial-{trial}", "api": "tf2-manager",
        "tensorflow_version": metadata.installed_tf_version(), "harness_version": __version__,
        "mode": p.mode, "model": f"{p.strategy.label}, {p.task} at {p.point} ({p.settings})",
        "fault": res.fault_detail, "fault_kind": p.mode, "operations": [], "note": "", "meta": {},
        "outcome": res.disk.outcome.value, "detail": res.disk.detail, "orphan_bytes": res.orphan_bytes,
        "files": image.listing(), "target": disk_target(p.spec).to_dict(), "crashed_save": FAULT_GENERATION,
        "reactions": {label: {"reaction": r.outcome.value, "detail": r.detail, "notice_s": r.seconds}
                      for label, r in sorted(res.reactions.items())},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "replay": f"ckpt-harness replay {res.case_dir}", "rerun": rerun})


def write_manifests(spec: GraphSpec, directory: str) -> None:
    """The checker's manifests of saves 1 and 2, recomputed from the spec."""
    from ..faults.target import manifest_name
    os.makedirs(directory, exist_ok=True)
    for g in range(1, FAULT_GENERATION + 1):
        Manifest.expected(layout(spec), spec.seed, g, api="tf2-manager").write(
            directory, name=manifest_name(g), durable=False)


def _fault_phase(plan: FaultPlan, workdir: str, res: TrialResult) -> None:
    """Start the cluster, (kill/freeze) one good round, the fault, and every other task's reaction.
    The cluster is killed and reaped when this returns or raises.

    Under parameter-server the chief alone runs rounds (task.py): it is the task held at the
    point; a faulted server (worker or ps) is signalled while the chief is held, and the chief
    then goes on into what it meets. The other servers are watched for a death meanwhile."""
    absent = plan.mode == "task-absent"
    run = ClusterRun(plan.strategy, plan.spec, workdir, START_TIMEOUT_S + plan.notice_s + 30,
                     collective_timeout=plan.timeout, pause_at={plan.task: "start"} if absent else None)
    cluster = run.cluster
    clients = plan.strategy.clients()
    others = [x for x in clients if x != plan.task]
    servers = [x for x in cluster.labels if x not in clients and x != plan.task]
    t_fault = tracer = None
    try:
        if absent:
            cluster.start()
            res.pids.extend(cluster.pids.values())
            cluster.recv_event(plan.task, "paused")
            t_fault = time.monotonic()
            if plan.task in clients:
                res.reactions = _watch(cluster, others, t_fault, t_fault + plan.notice_s, ("ready",),
                                       servers, SERVER_WINDOW_S)
            else:   # the servers that are up are told to the chief, which builds the strategy
                cluster.gather("ready", labels=servers)
                cluster.send_all({"cmd": "connect"}, labels=clients)
                res.reactions = _watch(cluster, others, t_fault, t_fault + plan.notice_s, ("ready",), servers)
            return
        run.start()
        res.pids.extend(cluster.pids.values())
        _rows, verdict = run.round(0)
        if verdict.outcome is not Outcome.COMPLETE:
            raise RuntimeError(f"round 1 before the fault was {verdict.outcome}: {verdict.detail}")
        in_save = plan.point in IN_SAVE_POINTS
        held = plan.task if plan.task in clients else plan.strategy.chief()
        for label in clients:
            cmd = {"cmd": "round", "round": 1, "generation": FAULT_GENERATION, "barrier": True}
            if label == held:
                cmd["pause_at"] = "before_save" if in_save else plan.point
            cluster.send(label, cmd)
        cluster.recv_event(held, "paused")
        if in_save:
            tracer, where = _arm_in_save(plan, cluster, workdir)
            t_fault = _await_hit(plan, cluster, tracer, where)
            sig = SIGNALS[plan.mode].name
            res.fault_detail = (f"{sig} by strace {'at the entry of' if sig == 'SIGKILL' else 'on return from'} "
                                f"{_first_call(tracer.log_path) or where}")
        else:
            os.killpg(cluster.pids[plan.task], SIGNALS[plan.mode])
            t_fault = time.monotonic()
            res.fault_detail = f"{SIGNALS[plan.mode].name} to the task's process group, held at {plan.point}"
            if held != plan.task:
                res.fault_detail = (f"{SIGNALS[plan.mode].name} to the task's process group while "
                                    f"{held} was held at {plan.point}; then {held} went on")
                cluster.send(held, {"cmd": "continue"})
        res.reactions = _watch(cluster, others, t_fault, t_fault + plan.notice_s, ("round",),
                               servers, SERVER_WINDOW_S)
    finally:
        cluster.close(grace=0)
        if tracer is not None:
            tracer.wait(10.0)   # the tracee is dead: strace exits by itself
        if t_fault is not None:
            res.watch_s = time.monotonic() - t_fault


def _save_dir(plan: FaultPlan, workdir: str) -> str:
    """Where the faulted task's CheckpointManager writes (task.py): the chief into the
    checkpoint directory, any other worker into `workertemp_<index>/` inside it."""
    ckpt_dir = os.path.join(workdir, "ckpt")
    if plan.task == plan.strategy.chief():
        return ckpt_dir
    return os.path.join(ckpt_dir, f"workertemp_{plan.task.split(':')[1]}")


def _arm_in_save(plan: FaultPlan, cluster, workdir: str):
    """(strace session, the call it waits for): attached to the task held before its save,
    set to signal it at the point's call."""
    from ..faults import strace
    calls, rel = IN_SAVE_POINTS[plan.point]
    path = os.path.join(_save_dir(plan, workdir), rel.format(g=FAULT_GENERATION))
    sig = SIGNALS[plan.mode].name[3:]
    tracer = strace.StraceSession(cluster.pids[plan.task], os.path.join(workdir, "strace-fault.log"),
                                  inject=f"{calls}:signal={sig}:when=1", syscalls=tuple(calls.split(",")),
                                  paths=(path,))
    tracer.start()
    return tracer, f"{'/'.join(calls.split(','))}({os.path.relpath(path, os.path.join(workdir, 'ckpt'))})"


def _first_call(log_path: str) -> str:
    """The call strace signalled, as `name(path relative to the checkpoint directory)`."""
    try:
        with open(log_path, errors="replace") as f:
            for line in f:   # `TID HH:MM:SS.us name(..., "\x2f\x74...", ...` (strace -tt -xx)
                m = re.match(r'^\d+\s+[\d:.]+\s+(\w+)\([^"]*"((?:\\x[0-9a-fA-F]{2})*)"', line)
                if m:
                    path = bytes.fromhex(m.group(2).replace("\\x", "")).decode(errors="replace")
                    return f"{m.group(1)}({path.split('/ckpt/', 1)[-1]})"
    except OSError:
        pass
    return ""


def _await_hit(plan: FaultPlan, cluster, tracer, where: str) -> float:
    """Let the held task save; the time its fault took it: killed (its channel closes) or
    stopped (strace logs the group stop; /proc cannot tell it from strace's own syscall stops).
    A save that passes the point (the task reports its round) could not reach its fault."""
    child = cluster.children[plan.task]
    cluster.send(plan.task, {"cmd": "continue"})
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if plan.mode == "task-freeze" and _log_has(tracer.log_path, "stopped by SIGSTOP"):
            return time.monotonic()
        try:
            msg = child.recv(0.005)
        except TimeoutError:
            continue
        except ChannelClosed:
            return time.monotonic()
        if msg.get("event") in ("round", "error"):
            raise RuntimeError(f"{plan.task}'s save never made the call of {plan.point} "
                               f"({where}): this TF saves another way")
    raise RuntimeError(f"{plan.task} did not reach {plan.point} within {START_TIMEOUT_S:.0f}s")


def _log_has(path: str, text: str) -> bool:
    try:
        with open(path, errors="replace") as f:
            return text in f.read()
    except OSError:
        return False


def _restart(plan: FaultPlan, workdir: str, expect_gen: int | None, res: TrialResult) -> Verdict:
    """A fresh cluster on the same directory: resume from the latest checkpoint (when there is
    one), then one round. Complete only if every task is complete and all agree, both times."""
    run = ClusterRun(plan.strategy, plan.spec, workdir, RESTART_TIMEOUT_S, collective_timeout=plan.timeout)
    parts = []
    try:
        with run:
            res.pids.extend(run.cluster.pids.values())
            verdicts = []
            if expect_gen is not None:
                clients = plan.strategy.clients()
                run.cluster.send_all({"cmd": "resume"}, labels=clients)
                got = run.cluster.gather("resumed", labels=clients)
                expected = expected_digests(Manifest.expected(layout(plan.spec), plan.spec.seed, expect_gen))
                _per_task, resumed = judge_round(expected, got)
                restored = sorted({str(m.get("restored")) for m in got.values()})
                parts.append(f"resume {'/'.join(restored)} vs save {expect_gen}: {resumed.outcome} ({resumed.detail})")
                verdicts.append(resumed.outcome)
            else:
                parts.append("no checkpoint to resume: started fresh")
            _rows, verdict = run.round(RESTART_GENERATION - 1)
            parts.append(f"round {RESTART_GENERATION}: {verdict.outcome} ({verdict.detail})")
            verdicts.append(verdict.outcome)
        return Verdict(worst(verdicts), "; ".join(parts))
    except ClusterTimeout as e:
        return Verdict(Outcome.HANG, "; ".join(parts + [str(e)]))
    except TaskFailed as e:
        return Verdict(Outcome.ERROR, "; ".join(parts + [str(e)]))


def run_trial(plan: FaultPlan, workdir: str, checker, manifest_dir: str, case=None) -> TrialResult:
    """One trial in `workdir` (the caller removes it); see the module docstring. `case`:
    (case folder, run id, trial number) to keep the directory the fault left as a crash case."""
    t0 = time.monotonic()
    res = TrialResult(plan)
    ckpt_dir = os.path.join(workdir, "ckpt")
    _fault_phase(plan, workdir, res)
    res.orphan_bytes, res.orphans = _orphans(ckpt_dir)
    expect_gen = None
    if plan.mode == "task-absent" and not os.path.exists(os.path.join(ckpt_dir, "checkpoint")):
        res.disk_note = "nothing saved: the cluster never formed"
    else:
        res.disk, msg = judge_disk(checker, plan.spec, ckpt_dir, manifest_dir)
        latest = msg.get("latest") or {}
        res.latest = latest.get("path") or ""
        if latest:
            expect_gen = latest.get("generation") or FAULT_GENERATION
        if case is not None:
            keep_case(res, ckpt_dir, manifest_dir, case[0], run_id=case[1], trial=case[2])
    res.restart = _restart(plan, workdir, expect_gen, res)
    res.seconds = time.monotonic() - t0
    return res


# -- the command -----------------------------------------------------------------------
def main(args, strategy: StrategySpec) -> int:
    from ..faults.checker import Checker

    plan, trials = plan_from_args(args, strategy)
    out_root = ensure_writable_dir(args.out or os.path.join("results", "crash"), "results directory")
    run_id = new_run_id("dist-crash")
    run_dir = os.path.abspath(os.path.join(out_root, run_id))
    logs = os.path.join(run_dir, "logs")
    os.makedirs(logs)
    work = tempfile.mkdtemp(prefix=".work-", dir=run_dir)
    meta = metadata.collect(run_dir, run_id=run_id, kind="crash", mode=plan.mode, strategy=strategy.label,
                            fault_task=plan.task, point=plan.point, settings=plan.settings,
                            collective_timeout_s=plan.timeout, notice_timeout_s=plan.notice_s, trials=trials,
                            spec=plan.spec.to_dict(), columns=COLUMNS, status="running")
    meta_path = os.path.join(run_dir, "metadata.json")
    atomic_write_json(meta_path, meta)
    say = (lambda _t: None) if args.quiet else (lambda t: print(t, file=sys.stderr, flush=True))
    rows: list[dict] = []
    failures: list[str] = []
    status = "complete"
    manifest_dir = os.path.join(work, "manifests")
    write_manifests(plan.spec, manifest_dir)
    checker = Checker(os.path.join(logs, "checker.log"), timeout=120.0)
    say(f"crash run {run_id}: {plan.mode} of {plan.task} at {plan.point} on {strategy.label} "
        f"({plan.settings}), {trials} trial(s) -> {run_dir}")
    with sigterm_as_interrupt():
        try:
            for i in range(trials):
                trial_dir = os.path.join(work, f"trial-{i}")
                try:
                    res = run_trial(plan, trial_dir, checker, manifest_dir,
                                    case=(os.path.join(run_dir, "cases", f"trial-{i}"), run_id, i))
                finally:
                    _keep_logs(trial_dir, os.path.join(logs, f"trial-{i}"))
                    shutil.rmtree(trial_dir, ignore_errors=True)
                rows.extend(res.rows(run_id, i))
                atomic_write_csv(os.path.join(run_dir, CSV_NAME), rows, COLUMNS)
                print(res.summary(i) + (f"\n  disk state kept: ckpt-harness replay {os.path.join(run_dir, res.case_dir)}"
                                        if res.case_dir else ""), flush=True)
                if res.restart is None or res.restart.outcome is not Outcome.COMPLETE:
                    failures.append(f"trial {i}: the restart was {res.restart.outcome if res.restart else 'not run'}"
                                    f": {res.restart.detail if res.restart else ''}")
        except KeyboardInterrupt:
            status = "interrupted"
        except (ClusterTimeout, TaskFailed, RuntimeError) as e:   # before the fault: the trial could not run
            failures.append(f"a trial could not reach its fault: {e}")
        finally:
            checker.close()
            shutil.rmtree(work, ignore_errors=True)
            if rows:
                atomic_write_csv(os.path.join(run_dir, CSV_NAME), rows, COLUMNS)
            metadata.finish(meta, meta_path, status, failures)
    return finish_command(run_dir, status, failures, "every task was killed")


def _keep_logs(trial_dir: str, dest: str) -> None:
    if not os.path.isdir(trial_dir):
        return
    os.makedirs(dest, exist_ok=True)
    for name in os.listdir(trial_dir):
        if name.endswith(".log"):
            shutil.copy(os.path.join(trial_dir, name), dest)
