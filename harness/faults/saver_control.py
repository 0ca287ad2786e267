"""Harness side of the saving process: start the zygote, fork trials, reap them.

The zygote runs in its own session, so a trial (its child) shares its process
group and `close()` takes every one of them down, also on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import time

from ..child import Channel, ChannelClosed, Child, ChildFailed, ChildOwner, pair
from ..errors import ResourceError

STEP_TIMEOUT = 300.0    # prepare / save of a small checkpoint


def start_tf_child(child: Child) -> dict:
    """Start a crash-mode child (it imports TensorFlow) and return its hello; one that never
    gets that far is a ResourceError (one line on the command line)."""
    try:
        return child.start()
    except ChildFailed as e:
        raise ResourceError(str(e)) from None


class Zygote(ChildOwner):
    def __init__(self, log_path: str):
        self.log_path = log_path
        self.child: Child | None = None
        self.tf_version = ""

    def start(self) -> "Zygote":
        # held before it is up, so that close() from another thread can stop a start
        self.child = Child("harness.faults.saver_child", self.log_path, what="saving")
        try:
            self.tf_version = start_tf_child(self.child).get("tf_version", "")
        except BaseException:
            self.child = None
            raise
        return self

    def fork(self, target) -> "Trial":
        mine, theirs = pair()
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
        """Let the zygote exit, then kill its process group: trials go with it."""
        if self.child is not None:
            self.child.close()
            self.child = None


class Trial:
    """One forked trial process: prepare (saves 1..k-1), then save k."""

    def __init__(self, zygote: Zygote, pid: int, channel: Channel):
        self.zygote, self.pid, self.ch = zygote, pid, channel
        self.exit_code = None
        self.returned: dict | None = None   # an async save's "returned" event, once seen
        self.final: dict | None = None      # save k's reply, when wait_returned() met it first

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

    def recv(self, timeout: float) -> dict:
        """The trial's next message (an async save's \"returned\" event is remembered)."""
        msg = self.ch.recv(timeout)
        if msg.get("event") == "returned":
            self.returned = msg
        return msg

    def result(self, timeout: float = STEP_TIMEOUT) -> dict | None:
        """Save k's reply, or None if the process died (or stalled) before answering;
        finish() then reaps it, with SIGKILL if need be. An async save's "returned"
        event on the way is kept in `returned`."""
        if self.final is not None:
            return self.final
        deadline = time.monotonic() + timeout
        try:
            while True:
                msg = self.recv(max(0.0, deadline - time.monotonic()))
                if msg.get("event") != "returned":
                    return msg
        except (ChannelClosed, TimeoutError):
            return None

    def wait_returned(self, timeout: float = STEP_TIMEOUT) -> dict | None:
        """Wait until an async save k's API call has returned (its write still going on);
        the event, or None if the trial died or answered with its final reply first."""
        deadline = time.monotonic() + timeout
        try:
            while self.returned is None:
                msg = self.recv(max(0.0, deadline - time.monotonic()))
                if msg.get("event") != "returned":
                    self.final = msg
                    return None
        except (ChannelClosed, TimeoutError):
            return None
        return self.returned

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
        except ChannelClosed:
            pass
        status = None
        try:
            status = self.zygote.wait(self.pid, timeout)
            if status is None:
                self.signal(signal.SIGKILL)
                status = self.zygote.wait(self.pid, timeout)
        except (ChannelClosed, TimeoutError):
            self.signal(signal.SIGKILL)
        self.ch.close()
        self.exit_code = status
        return status

    def wait_dead(self, timeout: float = 10.0):
        """Reap a trial that was signalled; SIGKILL it if it is still alive after `timeout`."""
        time.sleep(0)  # let the signal land
        return self.finish(timeout)
