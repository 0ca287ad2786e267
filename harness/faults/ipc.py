"""JSON lines over a Unix socket, with timeouts: how the harness talks to its
saver and checker children.

A socket (not stdout) carries the protocol so that whatever TensorFlow prints
cannot corrupt it, and so that a socket can be handed to a forked trial
process with SCM_RIGHTS.
"""

from __future__ import annotations

import json
import select
import socket
import time


class ChannelClosed(Exception):
    """The other end went away (its process died or closed the socket)."""


class Channel:
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
        except (BrokenPipeError, ConnectionResetError, OSError) as e:
            raise ChannelClosed(str(e)) from None

    def send_fd(self, obj, fd: int) -> None:
        """Send one message together with an open file descriptor."""
        data = (json.dumps(obj) + "\n").encode()
        try:
            socket.send_fds(self.sock, [data], [fd])
        except OSError as e:
            raise ChannelClosed(str(e)) from None

    def recv_with_fd(self, timeout: float | None = None):
        """Receive one message sent by send_fd: (obj, fd)."""
        obj = self._pop()
        if obj is not None:
            return obj, None
        self._wait(timeout)
        data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 1)
        if not data:
            raise ChannelClosed("end of channel")
        self._buf += data
        obj = self._pop()
        if obj is None:  # the rest of the line follows without fds
            obj = self.recv(timeout)
        return obj, (fds[0] if fds else None)

    def _pop(self):
        if b"\n" not in self._buf:
            return None
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def _wait(self, timeout: float | None) -> None:
        if timeout is None:
            return
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            raise TimeoutError

    def recv(self, timeout: float | None = None):
        """Next message; TimeoutError after `timeout` seconds, ChannelClosed at EOF."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            obj = self._pop()
            if obj is not None:
                return obj
            self._wait(None if deadline is None else deadline - time.monotonic())
            try:
                chunk = self.sock.recv(1 << 16)
            except (ConnectionResetError, OSError) as e:
                raise ChannelClosed(str(e)) from None
            if not chunk:
                raise ChannelClosed("end of channel")
            self._buf += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def pair() -> tuple[Channel, socket.socket]:
    """(our end as a Channel, the child's end as a raw socket to pass on)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return Channel(a), b
