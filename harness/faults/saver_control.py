"""Harness side of the saving process: start the zygote, fork trials, reap them.

The zygote runs in its own session, so a trial (its child) shares its process
group and `close()` takes every one of them down, also on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..errors import ResourceError
from . import ipc

START_TIMEOUT = 180.0   # TF import on a busy 2-core machine
STEP_TIMEOUT = 300.0    # prepare / save of a small checkpoint


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_child(module: str, log, what: str):
    """Start `python -m MODULE FD` in its own session, talking over a channel on FD, and wait
    for its hello (it has imported TF by then). Returns (process, channel, hello)."""
    ch, theirs = ipc.pair()
    try:
        proc = subprocess.Popen([sys.executable, "-m", module, str(theirs.fileno())],
                                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=child_env(), start_new_session=True)
    finally:
        theirs.close()
    try:
        return proc, ch, ch.recv(START_TIMEOUT)
    except (TimeoutError, ipc.ChannelClosed):
        kill_group(proc)
        ch.close()
        raise ResourceError(f"the {what} process did not start (log: {log.name})") from None


class Zygote:
    def __init__(self, log_path: str):
        self.log_path = log_path
        self.proc = None
        self.ch = None
        self.tf_version = ""

    def start(self) -> "Zygote":
        self._log = open(self.log_path, "ab")
        self.proc, self.ch, hello = start_child("harness.faults.saver_child", self._log, "saving")
        self.tf_version = hello.get("tf_version", "")
        return self

    def fork(self, target) -> "Trial":
        mine, theirs = ipc.pair()
        try:
            self.ch.send_fd({"cmd": "fork", "target": target.to_dict()}, theirs.fileno())
        finally:
            theirs.close()
        reply = self.ch.recv(30)
        return Trial(self, int(reply["pid"]), mine)

    def wait(self, pid: int, timeout: float = 10.0):
        """Exit code of a trial (negative: killed by that signal), or None if still running."""
        self.ch.send({"cmd": "wait", "pid": pid, "timeout": timeout})
        return self.ch.recv(timeout + 10).get("status")

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None and self.ch is not None:
                self.ch.send({"cmd": "exit"})
                self.proc.wait(5)
        except (ipc.ChannelClosed, subprocess.TimeoutExpired, OSError):
            pass
        kill_group(self.proc)
        if self.ch is not None:
            self.ch.close()
        self._log.close()
        self.proc = None


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group of a child started with start_new_session, then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


class Trial:
    """One forked trial process: prepare (saves 1..k-1), then save k."""

    def __init__(self, zygote: Zygote, pid: int, channel: ipc.Channel):
        self.zygote, self.pid, self.ch = zygote, pid, channel
        self.exit_code = None

    def call(self, cmd: str, timeout: float = STEP_TIMEOUT, **kw) -> dict:
        self.ch.send({"cmd": cmd, **kw})
        return self.ch.recv(timeout)

    def prepare(self, directory: str, manifest_dir: str) -> dict:
        reply = self.call("prepare", dir=directory, manifest_dir=manifest_dir)
        if not reply.get("ok"):
            raise RuntimeError(f"saves 1..k-1 failed: {reply.get('error')}")
        return reply

    def start_save(self, directory: str, **kw) -> None:
        """Start save k without waiting (the caller kills, polls or waits)."""
        self.ch.send({"cmd": "go", "save": {"dir": directory, **kw}})

    def result(self, timeout: float = STEP_TIMEOUT) -> dict | None:
        """Save k's reply, or None if the process died (or stalled) before answering;
        finish() then reaps it, with SIGKILL if need be."""
        try:
            return self.ch.recv(timeout)
        except (ipc.ChannelClosed, TimeoutError):
            return None

    def signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def finish(self, timeout: float = 10.0):
        """End the trial (politely, then SIGKILL) and reap it; returns its exit code."""
        if self.exit_code is not None:
            return self.exit_code
        try:
            self.ch.send({"cmd": "exit"})
        except ipc.ChannelClosed:
            pass
        status = None
        try:
            status = self.zygote.wait(self.pid, timeout)
            if status is None:
                self.signal(signal.SIGKILL)
                status = self.zygote.wait(self.pid, timeout)
        except (ipc.ChannelClosed, TimeoutError):
            self.signal(signal.SIGKILL)
        self.ch.close()
        self.exit_code = status
        return status

    def wait_dead(self, timeout: float = 10.0):
        """Reap a trial that was signalled; SIGKILL it if it is still alive after `timeout`."""
        time.sleep(0)  # let the signal land
        return self.finish(timeout)
