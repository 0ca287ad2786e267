"""strace: attach to a saving process, record its file-system operations, parse them.

Recording: `strace -f -tt -yy -xx -s N -e trace=<file ops> -p PID`. -yy prints
the path behind every fd, -xx prints every string byte as \\xHH (unambiguous to
decode), -s N keeps up to N bytes of written data (enough for index and state
files; larger data writes are taken from the files themselves later).
Optionally `-e inject=...:signal=SIG:when=N` makes strace deliver a signal at
an exact system call (kill mode).

Parsing turns the log into `Op`s on paths relative to the checkpoint directory;
calls elsewhere (Python's imports, sockets, /proc) are dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from ..errors import ResourceError

# calls in which the kernel copies bytes from one file into another (Python's shutil.copy
# uses sendfile): a write of the output file whose bytes strace never shows
COPIES = ("sendfile", "sendfile64", "copy_file_range")
# '?' tells strace to skip names this architecture does not have (no open/rename on arm64)
SYSCALLS = ("open", "openat", "openat2", "creat", "write", "pwrite64", "writev", "pwritev", "pwritev2",
            "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
            "truncate", "ftruncate", "fsync", "fdatasync", "sync", "syncfs", "close", "lseek") + COPIES
RENAMES = ("rename", "renameat", "renameat2")
DEFAULT_STRING_BYTES = 65536


def available() -> str | None:
    return shutil.which("strace")


def require(use: str = "--mode trace") -> str:
    path = available()
    if not path:
        raise ResourceError("strace is not installed; install it with `apt-get install -y strace` "
                            f"(Debian/Ubuntu) to use {use}")
    return path


@dataclass
class Op:
    """One file-system operation inside the checkpoint directory."""

    index: int            # position in the save's sequence of ops (0-based)
    tid: int
    call: str             # open, write, rename, unlink, mkdir, rmdir, truncate, fsync, close, lseek
    path: str             # relative to the checkpoint directory ("" = the directory itself)
    dest: str = ""        # rename: the new name
    fd: int | None = None
    flags: str = ""       # open: O_ flags as strace prints them
    offset: int | None = None   # pwrite offset, lseek result
    size: int | None = None     # bytes written, truncate length
    data: bytes | None = field(default=None, repr=False)   # written bytes when strace kept all of them
    syscall: str = ""     # the raw system call name
    time: str = ""
    raw_index: int = -1   # position among all recorded calls (for strace's when= counting)

    def describe(self) -> str:
        from .state import normalize_name
        p = normalize_name(self.path) or "."
        if self.call == "rename":
            return f"rename {p} -> {normalize_name(self.dest)}"
        if self.call == "write":
            at = f" @{self.offset}" if self.offset is not None else ""
            return f"write {p} {self.size}B{at}"
        if self.call == "open":
            return f"open {p} {self.flags}"
        if self.call == "truncate":
            return f"truncate {p} to {self.size}"
        return f"{self.call} {p}"

    def to_dict(self) -> dict:
        d = {"index": self.index, "call": self.call, "path": self.path, "what": self.describe()}
        for k in ("dest", "flags"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        for k in ("offset", "size", "fd"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d


# -- recording ---------------------------------------------------------------------------
class StraceSession:
    """strace attached to one running process (all its threads)."""

    def __init__(self, pid: int, log_path: str, inject: str | None = None,
                 string_bytes: int = DEFAULT_STRING_BYTES, follow: bool = True,
                 syscalls: tuple[str, ...] = SYSCALLS, paths: tuple[str, ...] = ()):
        self.pid, self.log_path, self.inject, self.string_bytes = pid, log_path, inject, string_bytes
        self.follow = follow   # False: the main thread only (its calls alone count for an inject)
        self.syscalls = syscalls
        # -P: only calls on these paths are traced, and only they can be injected. strace 6.1
        # matches a path argument or an fd's path, but not the new name of a rename.
        self.paths = paths
        self.proc = None
        self.messages: list[str] = []

    def command(self) -> list[str]:
        cmd = [require()] + (["-f"] if self.follow else [])
        cmd += ["-tt", "-yy", "-xx", "-s", str(self.string_bytes),
                "-e", "trace=" + ",".join("?" + s for s in self.syscalls), "-o", self.log_path]
        for path in self.paths:
            cmd += ["-P", path]
        if self.inject:
            cmd += ["-e", f"inject={self.inject}"]
        return cmd + ["-p", str(self.pid)]

    def start(self, timeout: float = 20.0) -> "StraceSession":
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        mark = f"Process {self.pid} attached"
        while not any(mark in m for m in self.messages):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                why = self.messages[-1] if self.messages else "no output"
                raise ResourceError(f"strace could not attach to process {self.pid}: {why}")
            time.sleep(0.005)
        return self

    def _drain(self):
        for line in self.proc.stderr:
            self.messages.append(line.decode(errors="replace").strip())

    def stop(self, timeout: float = 10.0) -> None:
        """Detach (SIGINT makes strace let go of the process) and reap strace."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for strace to exit by itself (its tracee died); stop it otherwise."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()


# -- parsing -----------------------------------------------------------------------------
_LINE = re.compile(r"^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(.*)$")
_CALL = re.compile(r"^([a-z_0-9]+)\((.*)\)\s+=\s+(.*)$", re.S)
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"^<\.\.\. ([a-z_0-9]+) resumed>(.*)$", re.S)
_HEX = re.compile(r"\\x([0-9a-fA-F]{2})")


def _unescape(body: str) -> bytes:
    """Decode a strace string literal body (\\xHH with -xx; tolerate the usual C escapes)."""
    if "\\" not in body:
        return body.encode("latin-1")
    out = bytearray()
    i, n = 0, len(body)
    simple = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "\\": 92, '"': 34, "a": 7, "b": 8, "e": 27}
    while i < n:
        c = body[i]
        if c != "\\":
            out.append(ord(c))
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < n else ""
        if nxt == "x":
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        elif nxt.isdigit():
            j = i + 1
            while j < n and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1:j], 8) & 0xFF)
            i = j
        else:
            out.append(simple.get(nxt, ord(nxt) if nxt else 92))
            i += 2
    return bytes(out)


def split_args(text: str) -> list[str]:
    """Split a syscall's argument text at top-level commas (quotes, brackets, <annotations> respected)."""
    args, depth, cur, i, n = [], 0, [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if text.startswith("=>", i):   # strace's "[in] => [out]" of a pointer argument
            cur.append("=>")
            i += 2
            continue
        if c in "[{(<":
            depth += 1
        elif c in "]})>":
            depth -= 1
        if c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur or args:
        args.append("".join(cur).strip())
    return args


def parse_string(tok: str) -> tuple[bytes, bool]:
    """A quoted string argument -> (bytes, complete). strace marks cut strings with '...'."""
    tok = tok.strip()
    if not tok.startswith('"'):
        return b"", False
    end = tok.rfind('"')
    return _unescape(tok[1:end]), not tok[end + 1:].startswith("...")


def _in_value(tok: str) -> int | None:
    """A pointer argument's value on entry: '[12] => [40]' or '[12]' -> 12; 'NULL' -> None."""
    m = re.match(r"^\[(\d+)\]", tok.strip())
    return int(m.group(1)) if m else None


def parse_fd(tok: str) -> tuple[int | None, str]:
    """'3</path>' or 'AT_FDCWD</cwd>' -> (fd or None for AT_FDCWD, decoded path)."""
    m = re.match(r"^(-?\d+|AT_FDCWD)(?:<(.*)>)?$", tok.strip(), re.S)
    if not m:
        return None, ""
    fd = None if m.group(1) == "AT_FDCWD" else int(m.group(1))
    path = _unescape(m.group(2)).decode(errors="surrogateescape") if m.group(2) else ""
    return fd, path


def _ret(text: str) -> tuple[int | None, str]:
    """Return value and the path annotation of a returned fd."""
    m = re.match(r"^(-?\d+)(?:<(.*?)>)?", text.strip())
    if not m:
        return None, ""  # '?': the process died inside the call
    path = _unescape(m.group(2)).decode(errors="surrogateescape") if m.group(2) else ""
    return int(m.group(1)), path


@dataclass
class RawCall:
    tid: int
    time: str
    name: str
    args: list[str]
    ret: int | None
    ret_path: str


def raw_calls(lines) -> list[RawCall]:
    """Complete system calls from strace -f output, unfinished/resumed pairs joined, in log order.

    A call that was interrupted and never resumed (the process was killed) is dropped: it
    did not happen, or for a SIGKILL at its entry it did not start.
    """
    pending: dict[int, tuple[str, str]] = {}
    out = []
    for line in lines:
        m = _LINE.match(line.rstrip("\n"))
        if not m:
            continue
        tid, ts, rest = int(m.group(1)), m.group(2), m.group(3)
        if rest.startswith("+++") or rest.startswith("---"):
            continue
        if rest.endswith(_UNFINISHED):
            pending[tid] = (ts, rest[: -len(_UNFINISHED)])
            continue
        r = _RESUMED.match(rest)
        if r:
            if tid not in pending:
                continue
            ts, head = pending.pop(tid)
            rest = head + r.group(2)
        c = _CALL.match(rest)
        if not c:
            continue
        ret, ret_path = _ret(c.group(3))
        out.append(RawCall(tid, ts, c.group(1), split_args(c.group(2)), ret, ret_path))
    return out


class _Resolver:
    """Paths in calls -> paths relative to the checkpoint directory (None if elsewhere)."""

    def __init__(self, root: str):
        self.roots = sorted({os.path.abspath(root), os.path.realpath(root)}, key=len, reverse=True)
        self.cwd = ""

    def rel(self, path: str) -> str | None:
        if not path:
            return None
        for r in self.roots:
            if path == r:
                return ""
            if path.startswith(r + "/"):
                return os.path.normpath(path[len(r) + 1:])
        return None

    def arg_path(self, tok: str, dir_tok: str | None = None) -> str | None:
        raw, _ = parse_string(tok)
        path = raw.decode(errors="surrogateescape")
        if not os.path.isabs(path):
            base = self.cwd
            if dir_tok is not None:
                fd, dpath = parse_fd(dir_tok)
                base = dpath or base
                if fd is None and dpath:
                    self.cwd = dpath
            path = os.path.join(base, path) if base else path
        return self.rel(os.path.normpath(path))


def parse_ops(lines, root: str, calls: list[RawCall] | None = None) -> list[Op]:
    """File-system operations on `root` (the checkpoint directory), in order."""
    res = _Resolver(root)
    ops: list[Op] = []

    def add(call, rc: RawCall, path, **kw):
        ops.append(Op(len(ops), rc.tid, call, path, syscall=rc.name, time=rc.time, raw_index=n, **kw))

    for n, rc in enumerate(raw_calls(lines) if calls is None else calls):
        a, name = rc.args, rc.name
        if rc.ret is None or rc.ret < 0:
            continue  # failed or never completed: no effect on the directory
        if name in ("open", "openat", "openat2", "creat"):
            path = res.rel(rc.ret_path)
            if path is None:
                continue
            if name == "creat":
                flags = "O_WRONLY|O_CREAT|O_TRUNC"
            elif name == "open":
                flags = a[1] if len(a) > 1 else ""
            else:
                flags = a[2] if len(a) > 2 else ""
            add("open", rc, path, fd=rc.ret, flags=flags)
        elif name in ("write", "pwrite64", "writev", "pwritev", "pwritev2"):
            fd, fpath = parse_fd(a[0])
            path = res.rel(fpath)
            if path is None:
                continue
            data = None
            if name in ("write", "pwrite64"):
                raw, complete = parse_string(a[1])
                data = raw if complete and len(raw) == rc.ret else None
            offset = int(a[-1]) if name in ("pwrite64", "pwritev", "pwritev2") and a[-1].lstrip("-").isdigit() else None
            if name == "pwritev2":
                offset = int(a[3]) if a[3].lstrip("-").isdigit() else None
            add("write", rc, path, fd=fd, size=rc.ret, offset=offset, data=data)
        elif name in COPIES:
            # sendfile(out, in, in_offset, count); copy_file_range(in, in_offset, out, out_offset, ...)
            out_arg, at = (a[2], _in_value(a[3])) if name == "copy_file_range" else (a[0], None)
            fd, fpath = parse_fd(out_arg)
            path = res.rel(fpath)
            if path is None or not rc.ret:
                continue
            add("write", rc, path, fd=fd, size=rc.ret, offset=at, data=None)
        elif name in RENAMES:
            if name == "rename":
                src, dst = res.arg_path(a[0]), res.arg_path(a[1])
            else:
                src, dst = res.arg_path(a[1], a[0]), res.arg_path(a[3], a[2])
            if src is None and dst is None:
                continue
            add("rename", rc, src if src is not None else "", dest=dst if dst is not None else "")
        elif name in ("unlink", "unlinkat"):
            path = res.arg_path(a[0]) if name == "unlink" else res.arg_path(a[1], a[0])
            if path is None:
                continue
            removedir = name == "unlinkat" and "AT_REMOVEDIR" in (a[2] if len(a) > 2 else "")
            add("rmdir" if removedir else "unlink", rc, path)
        elif name in ("mkdir", "mkdirat", "rmdir"):
            path = res.arg_path(a[0]) if name != "mkdirat" else res.arg_path(a[1], a[0])
            if path is not None:
                add("rmdir" if name == "rmdir" else "mkdir", rc, path)
        elif name in ("truncate", "ftruncate"):
            if name == "truncate":
                path, fd = res.arg_path(a[0]), None
            else:
                fd, fpath = parse_fd(a[0])
                path = res.rel(fpath)
            if path is not None:
                add("truncate", rc, path, fd=fd, size=int(a[1]))
        elif name in ("fsync", "fdatasync", "syncfs", "close", "lseek"):
            fd, fpath = parse_fd(a[0])
            path = res.rel(fpath)
            if path is None:
                continue
            call = {"fdatasync": "fsync", "syncfs": "sync"}.get(name, name)
            add(call, rc, path, fd=fd, offset=rc.ret if name == "lseek" else None)
        elif name == "sync":
            add("sync", rc, "")
    return ops


def read_calls(log_path: str) -> list[RawCall]:
    with open(log_path, encoding="latin-1") as f:
        return raw_calls(f)


def read_ops(log_path: str, root: str) -> list[Op]:
    return parse_ops((), root, read_calls(log_path))


def _ordinal(calls: list[RawCall], index: int) -> int:
    """Which call of its name, on its own thread, calls[index] is (1-based): strace's `when=`."""
    rc = calls[index]
    return sum(1 for c in calls[: index + 1] if c.tid == rc.tid and c.name == rc.name)


def first_hit(calls: list[RawCall], index: int) -> int:
    """The call an inject at `calls[index]` (`name:when=N`) really stops when every thread is
    traced: strace counts per thread, so it is the first call, on any thread, that is its
    thread's N-th of that name. A TF worker thread often gets there before the thread that
    makes calls[index] (e.g. its first rename comes before the main thread's first)."""
    rc = calls[index]
    n = _ordinal(calls, index)
    seen: dict[int, int] = {}
    for i, c in enumerate(calls):
        if c.name != rc.name:
            continue
        seen[c.tid] = seen.get(c.tid, 0) + 1
        if seen[c.tid] == n:
            return i
    return index


def inject_at(calls: list[RawCall], op: Op, sig: str) -> str | None:
    """strace inject spec that delivers `sig` at the entry of the call behind `op`.

    strace counts `when=` per thread and per system call, so the ordinal is
    counted the same way; None when the op is not on the traced process's main
    thread (thread ids differ between runs)."""
    if op.raw_index < 0:
        return None
    rc = calls[op.raw_index]
    return f"{rc.name}:signal={sig}:when={_ordinal(calls, op.raw_index)}"
