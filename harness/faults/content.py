"""File contents of crash states without holding them in memory.

A crash state of a 2 GiB checkpoint is 2 GiB of files; a campaign derives
thousands of them. Small files (indexes, `checkpoint`, JSON) are kept as
`bytes`. A large file, and any range of one, is a `Content`: a list of extents, each a range of a
source file on disk, a run of zeros, or a short literal piece, so deriving a
state (a prefix of a write, a file cut in half, a zeroed file) costs a few
tuples, not a copy.

Sources are files the campaign owns and never writes after they are taken as
sources: the recorded save's directory once the save ended, the stash of the
directory before it, a finished kill trial's directory, a case folder.

`write_content` puts a content at a path: a hard link when it is one whole
source file, else a new file assembled with copy_file_range (a reflink where
the file system has one) and holes for the zero runs.
"""

from __future__ import annotations

import hashlib
import os

SMALL_FILE = 1 << 20   # contents up to this size are plain bytes


class Content:
    """Immutable; enough of `bytes`'s interface (len, slicing, +, ==) for the crash models.

    An extent is (source, offset, length): source a path (a range of that file), None
    (zeros) or bytes (a literal piece)."""

    __slots__ = ("extents", "size", "_id")

    def __init__(self, extents):
        self.extents = tuple(extents)
        self.size = sum(e[2] for e in self.extents)
        self._id = None

    @classmethod
    def of_file(cls, path: str, size: int | None = None) -> "bytes | Content":
        size = os.path.getsize(path) if size is None else size
        return make([(path, 0, size)])

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError("Content supports slices only")
        start, stop, step = key.indices(self.size)
        if step != 1:
            raise ValueError("Content slices take no step")
        out, pos = [], 0
        for src, off, length in self.extents:
            lo, hi = max(start, pos), min(stop, pos + length)
            if lo < hi:
                out.append((src, off + lo - pos, hi - lo))
            pos += length
            if pos >= stop:
                break
        return make(out)

    def __add__(self, other):
        return make(list(self.extents) + _extents(other))

    def __radd__(self, other):
        return make(_extents(other) + list(self.extents))

    def __eq__(self, other):
        if isinstance(other, Content):
            return self.size == other.size and self.identity() == other.identity()
        if isinstance(other, (bytes, bytearray)):
            return self.size == len(other) and self.read() == bytes(other)
        return NotImplemented

    def __hash__(self):
        return hash(self.identity())

    def __repr__(self):
        return f"Content({self.size} bytes in {len(self.extents)} extent(s))"

    def identity(self) -> str:
        """Equal identities, equal bytes. The converse may fail (the same bytes from two
        different sources) and costs only a check that could have been skipped."""
        if self._id is None:
            h = hashlib.blake2b(digest_size=16)
            for src, off, length in self.extents:
                if src is None:
                    h.update(b"Z%d;" % length)
                elif isinstance(src, bytes):
                    h.update(b"L" + hashlib.blake2b(src[off:off + length], digest_size=16).digest())
                else:
                    h.update(b"S" + source_id(src).encode() + b"@%d+%d;" % (off, length))
            self._id = h.hexdigest()
        return self._id

    def read(self) -> bytes:
        """All the bytes (for small results and comparisons; never for a whole large file)."""
        return b"".join(_read_extent(e) for e in self.extents)

    def all_zeros(self) -> bool:
        return all(src is None for src, _off, _length in self.extents)

    def whole_source(self) -> str | None:
        """The source path when this content is exactly one whole source file."""
        if len(self.extents) == 1:
            src, off, length = self.extents[0]
            if isinstance(src, str) and off == 0 and os.path.getsize(src) == length:
                return src
        return None


def _extents(data) -> list:
    if isinstance(data, Content):
        return list(data.extents)
    data = bytes(data)
    return [(data, 0, len(data))] if data else []


def make(extents) -> "bytes | Content":
    """Normalized: empty extents dropped, neighbours merged; small results with no range of a
    file in them as bytes."""
    out: list = []
    for src, off, length in extents:
        if length <= 0:
            continue
        if out:
            psrc, poff, plen = out[-1]
            if src is None and psrc is None:
                out[-1] = (None, 0, plen + length)
                continue
            if isinstance(src, str) and src == psrc and poff + plen == off:
                out[-1] = (src, poff, plen + length)
                continue
            if isinstance(src, bytes) and isinstance(psrc, bytes):
                joined = psrc[poff:poff + plen] + src[off:off + length]
                out[-1] = (joined, 0, len(joined))
                continue
        out.append((src, off, length))
    size = sum(e[2] for e in out)
    if size <= SMALL_FILE and not any(isinstance(e[0], str) for e in out):
        return b"".join(_read_extent(e) for e in out)
    return Content(out)   # pieces of files stay references: joined again, they are the file


def zeros(size: int) -> "bytes | Content":
    return make([(None, 0, size)])


def _read_extent(extent) -> bytes:
    src, off, length = extent
    if src is None:
        return bytes(length)
    if isinstance(src, bytes):
        return src[off:off + length]
    with open(src, "rb") as f:
        f.seek(off)
        data = f.read(length)
    return data + bytes(length - len(data))   # a source never shrinks; be safe if it did


_SOURCE_IDS: dict[tuple, str] = {}


def source_id(path: str) -> str:
    """Digest of a source file's bytes, read once per file version (path, inode, size, mtime;
    not ctime, which every hard link to the file changes)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _SOURCE_IDS.get(key)
    if hit is None:
        with open(path, "rb") as f:
            hit = hashlib.file_digest(f, "sha1").hexdigest()
        if len(_SOURCE_IDS) > 4096:
            _SOURCE_IDS.clear()
        _SOURCE_IDS[key] = hit
    return hit


def write_content(data, path: str, link: bool = False) -> None:
    """Create `path` holding `data` (bytes or Content). `link`: a whole source file may be
    hard-linked instead of copied (for readers only: the checker, a case folder)."""
    if not isinstance(data, Content):
        with open(path, "wb") as f:
            f.write(data)
        return
    whole = data.whole_source()
    if whole is not None and link:
        try:
            os.link(whole, path)
            return
        except OSError:   # another file system, or none with hard links
            pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pos = 0
        for src, off, length in data.extents:
            if isinstance(src, str):
                _copy_range(src, off, length, fd, pos)
            elif isinstance(src, bytes):
                os.pwrite(fd, src[off:off + length], pos)
            pos += length   # zeros: a hole
        os.ftruncate(fd, data.size)
    finally:
        os.close(fd)


def _copy_range(src: str, off: int, length: int, dst_fd: int, dst_off: int) -> None:
    with open(src, "rb") as f:
        done = 0
        while done < length:
            try:
                n = os.copy_file_range(f.fileno(), dst_fd, length - done, off + done, dst_off + done)
            except OSError:
                n = 0
            if n <= 0:   # not supported here, or the source ended: plain reads
                f.seek(off + done)
                while done < length:
                    chunk = f.read(min(8 << 20, length - done))
                    if not chunk:
                        os.pwrite(dst_fd, bytes(length - done), dst_off + done)   # never shorter than said
                        return
                    os.pwrite(dst_fd, chunk, dst_off + done)
                    done += len(chunk)
                return
            done += n
