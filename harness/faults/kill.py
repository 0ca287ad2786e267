"""Kill mode: signal the saving process during save k, then judge what is on disk.

Kill points, from a seeded schedule over `--trials`:
  event   at a named file event of the save: before or after each rename.
          strace delivers the signal at the exact system call (-e inject):
          SIGKILL at the rename's entry stops it from happening ("before");
          SIGTERM and SIGINT are acted on when the call returns ("after";
          SIGINT raises KeyboardInterrupt in Python, so TF's Python code
          unwinds, as on Ctrl-C). The event list comes from one traced
          reference save.
  bytes   once N bytes of the save have been written: with strace, at the
          entry of the write that would pass N; without, by polling the
          directory (the signal lands somewhat later).
  random  after a random delay within the expected save time.
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
from .state import CrashState, DirImage

SIGNALS = ("KILL", "TERM", "INT")
_POLL_SECONDS = 0.0005


@dataclass
class KillPoint:
    kind: str            # event | bytes | random
    sig: str             # KILL | TERM | INT
    label: str           # human description of the point
    inject: str = ""     # strace inject spec (exact points)
    threshold: int = 0   # bytes kind without strace
    delay: float = 0.0   # random kind

    def to_dict(self) -> dict:
        return {"kind": self.kind, "signal": "SIG" + self.sig, "label": self.label, "inject": self.inject,
                "threshold_bytes": self.threshold, "delay_seconds": round(self.delay, 6)}


def plan(trials: int, seed: int, save_seconds: float, total_write_bytes: int,
         ref=None) -> list[KillPoint]:
    """The seeded kill schedule. `ref` = a record.Recording of save k, or None without strace."""
    rng = random.Random(seed)
    events, writes = [], []
    if ref is not None:
        ops, calls, pid = ref.ops, ref.calls, ref.pid
        renames = [op for op in ops if op.call == "rename" and op.tid == pid]
        for j, op in enumerate(renames, 1):
            what = op.describe()
            events.append(KillPoint("event", "KILL", f"before rename #{j} ({what})", strace.inject_at(calls, op, "SIGKILL")))
            events.append(KillPoint("event", "TERM", f"after rename #{j} ({what})", strace.inject_at(calls, op, "SIGTERM")))
            events.append(KillPoint("event", "INT", f"after rename #{j} ({what}), as Ctrl-C",
                                    strace.inject_at(calls, op, "SIGINT")))
        done = 0
        for op in ops:
            if op.call == "write" and op.tid == pid:
                writes.append((done, op))
                done += op.size or 0
        total_write_bytes = done or total_write_bytes
    rng.shuffle(events)
    points, sig_cycle = [], 0
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
            if writes:
                before, op = next(((b, o) for b, o in writes if b + (o.size or 0) >= n), writes[-1])
                # SIGKILL at the crossing write's entry; TERM/INT take effect as it returns
                when = "before" if sig == "KILL" else "after"
                points.append(KillPoint("bytes", sig, f"{when} the write that passes {n} bytes "
                                        f"({before} bytes written before it; {op.describe()})",
                                        strace.inject_at(calls, op, "SIG" + sig)))
            else:
                points.append(KillPoint("bytes", sig, f"once {n} bytes are written (polled)", threshold=n))
        else:
            delay = rng.uniform(0.0, 1.2 * save_seconds)
            points.append(KillPoint("random", sig, f"after {delay * 1000:.2f} ms", delay=delay))
    return points


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
            session = strace.StraceSession(trial.pid, log, inject=point.inject or None).start()
        trial.start_save(d)
        if point.kind == "random":
            time.sleep(point.delay)
            trial.signal(sig)
        elif point.kind == "bytes" and not point.inject:
            while True:
                try:
                    reply = trial.ch.recv(_POLL_SECONDS)
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
    if finished:
        fault += "; save k had finished before the signal"
    elif not died:
        fault += "; the process survived the signal"
    note = (f"exit {exit_code}" if exit_code is not None else "exit unknown") + \
        (f"; save error: {reply.get('error')}" if reply and not reply.get("ok") else "")
    return CrashState(fault, f"kill-{point.kind}", DirImage.load(d), ops, note, {"kill_point": point.to_dict()})
