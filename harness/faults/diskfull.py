"""Diskfull mode: save k into a file system that runs out of space.

As root, each trial gets its own tmpfs mount: saves 1..k-1 are made with
room to spare, then the mount is shrunk (remount) to what is used plus a
fraction of one checkpoint, and save k runs into the wall. Without root (or
where mounting is not allowed) the trial process gets RLIMIT_FSIZE instead: a
write past the limit fails with EFBIG, the per-file analogue.

What is judged: the error the save raised (recorded in the row's note; a
save that reports success on a full disk is the worst finding), and the state
left behind (rollback expected: save k-1 must survive).

Mounts are always undone: in `finally`, by an atexit hook, and on SIGTERM
(turned into KeyboardInterrupt by harness/child.py's sigterm_as_interrupt while
a mount is up), which unwinds through the same `finally` as Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import subprocess
import threading

from ..child import sigterm_as_interrupt
from .state import CrashState, DirImage

PAGE = 4096
_mounted: set[str] = set()
_lock = threading.Lock()


class MountError(Exception):
    pass


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def unmount(path: str) -> None:
    """Unmount (lazily if busy); never raises."""
    with _lock:
        if path not in _mounted:
            return
        for cmd in (["umount", path], ["umount", "-l", path]):
            try:
                if _run(cmd).returncode == 0:
                    break
            except (OSError, subprocess.SubprocessError):
                continue
        _mounted.discard(path)


def unmount_all() -> None:
    for path in sorted(_mounted, reverse=True):
        unmount(path)


atexit.register(unmount_all)


def can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


class Tmpfs:
    """A tmpfs mounted at `path` for the life of a `with` block; a SIGTERM meanwhile unwinds
    the block (as KeyboardInterrupt), so the mount is undone."""

    def __init__(self, path: str, size: int):
        self.path, self.size = path, size
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Tmpfs":
        os.makedirs(self.path, exist_ok=True)
        # SIGTERM handled from before the mount, and the path registered before mount runs:
        # however early a signal lands, unmount() and the atexit hook know what to undo
        self._stack.enter_context(sigterm_as_interrupt())
        try:
            with _lock:
                _mounted.add(self.path)
            r = _run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", self.path])
            if r.returncode != 0:
                raise MountError(r.stderr.strip() or "mount failed")
        except BaseException:
            self.__exit__()
            raise
        return self

    def resize(self, size: int) -> None:
        r = _run(["mount", "-o", f"remount,size={size}", self.path])
        if r.returncode != 0:
            raise MountError(r.stderr.strip() or "remount failed")
        self.size = size

    def used(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def __exit__(self, *exc):
        try:
            unmount(self.path)
            try:
                os.rmdir(self.path)
            except OSError:
                pass
        finally:
            self._stack.close()


def fractions(trials: int, seed: int) -> list[float]:
    """Room left for save k, as fractions of one checkpoint: a seeded spread over
    (0, 1.2) so that most saves run out of space and the last ones may just fit."""
    rng = random.Random(seed)
    step = 1.2 / trials
    return [round((i + rng.uniform(0.1, 0.9)) * step, 4) for i in range(trials)]


def _ckpt_bytes(image: DirImage) -> int:
    """Bytes of the newest complete checkpoint: what save k will need again."""
    prefixes = image.prefixes()
    if not prefixes:
        return image.total_bytes()
    p = prefixes[-1]
    return sum(len(d) for r, d in image.files.items() if r.startswith(p + "."))


def _largest_file(image: DirImage) -> int:
    return max((len(d) for d in image.files.values()), default=0)


def run_trial(zygote, target, fraction: float, workdir: str, manifests: str, use_tmpfs: bool) -> CrashState:
    os.makedirs(workdir, exist_ok=True)
    trial = zygote.fork(target)
    try:
        if use_tmpfs:
            mnt = os.path.join(workdir, "mnt")
            est = 4 * target.spec.state_bytes + (8 << 20)  # room for saves 1..k-1 and TF's temp files
            with Tmpfs(mnt, est) as fs:
                d = os.path.join(mnt, "state")
                trial.prepare(d, manifests)
                need = _ckpt_bytes(DirImage.load(d))
                used = fs.used()
                room = max(PAGE, int(fraction * need) // PAGE * PAGE)
                fs.resize(used + room)
                trial.start_save(d)
                reply = trial.result()
                exit_code = trial.finish()  # before the unmount: nothing of ours may hold the mount
                image = DirImage.load(d, in_memory=True)   # the mount goes away
                limit = f"tmpfs with {room} bytes free for a save of {need} bytes ({fraction:.0%})"
        else:
            d = os.path.join(workdir, "state")
            trial.prepare(d, manifests)
            need = _largest_file(DirImage.load(d))
            room = max(1, int(fraction * need))
            trial.start_save(d, fsize_limit=room)
            reply = trial.result()
            image = DirImage.load(d, in_memory=True)
            limit = f"RLIMIT_FSIZE {room} bytes, largest file of a save {need} bytes ({fraction:.0%})"
    finally:
        exit_code = trial.finish()
    if reply is None:
        result = f"the saving process died (exit {exit_code})"
    elif reply.get("ok"):
        result = "save reported success"
    else:
        result = f"save raised {reply.get('error')}"
    return CrashState(f"{limit}; {result}", "diskfull-tmpfs" if use_tmpfs else "diskfull-rlimit", image,
                      [{"op": "limit", "method": "tmpfs" if use_tmpfs else "rlimit", "bytes": room,
                        "fraction": fraction}], result,
                      {"save_result": result, "room_bytes": room, "save_bytes": need})
