"""Record one save k under strace: the directory before and after, and its operations."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import strace
from .state import DirImage


@dataclass
class Recording:
    base: DirImage                 # the directory with saves 1..k-1 complete
    final: DirImage                # after save k
    ops: list                      # strace.Op inside the directory, in order
    calls: list = field(repr=False, default_factory=list)   # every recorded call (for inject counting)
    pid: int = 0                   # the traced process (its main thread id)
    save_seconds: float = 0.0      # save k's duration under strace (until save() returned)
    log_path: str = ""
    done_seconds: float | None = None   # async saves: until the background write ended


def record_save(zygote, target, workdir: str, manifests: str) -> Recording:
    """Fork a trial, make saves 1..k-1, trace save k from start to end."""
    d = os.path.join(workdir, "state")
    log = os.path.join(workdir, "strace.log")
    os.makedirs(workdir, exist_ok=True)
    trial = zygote.fork(target)
    try:
        prep = trial.prepare(d, manifests)
        base = DirImage.load(d)
        session = strace.StraceSession(trial.pid, log).start()
        try:
            trial.start_save(d)
            reply = trial.result()
        finally:
            session.stop()
    finally:
        trial.finish()
    if not reply or not reply.get("ok"):
        raise RuntimeError(f"the traced save failed: {(reply or {}).get('error', 'the process died')}")
    calls = strace.read_calls(log)
    ops = strace.parse_ops((), d, calls)
    seconds = float(reply.get("seconds") or prep.get("save_seconds") or 0.05)
    done = reply.get("done_seconds")
    return Recording(base, DirImage.load(d), ops, calls, trial.pid, seconds, log,
                     float(done) if done is not None else None)


def time_save(zygote, target, workdir: str, manifests: str) -> float:
    """Seconds save k takes, untraced (plans random kill moments without strace)."""
    d = os.path.join(workdir, "state")
    trial = zygote.fork(target)
    try:
        trial.prepare(d, manifests)
        trial.start_save(d)
        reply = trial.result() or {}
    finally:
        trial.finish()
    return float(reply.get("seconds") or 0.05)
