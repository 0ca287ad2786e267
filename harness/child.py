"""Child processes of the harness and how it talks to them.

Every process the harness starts to do TensorFlow work (the runner's worker,
the crash mode's saving zygote and its checker) is a `python -m MODULE FD ...`
child that

  - runs in a session of its own, so that killing its process group takes
    down whatever it forked (trials) and a Ctrl-C at the terminal reaches the
    harness only, which then decides what to kill;
  - talks JSON lines over a Unix socket on FD (`Channel`), never over stdout:
    whatever TensorFlow prints goes to the child's log file, and a socket can
    carry file descriptors (SCM_RIGHTS) to a forked trial;
  - says hello first (its first message, once its imports are done), which
    the parent waits for under a start timeout.

The harness side is `Child`; the child side starts with `child_channel(argv)`.
`sigterm_as_interrupt()` makes SIGTERM unwind the parent like Ctrl-C does.

This module is imported by both sides and imports nothing of the harness, so
it can sit under any of it without an import cycle.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

START_TIMEOUT = 180.0   # importing TensorFlow on a busy 2-core machine
EXIT_GRACE = 5.0        # seconds a child gets to leave by itself before its group is killed


# -- the channel ------------------------------------------------------------------------
class ChannelClosed(Exception):
    """The other end went away (its process died or closed the socket)."""


class Channel:
    """JSON lines over a connected Unix stream socket; receives take a timeout."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buf = b""

    @classmethod
    def from_fd(cls, fd: int) -> "Channel":
        return cls(socket.socket(fileno=fd))

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj) -> None:
        data = (json.dumps(obj, default=str) + "\n").encode()
        try:
            self.sock.sendall(data)
        except OSError as e:   # broken pipe, reset, or our end already closed
            raise ChannelClosed(str(e)) from None

    def send_fd(self, obj, fd: int) -> None:
        """Send one message together with an open file descriptor."""
        data = (json.dumps(obj) + "\n").encode()
        try:
            socket.send_fds(self.sock, [data], [fd])
        except OSError as e:
            raise ChannelClosed(str(e)) from None

    def recv(self, timeout: float | None = None):
        """The next message. TimeoutError when none is complete within `timeout` seconds
        (None: wait for ever), ChannelClosed at the end of the channel."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            obj = self._pop()
            if obj is not None:
                return obj
            self._wait(deadline)
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError as e:
                raise ChannelClosed(str(e)) from None
            if not chunk:
                raise ChannelClosed("end of channel")
            self._buf += chunk

    def recv_with_fd(self, timeout: float | None = None):
        """Receive one message sent by send_fd (or by send): (obj, fd or None)."""
        obj = self._pop()
        if obj is not None:
            return obj, None
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wait(deadline)
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 1)
        except OSError as e:
            raise ChannelClosed(str(e)) from None
        if not data:
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("end of channel")
        self._buf += data
        obj = self._pop()
        if obj is None:  # the rest of the line follows without descriptors
            obj = self.recv(None if deadline is None else deadline - time.monotonic())
        return obj, (fds[0] if fds else None)

    def _pop(self):
        if b"\n" not in self._buf:
            return None
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def _wait(self, deadline: float | None) -> None:
        if deadline is None:
            return
        try:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
        except ValueError:   # our end is closed (fileno -1)
            raise ChannelClosed("channel closed") from None
        if not ready:
            raise TimeoutError

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def pair() -> tuple[Channel, socket.socket]:
    """(our end as a Channel, the other end as a raw socket to hand to a child)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return Channel(a), b


# -- process helpers --------------------------------------------------------------------
def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"   # a child that dies leaves its last words in the log
    return env


def kill_group(proc: subprocess.Popen, reap_timeout: float = 10.0) -> int | None:
    """SIGKILL the process group led by `proc` (started in a session of its own), then reap
    `proc`. The group is signalled even when its leader has already exited, so that
    processes it forked do not outlive it. Returns the leader's exit status."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        return proc.wait(reap_timeout)
    except subprocess.TimeoutExpired:   # stuck in the kernel (D state); nothing more we can do
        return None


def exit_text(code: int | None) -> str:
    """An exit status as words: 'exit code 1', 'killed by SIGKILL', 'still running'."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def last_line(path: str, limit: int = 200) -> str:
    """The last non-blank line of a log file (at most `limit` characters), or ''."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 8192))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


class ChildFailed(RuntimeError):
    """A child did not get as far as its hello."""

    def __init__(self, message: str, timed_out: bool, exit_code: int | None, log_tail: str):
        super().__init__(message)
        self.timed_out, self.exit_code, self.log_tail = timed_out, exit_code, log_tail


class ChildOwner:
    """For a client that holds at most one Child in `self.child`: its process and channel,
    or None while there is no child."""

    child: "Child | None" = None

    @property
    def proc(self):
        return self.child.proc if self.child is not None else None

    @property
    def ch(self):
        return self.child.ch if self.child is not None else None


class Child:
    """`python -m MODULE FD ARGS...` in a session of its own, with a Channel on FD and its
    stdout and stderr appended to `log_path`. One use: after kill() start a new Child.
    kill() and close() may come from another thread while start() runs."""

    def __init__(self, module: str, log_path: str, args: tuple = (), what: str | None = None):
        self.module, self.log_path, self.args = module, log_path, tuple(str(a) for a in args)
        self.what = what or module
        self.proc: subprocess.Popen | None = None
        self.ch: Channel | None = None
        self.hello: dict = {}
        self._log = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = START_TIMEOUT) -> dict:
        """Start the child and return its first message (its hello, or an error it hit on
        the way). ChildFailed if it dies or stays silent first, or is killed meanwhile; on
        that or any other exception (KeyboardInterrupt) its group is killed before this returns."""
        with self._lock:
            if self.proc is not None or self._stopped:
                raise ChildFailed(f"the {self.what} process was started or stopped already", False,
                                  self.proc.returncode if self.proc else None, "")
        ours, theirs = pair()
        try:
            try:
                with signals_held():   # Ctrl-C between Popen and recording its result would orphan the child
                    stopped = self._spawn(ours, theirs)
            finally:
                theirs.close()   # the child has its own copy: EOF on ours once the child is gone
            if stopped:   # kill() ran in another thread before there was a process to kill
                raise ChannelClosed("stopped while starting")
            self.hello = ours.recv(timeout)   # `ours`: a kill() in another thread clears self.ch
        except TimeoutError:
            code = self.kill()
            raise ChildFailed(f"the {self.what} process did not say hello within {timeout:.0f}s "
                              f"(log: {self.log_path})", True, code, self.log_tail()) from None
        except ChannelClosed:
            code = self.kill()
            tail = self.log_tail()
            raise ChildFailed(f"the {self.what} process ended before it was ready ({exit_text(code)}"
                              + (f": {tail}" if tail else "") + f"; log: {self.log_path})",
                              False, code, tail) from None
        except BaseException:   # Ctrl-C, SIGTERM, no such Python: nothing may outlive the start
            self.kill()
            raise
        finally:
            if self.proc is None:
                ours.close()
        return self.hello

    def _spawn(self, ours: Channel, theirs: socket.socket) -> bool:
        """Popen, then record process, channel and log together; True if kill() came first."""
        log = open(self.log_path, "ab")
        try:
            proc = subprocess.Popen([sys.executable, "-m", self.module, str(theirs.fileno()), *self.args],
                                    pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, env=child_env(), start_new_session=True)
        except BaseException:
            log.close()
            raise
        with self._lock:
            self.proc, self.ch, self._log = proc, ours, log
            return self._stopped

    def send(self, obj) -> None:
        self._channel().send(obj)

    def recv(self, timeout: float | None = None):
        return self._channel().recv(timeout)

    def _channel(self) -> Channel:
        if self.ch is None:
            raise ChannelClosed(f"the {self.what} process is not running")
        return self.ch

    def wait(self, timeout: float) -> int | None:
        """Exit status once the child exits within `timeout` seconds, else None."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self) -> str:
        return last_line(self.log_path)

    def kill(self) -> int | None:
        """SIGKILL the child's process group, reap the child, close the channel and the log.
        Safe to call more than once, and from another thread while start() runs (the child
        is then killed as soon as it exists). Returns the exit status."""
        with self._lock:
            self._stopped = True
            proc, ch, log = self.proc, self.ch, self._log
            self.ch = self._log = None
        if proc is not None:
            kill_group(proc)
        if ch is not None:
            ch.close()
        if log is not None:
            log.close()
        return proc.returncode if proc is not None else None

    def close(self, grace: float = EXIT_GRACE) -> int | None:
        """Ask the child to exit ({"cmd": "exit"}), give it `grace` seconds, then kill() so
        that nothing of its group survives either way."""
        if self.hello and self.ch is not None and self.proc.poll() is None:  # it listens once it said hello
            try:
                self.ch.send({"cmd": "exit"})
                self.proc.wait(grace)
            except (ChannelClosed, subprocess.TimeoutExpired):
                pass
        return self.kill()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def child_channel(argv: list[str]) -> Channel:
    """In the child: the channel on the descriptor named by argv[0] (stdout and stderr are
    already the log, so whatever TensorFlow prints cannot mix into the protocol)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return Channel.from_fd(int(argv[0]))


# -- SIGTERM as Ctrl-C ------------------------------------------------------------------
@contextlib.contextmanager
def signals_held(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold back SIGINT and SIGTERM for the length of the block (main thread only), then let
    them act as they would have: for a few statements that must not be cut in two, such as
    starting a process and recording that it exists. Signals ignored stay ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = {}
    for signum in signums:
        handler = signal.getsignal(signum)
        if handler != signal.SIG_IGN:
            previous[signum] = handler
            signal.signal(signum, lambda n, _frame: held.append(n))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for signum in held:
            signal.raise_signal(signum)   # now its own handler runs (or its default action)


def _interrupt(signum, frame):
    # later SIGTERMs must not cut short the cleanup this one starts
    signal.signal(signal.SIGTERM, _already_interrupted)
    raise KeyboardInterrupt("SIGTERM")


def _already_interrupted(signum, frame):
    pass


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the block runs, the first SIGTERM raises KeyboardInterrupt in the main thread, so
    the program unwinds exactly as on Ctrl-C (its `finally` blocks kill children, remove
    scratch, unmount); further SIGTERMs are ignored until the block ends. Nested blocks share
    the outermost one; outside the main thread this does nothing (Python delivers signals
    to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (_interrupt, _already_interrupted):
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
