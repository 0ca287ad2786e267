"""One `ckpt-harness crash` run: produce crash states with a mode, judge each, record.

    for each API:
        the mode yields CrashStates (kill.py, mutate.py, diskfull.py, or a
        recorded save replayed by crashstates.py for trace)
        each state: identical ones are judged once (content digest); the rest
        are materialized in a scratch directory and judged by the checker
        failing states become case folders (cases.py)
        a group of states that differ only in how much of one file's writes
        landed (trace) is judged on a sample; the rest take its verdict only
        when the sample agrees, else each is judged
    crash.csv and metadata.json are written atomically after every API, so an
    interrupted run keeps what it finished.

Children (the saving zygote and its trials, the checker, strace) run in their
own sessions and are killed with their process groups on the way out; tmpfs
mounts are undone; the scratch directory is removed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from .. import metadata
from ..child import sigterm_as_interrupt
from ..outcomes import CRASH_STATE, Outcome
from ..results import atomic_write_csv, atomic_write_json, new_run_id
from ..specs import GraphSpec, layout, total_bytes
from ..units import format_bytes
from . import apis, cases, crashstates, diskfull, kill, mutate, strace
from .checker import DEFAULT_TIMEOUT, Checker
from .record import record_save, time_save
from .saver_control import Zygote
from .state import BlobStore, DirImage, check_untouched
from .target import DEFAULT_K, DEFAULT_MAX_TO_KEEP, CrashTarget

MODES = ("kill", "mutate", "diskfull", "trace")
CRASH_APIS = apis.CRASH_APIS
DEFAULT_APIS = ("tf2-manager",)
CRASH_COLUMNS = ["run_id", "api", "mode", "model", "state_id", "fault", "outcome", "detail",
                 "orphan_bytes", "case_dir", "similar_case", "fault_kind", "note", "duplicate_of", "state_bytes",
                 "n_ops", "check_seconds", "judged_as"]
GROUP_EDGE = 4      # states judged at each end of a group (a write's cut points and its end)
GROUP_SAMPLES = 1   # more, spread between the ends


@dataclass
class CrashConfig:
    mode: str
    apis: tuple[str, ...] = DEFAULT_APIS
    model: str = "process"
    trials: int = 8
    seed: int = 0
    spec: GraphSpec = field(default_factory=lambda: GraphSpec(n_vars=16, state_bytes=1 << 20))
    out: str = os.path.join("results", "crash")
    quiet: bool = False
    k: int = DEFAULT_K
    max_to_keep: int = DEFAULT_MAX_TO_KEEP
    timeout: float = DEFAULT_TIMEOUT
    case_cap: int = cases.DEFAULT_CAP
    index_offsets: int | None = None   # mutate: cap on index truncation points (None = every byte)
    user_target: str = ""   # --target: the user's save code (api "user"), harness/savers/user.py

    @property
    def model_label(self) -> str:
        return {"trace": self.model, "kill": "process", "diskfull": "process"}.get(self.mode, "n/a")


@dataclass
class ApiResult:
    api: str
    states: int = 0
    unique: int = 0
    counts: Counter = field(default_factory=Counter)
    by_group: int = 0    # states given their group's sampled verdict, not judged themselves
    max_orphan: int = 0
    check_seconds: float = 0.0
    wall_seconds: float = 0.0
    notes: list = field(default_factory=list)

    @property
    def states_per_second(self) -> float:
        return self.unique / self.check_seconds if self.check_seconds > 0 else 0.0


class Campaign:
    """One run. `zygote` and `checker` may be passed in (already started) to share them
    between runs, as the tests and the benchmark do; the caller then closes them."""

    def __init__(self, cfg: CrashConfig, zygote: Zygote | None = None, checker: Checker | None = None):
        self.cfg = cfg
        self._shared = zygote is not None and checker is not None
        self.run_id = new_run_id("crash")
        self.run_dir = os.path.abspath(os.path.join(cfg.out, self.run_id))
        self.rows: list[dict] = []
        self.results: list[ApiResult] = []
        self.verdicts: dict[str, tuple] = {}
        self.zygote, self.checker = (zygote, checker) if self._shared else (None, None)
        self.work = ""
        self.interrupted = False
        self.tf_version = ""
        self.extra_meta: dict = {}

    def say(self, text: str) -> None:
        if not self.cfg.quiet:
            print(text, file=sys.stderr, flush=True)

    # -- lifecycle -------------------------------------------------------------------
    def run(self) -> "Campaign":
        os.makedirs(os.path.join(self.run_dir, "logs"), exist_ok=True)
        self.work = tempfile.mkdtemp(prefix=".work-", dir=self.run_dir)
        self.blobs = BlobStore(os.path.join(self.work, "blobs"))
        self.keeper = cases.CaseKeeper(self.run_dir, self.cfg.case_cap, self.blobs)
        t0 = time.monotonic()
        with sigterm_as_interrupt():  # SIGTERM unwinds through the same `finally` as Ctrl-C
            try:
                self._start_children()
                for api in self.cfg.apis:
                    self._run_api(api)
                    self._write()
            except KeyboardInterrupt:
                self.interrupted = True
                raise
            finally:
                for child in (self.zygote, self.checker):
                    if child is not None and not self._shared:
                        child.close()
                diskfull.unmount_all()
                shutil.rmtree(self.work, ignore_errors=True)
                self.wall_seconds = time.monotonic() - t0
                self._write()
        return self

    def _start_children(self) -> None:
        if self._shared:
            self.tf_version = self.zygote.tf_version or self.checker.tf_version
            return
        logs = os.path.join(self.run_dir, "logs")
        self.zygote = Zygote(os.path.join(logs, "saver.log"))
        self.checker = Checker(os.path.join(logs, "checker.log"), self.cfg.timeout)
        self.say(f"crash run {self.run_id}: starting TensorFlow in the saving and checking processes ...")
        # both import TF (seconds each): start them side by side
        t = threading.Thread(target=_start_quietly, args=(self.checker,), daemon=True)
        t.start()
        self.zygote.start()
        t.join()
        self.checker.start()  # a no-op when the threaded start worked; tries again (and raises) if not
        self.tf_version = self.zygote.tf_version or self.checker.tf_version

    # -- one API ---------------------------------------------------------------------
    def _run_api(self, api: str) -> None:
        cfg = self.cfg
        target = CrashTarget(api, cfg.spec, cfg.k, cfg.max_to_keep, user=cfg.user_target)
        res = ApiResult(api)
        self.results.append(res)
        api_work = os.path.join(self.work, api)
        manifests = os.path.join(api_work, "manifests")
        self.checker.warm(target)
        t0 = time.monotonic()
        self.say(f"{api}: {cfg.mode}" + (f" ({cfg.model} model)" if cfg.mode == "trace" else "") + " ...")
        pending: list = []   # the group being collected
        for i, state in enumerate(self._states(target, api_work, manifests, res)):
            state.state_id = f"{api}/{cfg.mode}" + (f"-{cfg.model}" if cfg.mode == "trace" else "") + f"/{i:04d}"
            if pending and state.group != pending[0].group:
                self._judge_group(target, pending, manifests, res)
                pending = []
            if state.group:
                pending.append(state)
            else:
                self._judge(target, state, manifests, res)
        if pending:
            self._judge_group(target, pending, manifests, res)
        res.wall_seconds = time.monotonic() - t0
        c = res.counts
        self.say(f"{api}: {res.states} states ({res.unique} distinct) in {res.wall_seconds:.1f}s; "
                 + ", ".join(f"{o.value} {c[o.value]}" for o in CRASH_STATE if c[o.value]))

    def _states(self, target, work, manifests, res):
        cfg = self.cfg
        if cfg.mode == "trace":
            rec = record_save(self.zygote, target, os.path.join(work, "record"), manifests)
            self._keep_trace(target.api, rec)
            replay = crashstates.Replay(rec.base, rec.ops, rec.final)
            yield from replay.states(cfg.model)
            if replay.uncaptured:
                res.notes.append(f"{replay.uncaptured} write(s) whose data strace did not keep were zero-filled")
        elif cfg.mode == "kill":
            use_strace = strace.available() is not None
            ref = record_save(self.zygote, target, os.path.join(work, "reference"), manifests) if use_strace else None
            if not use_strace:
                res.notes.append("strace not installed: kill points at file events skipped "
                                 "(bytes are polled, random moments only)")
            seconds = ref.save_seconds if ref else time_save(self.zygote, target, os.path.join(work, "timing"),
                                                             manifests)
            total = total_bytes(layout(cfg.spec))
            background = None
            if target.api in apis.ASYNC_APIS:   # kill after save() returned, during the background write
                background = max(0.0, (ref.done_seconds or seconds) - seconds) if ref else seconds
            points, notes = kill.plan_with_notes(cfg.trials, cfg.seed, seconds, total, ref, background)
            res.notes += notes
            # planned: the reference (or timing) save's files are not needed any more (disk)
            for done in ("reference", "timing"):
                shutil.rmtree(os.path.join(work, done), ignore_errors=True)
            for n, point in enumerate(points):
                trial_dir = os.path.join(work, f"trial-{n:03d}")
                state = kill.run_trial(self.zygote, target, point, trial_dir, manifests, use_strace)
                state.scratch = trial_dir   # its large files are read from there until it is judged
                yield state
        elif cfg.mode == "mutate":
            d = os.path.join(work, "pristine")
            trial = self.zygote.fork(target)
            try:
                trial.prepare(d, manifests)
                trial.start_save(d)
                reply = trial.result()
                if not reply or not reply.get("ok"):
                    raise RuntimeError(f"save {target.k} failed: {(reply or {}).get('error')}")
                pristine = DirImage.load(d, in_memory=True)
                planted = mutate.planted_states(trial, d, work, target.k)
            finally:
                trial.finish()
            yield from mutate.mutations(pristine, target.k, cfg.trials, cfg.seed, cfg.index_offsets)
            yield from planted
        elif cfg.mode == "diskfull":
            use_tmpfs = diskfull.can_mount()
            method = "tmpfs"
            for n, frac in enumerate(diskfull.fractions(cfg.trials, cfg.seed)):
                trial_dir = os.path.join(work, f"trial-{n:03d}")
                try:
                    yield diskfull.run_trial(self.zygote, target, frac, trial_dir, manifests, use_tmpfs)
                except diskfull.MountError as e:
                    if not use_tmpfs:
                        raise
                    use_tmpfs = False  # e.g. root in a container without CAP_SYS_ADMIN
                    res.notes.append(f"tmpfs mount failed ({e}); using RLIMIT_FSIZE")
                    yield diskfull.run_trial(self.zygote, target, frac, trial_dir + "-rlimit", manifests, False)
                method = "tmpfs" if use_tmpfs else "rlimit"
            self.extra_meta["diskfull_method"] = method
        else:
            raise ValueError(cfg.mode)

    def _keep_trace(self, api: str, rec) -> None:
        """The recorded operations beside the results: what every state id refers to."""
        traces = os.path.join(self.run_dir, "traces")
        os.makedirs(traces, exist_ok=True)
        atomic_write_json(os.path.join(traces, f"{api}-ops.json"), [op.to_dict() for op in rec.ops])
        dest = os.path.join(traces, f"{api}.strace")
        try:   # the log is finished: a second name costs no disk (a copy was 3% of the checkpoint)
            os.link(rec.log_path, dest)
        except OSError:   # another file system, or none with hard links
            shutil.copy(rec.log_path, dest)

    # -- one state -------------------------------------------------------------------
    def _judge_group(self, target, states: list, manifests, res: ApiResult) -> None:
        """Judge a sample of a group; the others take its verdict when the sample agrees."""
        start = len(self.rows)
        try:
            self._judge_sample(target, states, manifests, res)
        finally:   # crash.csv in the order of the states
            self.rows[start:] = sorted(self.rows[start:], key=lambda r: r["state_id"])

    def _judge_sample(self, target, states: list, manifests, res: ApiResult) -> None:
        n = len(states)
        if n <= 2 * GROUP_EDGE + GROUP_SAMPLES:
            for state in states:
                self._judge(target, state, manifests, res)
            return
        picks = set(range(GROUP_EDGE)) | set(range(n - GROUP_EDGE, n))
        picks |= {GROUP_EDGE + (j + 1) * (n - 2 * GROUP_EDGE) // (GROUP_SAMPLES + 1) for j in range(GROUP_SAMPLES)}
        rows = {}
        for i in sorted(picks):
            self._judge(target, states[i], manifests, res)
            rows[i] = self.rows[-1]
        outcomes = {r["outcome"] for r in rows.values()}
        if len(outcomes) > 1:   # the length of the file matters here: judge every state
            for i, state in enumerate(states):
                if i not in picks:
                    self._judge(target, state, manifests, res)
            return
        first = rows[min(picks)]
        for i, state in enumerate(states):
            if i in picks:
                continue
            res.by_group += 1
            self._add_row(target, state, res, first["outcome"], first["detail"],
                          note=f"{state.group}: {len(picks)} of {n} states judged, all {first['outcome']}",
                          judged_as=first["state_id"])

    def _judge(self, target, state, manifests, res: ApiResult) -> None:
        try:
            self._judge_one(target, state, manifests, res)
        finally:
            if state.scratch:
                shutil.rmtree(state.scratch, ignore_errors=True)

    def _judge_one(self, target, state, manifests, res: ApiResult) -> None:
        t0 = time.monotonic()
        state.image = state.image.relocated(self.work)  # every state was made under the work dir
        digest = state.image.digest()
        key = (target.api, digest)
        duplicate_of = ""
        if key in self.verdicts:
            verdict, duplicate_of, case_dir, similar = self.verdicts[key]
            seconds = 0.0
        else:
            scratch = os.path.join(self.work, "check", f"{len(self.verdicts):05d}")
            linked = self.blobs.materialize(state.image, scratch, private=apis.restore_writes(target.api),
                                            unread=apis.unread_files(target.api, state.image))
            verdict, _ = self.checker.check(target, scratch, manifests,
                                            apis.candidate_digests(target.api, state.image))
            check_untouched(linked, target.api)
            shutil.rmtree(scratch, ignore_errors=True)
            case_dir = similar = ""
            if verdict.outcome.is_failure:
                case_dir, similar = self.keeper.keep(state, verdict, target, digest, mode=self.cfg.mode,
                                            model=self.cfg.model_label, manifest_dir=manifests,
                                            run_id=self.run_id, tf_version=self.tf_version)
            self.verdicts[key] = (verdict, state.state_id, case_dir, similar)
            seconds = time.monotonic() - t0
            res.unique += 1
            res.check_seconds += seconds
        self._add_row(target, state, res, verdict.outcome.value, verdict.detail, note=state.note,
                      case_dir=case_dir, similar_case=similar, duplicate_of=duplicate_of,
                      check_seconds=round(seconds, 6))

    def _add_row(self, target, state, res: ApiResult, outcome: str, detail: str, **fields) -> None:
        """One crash.csv row for `state`, counted in `res`; `fields` fill the columns that
        depend on how it was judged (a case kept, a duplicate, a group member)."""
        orphan = state.image.orphan_bytes()
        res.states += 1
        res.counts[outcome] += 1
        res.max_orphan = max(res.max_orphan, orphan)
        row = {"run_id": self.run_id, "api": target.api, "mode": self.cfg.mode, "model": self.cfg.model_label,
               "state_id": state.state_id, "fault": state.fault, "outcome": outcome, "detail": detail,
               "orphan_bytes": orphan, "case_dir": "", "similar_case": "", "fault_kind": state.fault_kind,
               "note": "", "duplicate_of": "", "state_bytes": state.image.total_bytes(), "n_ops": len(state.ops),
               "check_seconds": 0.0, "judged_as": ""}
        unknown = set(fields) - set(row)
        if unknown:
            raise KeyError(f"not crash.csv columns: {sorted(unknown)}")
        row.update(fields)
        self.rows.append(row)

    # -- results ---------------------------------------------------------------------
    @property
    def states_per_second(self) -> float:
        unique = sum(r.unique for r in self.results)
        secs = sum(r.check_seconds for r in self.results)
        return unique / secs if secs > 0 else 0.0

    def _write(self) -> None:
        if not os.path.isdir(self.run_dir):
            return
        atomic_write_csv(os.path.join(self.run_dir, "crash.csv"), self.rows, CRASH_COLUMNS)
        cfg = self.cfg
        meta = metadata.collect(
            self.run_dir, kind="crash", run_id=self.run_id, mode=cfg.mode, model=cfg.model_label,
            apis=list(cfg.apis), trials=cfg.trials, seed=cfg.seed, spec=cfg.spec.to_dict(),
            crashed_save=cfg.k, max_to_keep=cfg.max_to_keep, restore_timeout_seconds=cfg.timeout,
            tensorflow_runtime_version=self.tf_version, strace=strace.available() or "",
            states_total=len(self.rows), states_checked=sum(r.unique for r in self.results),
            states_by_group_sample=sum(r.by_group for r in self.results),
            states_per_second=round(self.states_per_second, 2),
            case_folders=getattr(self, "keeper", None) and self.keeper.kept,
            case_cap_per_api_outcome_fault_kind=cfg.case_cap,
            failure_states_over_cap=getattr(self, "keeper", None) and self.keeper.capped,
            failure_states_like_a_kept_case=getattr(self, "keeper", None) and self.keeper.similar,
            interrupted=self.interrupted,
            per_api={r.api: {"states": r.states, "distinct": r.unique, "judged_by_group_sample": r.by_group,
                             "outcomes": dict(r.counts),
                             "max_orphan_bytes": r.max_orphan, "wall_seconds": round(r.wall_seconds, 3),
                             "check_seconds": round(r.check_seconds, 3),
                             "states_per_second": round(r.states_per_second, 2), "notes": r.notes}
                     for r in self.results},
            **self.extra_meta)
        atomic_write_json(os.path.join(self.run_dir, "metadata.json"), meta)

    def summary(self) -> str:
        cfg = self.cfg
        words = [o.value for o in CRASH_STATE]
        head = (f"crash run {self.run_id}: mode {cfg.mode}"
                + (f", {cfg.model} model" if cfg.mode == "trace" else "")
                + (f"; target {cfg.user_target}" if cfg.user_target
                   else f"; {cfg.spec.n_vars} vars, {format_bytes(cfg.spec.state_bytes)}")
                + f"; save {cfg.k} crashes "
                f"after saves 1..{cfg.k - 1} completed")
        cols = ["api", "states", "distinct"] + words + ["orphan max", "wall"]
        table = [cols]
        for r in self.results:
            table.append([r.api, str(r.states), str(r.unique)] + [str(r.counts[w]) for w in words]
                         + [format_bytes(r.max_orphan), f"{r.wall_seconds:.1f}s"])
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        lines = [head] + ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                          for row in table]
        unique = sum(r.unique for r in self.results)
        secs = sum(r.check_seconds for r in self.results)
        by_group = sum(r.by_group for r in self.results)
        lines.append(f"checked {unique} distinct states in {secs:.1f}s: {self.states_per_second:.1f} states/s"
                     + (f"; {by_group} more took the verdict of their group's sample (column judged_as)"
                        if by_group else ""))
        for r in self.results:
            lines += [f"note ({r.api}): {n}" for n in r.notes]
        kept = self.keeper.kept if hasattr(self, "keeper") else 0
        capped = self.keeper.capped if hasattr(self, "keeper") else 0
        similar = self.keeper.similar if hasattr(self, "keeper") else 0
        lines.append(f"results: {os.path.join(self.run_dir, 'crash.csv')}, metadata.json, {kept} case folder(s)"
                     + (f"; {similar} failing state(s) read like a kept case (column similar_case)" if similar else "")
                     + (f"; {capped} more without a folder (at most {cfg.case_cap} per "
                        f"api+outcome+fault kind)" if capped else ""))
        if kept:
            lines.append(f"replay a case: ckpt-harness replay {os.path.join(self.run_dir, 'cases', '<api>', '<case>')}")
        return "\n".join(lines)


def _start_quietly(child) -> None:
    try:
        child.start()
    except Exception:
        pass


def failures(rows: list[dict]) -> Counter:
    return Counter(r["outcome"] for r in rows if Outcome(r["outcome"]).is_failure)
