"""Crash states from a recorded save, in the manner of ALICE (OSDI'14).

An in-memory model of the checkpoint directory replays the save's operations
(strace.Op) on top of the directory as it stood before the save (saves
1..k-1 complete). Two crash models:

process  the process dies and the kernel keeps everything it was given: the
         directory after every prefix of the operations, plus points inside
         large writes (a write cut short by a fatal signal).
power    the machine loses power: namespace operations (create, rename,
         unlink, mkdir, rmdir) are kept in order, as a journaling file system
         commits them, but file data that was never fsynced may not have
         reached the disk. At every crash point after a namespace operation,
         each un-synced file is in turn lost (empty), zeroed (its size kept,
         its blocks never written) or cut to half; and all un-synced files lost
         at once. Files of saves 1..k-1 count as durable: the kernel writes
         dirty data back within seconds, long before the next save in practice.
The process states are part of the power model too.

Written data comes from the file as it stood after the save (TF writes files
sequentially, once), as a reference to it on disk (content.py), unless strace
kept the whole buffer and it differs there (a header rewritten later); what
neither covers is zero-filled and counted in `uncaptured`.

States inside one run of writes to one file differ only in how much of that
file landed: they carry the same `group`, and the campaign judges a sample of
each group (the first and last writes' states and one between) and, only
when those agree, gives the rest their verdict.
"""

from __future__ import annotations

from .content import zeros
from .state import CrashState, DirImage, normalize_name
from .strace import Op

PAGE = 4096
NAMESPACE_CALLS = ("rename", "unlink", "mkdir", "rmdir")
MODELS = ("process", "power")


def _creates(op: Op) -> bool:
    return op.call == "open" and ("O_CREAT" in op.flags or "O_TRUNC" in op.flags)


def _writable(flags: str) -> bool:
    return "O_WRONLY" in flags or "O_RDWR" in flags


class FsModel:
    """Names -> inodes -> bytes, with open fds, file positions and un-synced inodes."""

    def __init__(self, base: DirImage):
        self.names: dict[str, int] = {}
        self.dirs: set[str] = set(base.dirs)
        self.content: dict[int, bytes] = {}
        self.fds: dict[int, int] = {}
        self.pos: dict[int, int] = {}
        self.dirty: set[int] = set()   # written during the save, not fsynced since
        self._next = 0
        for rel, data in base.files.items():
            self.names[rel] = self._new(data)

    def clone(self) -> "FsModel":
        other = FsModel(DirImage())
        other.names, other.dirs, other.content = dict(self.names), set(self.dirs), dict(self.content)
        other.fds, other.pos, other.dirty, other._next = dict(self.fds), dict(self.pos), set(self.dirty), self._next
        return other

    def _new(self, data: bytes = b"") -> int:
        self._next += 1
        self.content[self._next] = data
        return self._next

    def _inode(self, op: Op) -> int | None:
        if op.fd is not None and op.fd in self.fds:
            return self.fds[op.fd]
        return self.names.get(op.path)

    def apply(self, op: Op, source=None, limit: int | None = None) -> None:
        """Apply one operation; `limit` applies only the first bytes of a write."""
        c = op.call
        if c == "open":
            ino = self.names.get(op.path)
            if ino is None:
                if "O_CREAT" not in op.flags:
                    return
                ino = self.names[op.path] = self._new()
                self.dirty.add(ino)
            elif "O_TRUNC" in op.flags and _writable(op.flags):
                self.content[ino] = b""
                self.dirty.add(ino)
            if op.fd is not None:
                self.fds[op.fd] = ino
                self.pos[op.fd] = len(self.content[ino]) if "O_APPEND" in op.flags else 0
        elif c == "write":
            ino = self._inode(op)
            if ino is None:
                return
            off = op.offset if op.offset is not None else self.pos.get(op.fd, len(self.content[ino]))
            size = op.size if limit is None else min(limit, op.size)
            data = source(op, ino, off)[:size] if source else zeros(size)
            old = self.content[ino]
            if len(old) < off:
                old = old + zeros(off - len(old))
            self.content[ino] = old[:off] + data + old[off + size:]
            if op.offset is None and op.fd is not None:
                self.pos[op.fd] = off + size
            self.dirty.add(ino)
        elif c == "lseek":
            if op.fd is not None and op.offset is not None:
                self.pos[op.fd] = op.offset
        elif c == "truncate":
            ino = self._inode(op)
            if ino is not None:
                old = self.content[ino]
                self.content[ino] = old[:op.size] + zeros(max(0, op.size - len(old)))
                self.dirty.add(ino)
        elif c == "rename":
            self._rename(op.path, op.dest)
        elif c == "unlink":
            self.names.pop(op.path, None)
        elif c == "mkdir":
            self.dirs.add(op.path)
        elif c == "rmdir":
            self.dirs.discard(op.path)
        elif c == "fsync":
            ino = self._inode(op)
            if ino is not None:
                self.dirty.discard(ino)
        elif c == "sync":
            self.dirty.clear()
        elif c == "close":
            if op.fd is not None:
                self.fds.pop(op.fd, None)
                self.pos.pop(op.fd, None)

    def _rename(self, src: str, dst: str) -> None:
        if src in self.names:
            self.names[dst] = self.names.pop(src)
            return
        if src in self.dirs:  # a directory: move everything under it
            for d in [d for d in self.dirs if d == src or d.startswith(src + "/")]:
                self.dirs.discard(d)
                self.dirs.add(dst + d[len(src):])
            for n in [n for n in self.names if n.startswith(src + "/")]:
                self.names[dst + n[len(src):]] = self.names.pop(n)

    def image(self, override: dict[int, bytes] | None = None) -> DirImage:
        override = override or {}
        files = {n: override.get(i, self.content[i]) for n, i in self.names.items()}
        return DirImage(files, {d for d in self.dirs if d})

    def dirty_names(self) -> list[tuple[str, int]]:
        return sorted((n, i) for n, i in self.names.items() if i in self.dirty)


class Replay:
    """Replays a recorded save; knows where each written byte comes from."""

    def __init__(self, base: DirImage, ops: list[Op], final: DirImage | None = None):
        self.base, self.ops, self.final = base, ops, final or DirImage()
        self.uncaptured = 0
        self._final_name = self._final_names()

    def _final_names(self) -> dict[int, str]:
        m = FsModel(self.base)
        for op in self.ops:
            m.apply(op)
        return {i: n for n, i in m.names.items()}

    def source(self, op: Op, ino: int, off: int):
        captured = op.data is not None and len(op.data) == op.size
        name = self._final_name.get(ino)
        data = self.final.files.get(name, b"")[off:off + op.size] if name else b""
        if len(data) == op.size and (not captured or data == op.data):
            return data   # a reference into the saved file when large
        if captured:
            return op.data
        self.uncaptured += 1
        return zeros(op.size)

    def process_states(self, partial: bool = True):
        """(fault, kind, image, ops applied) for the directory before the save, after each
        prefix of operations that changes it, and inside large writes."""
        m = FsModel(self.base)
        yield CrashState("before the save's first operation", "prefix", m.image(), [])
        group, run_ino = "", None
        for i, op in enumerate(self.ops):
            if op.call == "write":
                ino = m._inode(op)
                if ino != run_ino or not group:
                    group, run_ino = f"writes to {normalize_name(op.path)} from op {i}", ino
            elif op.call not in ("close", "lseek", "fsync", "sync"):
                group, run_ino = "", None   # the names changed: a run of writes ends
            if partial and op.call == "write" and op.size and op.size > PAGE:
                for cut in partial_points(op.size):
                    trial = m.clone()
                    trial.apply(op, self.source, limit=cut)
                    yield CrashState(f"inside op {i}: {op.describe()}, {cut} of {op.size} bytes written",
                                     "partial-write", trial.image(), self.ops[:i + 1], group=group)
            m.apply(op, self.source)
            if op.call in ("close", "lseek", "fsync", "sync"):
                continue  # the directory did not change: same state as before
            yield CrashState(f"after op {i}: {op.describe()}", "prefix", m.image(), self.ops[:i + 1],
                             group=group if op.call == "write" else "")

    def power_states(self):
        """Process states, plus un-synced data lost at every namespace step."""
        yield from self.process_states()
        m = FsModel(self.base)
        for i, op in enumerate(self.ops):
            m.apply(op, self.source)
            last = i == len(self.ops) - 1
            if op.call not in NAMESPACE_CALLS and not _creates(op) and not last:
                continue
            dirty = m.dirty_names()
            where = f"after op {i}: {op.describe()}"
            for name, ino in dirty:
                size = len(m.content[ino])
                variants = [("lost", b""), ("zeroed", zeros(size))]
                half = (size // 2) // PAGE * PAGE
                if 0 < half < size:
                    variants.append((f"cut to {half}B", m.content[ino][:half]))
                for label, data in variants:
                    kind = "lost-data" if label == "lost" else ("zeroed-data" if label == "zeroed" else "cut-data")
                    yield CrashState(f"power loss {where}; {normalize_name(name)} {label} (never fsynced)", kind,
                                   m.image({ino: data}), self.ops[:i + 1])
            if len(dirty) > 1:
                yield CrashState(f"power loss {where}; all {len(dirty)} un-synced files lost", "lost-data",
                               m.image({ino: b"" for _, ino in dirty}), self.ops[:i + 1])

    def states(self, model: str):
        if model not in MODELS:
            raise ValueError(f"unknown crash model {model!r}")
        return self.process_states() if model == "process" else self.power_states()


def partial_points(size: int) -> list[int]:
    """Byte counts inside a write of `size` at which a crash is modelled: one page,
    half (page-aligned), and one page short of the end."""
    pts = {PAGE, (size // 2) // PAGE * PAGE, size - PAGE}
    return sorted(p for p in pts if 0 < p < size)
