"""Record one save k under strace: the directory before and after, and its operations."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import apis, strace
from .content import Content, write_content
from .state import DirImage, fingerprint


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
        base, linked = stash(d, os.path.join(workdir, "before"), copy=not apis.renames_into_place(target.api))
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
    check_stash(linked, target.k)
    calls = strace.read_calls(log)
    ops = strace.parse_ops((), d, calls)
    seconds = float(reply.get("seconds") or prep.get("save_seconds") or 0.05)
    done = reply.get("done_seconds")
    return Recording(base, DirImage.load(d), ops, calls, trial.pid, seconds, log,
                     float(done) if done is not None else None)


def stash(root: str, into: str, copy: bool) -> tuple[DirImage, dict]:
    """The directory before the save, kept where the save cannot change it: large files
    hard-linked into `into` (or copied, for saves that may write into a file in place),
    small ones read. Returns the image and {linked path: fingerprint} to check afterwards."""
    image, linked = DirImage.load(root), {}
    for rel, data in image.files.items():
        if not isinstance(data, Content):
            continue
        path = os.path.join(into, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            if copy:
                raise OSError("copy")
            os.link(os.path.join(root, rel), path)
            linked[path] = fingerprint(path)
        except OSError:
            write_content(data, path)
        image.files[rel] = Content.of_file(path)
    return image, linked


def check_stash(linked: dict, k: int) -> None:
    """Raise if the save changed a hard-linked file of an earlier save in place: the states
    would be rebuilt from bytes that are no longer those the save started from."""
    for path, before in linked.items():
        if fingerprint(path) != before:
            raise RuntimeError(f"save {k} wrote into a file of an earlier save in place ({path}); "
                               "its crash states cannot be rebuilt from the recording")


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
