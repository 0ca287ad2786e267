"""Kill mode: signal the saving process during save k, then judge what is on disk.

Kill points, from a seeded schedule over `--trials`:
  event   at a named file event of the save: before or after each rename,
          and at the first/last write of a file rewritten in place (truncated
          at open: Keras .weights.h5 / .keras, SavedModel's variables.index).
          strace delivers the signal at the exact system call (-e inject):
          SIGKILL at the rename's entry stops it from happening ("before");
          SIGTERM and SIGINT are acted on when the call returns ("after";
          SIGINT raises KeyboardInterrupt in Python, so TF's Python code
          unwinds, as on Ctrl-C). The event list comes from one traced
          reference save, and each label names the call strace really stops
          (see _exact: strace counts per thread).
  bytes   once N bytes of the save have been written: with strace, at the
          entry of the write that would pass N; without, by polling the
          directory (the signal lands somewhat later).
  random  after a random delay within the expected save time.
  returned (async saves, instead of random) at or after the moment save()
          returned, while its write goes on in the background.
Each trial is a fresh fork of the saving process (saver_child), so the crash
always hits save k with saves 1..k-1 complete. With strace available the
trial is traced too, and the operations that really happened before the
signal go into the case.
"""

from __future__ import annotations

import os
import random
import signal as _signal
import time
from dataclasses import dataclass

from . import strace
from .state import CrashState, DirImage, normalize_name

SIGNALS = ("KILL", "TERM", "INT")
_POLL_SECONDS = 0.0005


@dataclass
class KillPoint:
    kind: str            # event | bytes | random | returned
    sig: str             # KILL | TERM | INT
    label: str           # human description of the point
    inject: str = ""     # strace inject spec (exact points)
    threshold: int = 0   # bytes kind without strace
    delay: float = 0.0   # random kind: after save k started; returned kind: after save() returned
    follow: bool = True  # strace follows every thread; False: the main thread only (see _exact)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "signal": "SIG" + self.sig, "label": self.label, "inject": self.inject,
                "threshold_bytes": self.threshold, "delay_seconds": round(self.delay, 6),
                "threads": "all" if self.follow else "main"}


def _exact(calls, op, sig: str, pid: int) -> tuple[str, bool] | None:
    """(inject spec, follow threads) that signals at `op` itself, or None if no spec can.

    strace counts `when=N` per thread, so with every thread traced the signal lands at the
    first call that is its own thread's N-th, which may be another thread's (tf1-saver: a TF
    worker renames the data before the main thread renames `checkpoint`). Then a main-thread
    op is reached by tracing the main thread alone; an op of another thread cannot be."""
    if op.raw_index < 0:
        return None
    spec = strace.inject_at(calls, op, sig)
    if spec is None:
        return None
    if strace.first_hit(calls, op.raw_index) == op.raw_index:
        return spec, True
    if op.tid == pid:
        return spec, False
    return None


def _truncated_overwrites(ref) -> list[tuple]:
    """(open op, first write, last write) of each file of saves 1..k-1 that save k truncates at open
    and writes again in place (Keras .weights.h5 / .keras): from the open on, the old save is gone."""
    out = []
    for op in ref.ops:
        if op.call != "open" or "O_TRUNC" not in op.flags or op.path not in ref.base.files:
            continue
        writes = []
        for w in ref.ops[op.index + 1:]:
            if w.tid == op.tid and w.fd == op.fd and w.path == op.path:
                if w.call == "write":
                    writes.append(w)
                elif w.call == "close":
                    break
        if writes:
            out.append((op, writes[0], writes[-1]))
    return out


def event_points(ref) -> tuple[list[KillPoint], list[str]]:
    """Exact kill points at the save's file events, each labelled with what strace really stops,
    and notes on events that no inject can single out."""
    calls, pid = ref.calls, ref.pid
    events, notes = [], []

    def add(op, label_kill: str, label_after: str, signals=("KILL", "TERM", "INT")):
        for sig in signals:
            exact = _exact(calls, op, "SIG" + sig, pid)
            if exact is None:
                notes.append(f"no exact kill point at {op.describe()} (thread {op.tid}, not the main thread: "
                             f"strace's per-thread count cannot single it out)")
                return
            spec, follow = exact
            label = label_kill if sig == "KILL" else label_after + (", as Ctrl-C" if sig == "INT" else "")
            if not follow:
                label += " [main thread traced alone]"
            events.append(KillPoint("event", sig, label, spec, follow=follow))

    renames = [op for op in ref.ops if op.call == "rename"]
    for j, op in enumerate(renames, 1):
        what = op.describe()
        add(op, f"before rename #{j} ({what})", f"after rename #{j} ({what})")
    for opened, first, last in _truncated_overwrites(ref):
        name = opened.path
        add(first, f"before the first write of the in-place overwrite of {name} (truncated at open)",
            f"after the first write of the in-place overwrite of {name}")
        if last is not first:
            add(last, f"before the last write of the in-place overwrite of {name}",
                f"after the last write of the in-place overwrite of {name}", signals=("KILL",))
    return events, notes


def plan(trials: int, seed: int, save_seconds: float, total_write_bytes: int,
         ref=None, background_seconds: float | None = None) -> list[KillPoint]:
    """The seeded kill schedule. `ref` = a record.Recording of save k, or None without strace.
    `background_seconds`: for an async save, how long its write goes on after save() returned;
    then moments after the return replace the random ones (the first right at the return)."""
    return plan_with_notes(trials, seed, save_seconds, total_write_bytes, ref, background_seconds)[0]


def plan_with_notes(trials: int, seed: int, save_seconds: float, total_write_bytes: int,
                    ref=None, background_seconds: float | None = None) -> tuple[list[KillPoint], list[str]]:
    rng = random.Random(seed)
    events, writes, notes = [], [], []
    if ref is not None:
        ops, calls, pid = ref.ops, ref.calls, ref.pid
        events, notes = event_points(ref)
        done = 0
        for op in ops:
            if op.call == "write" and op.tid == pid:
                writes.append((done, op))
                done += op.size or 0
        total_write_bytes = done or total_write_bytes
    rng.shuffle(events)
    points, sig_cycle, returned = [], 0, 0
    for i in range(trials):
        kind = ("event", "bytes", "random")[i % 3]
        if kind == "event" and not events:
            kind = "bytes" if i % 2 else "random"
        if kind == "event":
            points.append(events.pop())
            continue
        sig = SIGNALS[sig_cycle % len(SIGNALS)]
        sig_cycle += 1
        if kind == "bytes":
            n = max(1, int(rng.uniform(0.05, 0.95) * max(1, total_write_bytes)))
            exact = None
            if writes:
                before, op = next(((b, o) for b, o in writes if b + (o.size or 0) >= n), writes[-1])
                exact = _exact(calls, op, "SIG" + sig, pid)
            if exact is not None:
                # SIGKILL at the crossing write's entry; TERM/INT take effect as it returns
                when = "before" if sig == "KILL" else "after"
                points.append(KillPoint("bytes", sig, f"{when} the write that passes {n} bytes "
                                        f"({before} bytes written before it; {op.describe()})"
                                        + ("" if exact[1] else " [main thread traced alone]"),
                                        exact[0], follow=exact[1]))
            else:
                points.append(KillPoint("bytes", sig, f"once {n} bytes are written (polled)", threshold=n))
        elif background_seconds is not None:
            delay = 0.0 if returned == 0 else rng.uniform(0.0, 1.2 * max(background_seconds, 1e-4))
            returned += 1
            points.append(KillPoint("returned", sig, f"{delay * 1000:.2f} ms after save() returned "
                                    f"(its write still going on)", delay=delay))
        else:
            delay = rng.uniform(0.0, 1.2 * save_seconds)
            points.append(KillPoint("random", sig, f"after {delay * 1000:.2f} ms", delay=delay))
    return points, notes


def _written_since(directory: str, base_inodes: set[int]) -> int:
    total = 0
    for dirpath, _, files in os.walk(directory):
        for f in files:
            try:
                st = os.stat(os.path.join(dirpath, f))
            except FileNotFoundError:
                continue
            if st.st_ino not in base_inodes:
                total += st.st_size
    return total


def _inodes(directory: str) -> set[int]:
    out = set()
    for dirpath, _, files in os.walk(directory):
        for f in files:
            out.add(os.stat(os.path.join(dirpath, f)).st_ino)
    return out


def run_trial(zygote, target, point: KillPoint, workdir: str, manifests: str, use_strace: bool) -> CrashState:
    """One kill: fork, saves 1..k-1, start save k, signal at `point`, return the directory.

    The trial is forked from the same zygote as the reference recording, so its
    main thread makes the same calls in the same order and strace's counts match.
    """
    os.makedirs(workdir, exist_ok=True)
    d = os.path.join(workdir, "state")
    log = os.path.join(workdir, "strace.log")
    sig = getattr(_signal, "SIG" + point.sig)
    trial = zygote.fork(target)
    session = None
    reply = None
    try:
        trial.prepare(d, manifests)
        base_inodes = _inodes(d)
        if use_strace:
            session = strace.StraceSession(trial.pid, log, inject=point.inject or None,
                                           follow=point.follow).start()
        trial.start_save(d)
        if point.kind == "random":
            time.sleep(point.delay)
            trial.signal(sig)
        elif point.kind == "returned":
            if trial.wait_returned(60) is not None:
                if point.delay:
                    time.sleep(point.delay)
                trial.signal(sig)
        elif point.kind == "bytes" and not point.inject:
            while True:
                try:
                    msg = trial.recv(_POLL_SECONDS)
                    if msg.get("event") != "returned":
                        reply = msg
                        break
                except TimeoutError:
                    pass
                if _written_since(d, base_inodes) >= point.threshold:
                    trial.signal(sig)
                    break
        if reply is None:
            reply = trial.result(60)
    finally:
        exit_code = trial.finish()
        if session is not None:
            session.wait(5)
    ops = strace.read_ops(log, d) if use_strace and os.path.exists(log) else []
    finished = bool(reply and reply.get("ok"))
    died = exit_code not in (0, None)
    fault = f"SIG{point.sig} {point.label}"
    if point.kind == "returned" and trial.returned is None:
        fault += "; save() never returned"
    if finished:
        fault += "; save k had finished before the signal"
    elif not died:
        fault += "; the process survived the signal"
    note = (f"exit {exit_code}" if exit_code is not None else "exit unknown") + \
        (f"; save error: {reply.get('error')}" if reply and not reply.get("ok") else "") + \
        (f"; save() returned {normalize_name(os.path.basename(trial.returned.get('path') or ''))}"
         if trial.returned else "") + \
        ("; operations: the main thread's only" if use_strace and not point.follow else "")
    return CrashState(fault, f"kill-{point.kind}", DirImage.load(d), ops, note, {"kill_point": point.to_dict()})
