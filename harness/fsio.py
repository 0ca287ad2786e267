"""File-system primitives: durability, page-cache eviction, tree walking.

Used to turn a buffered save into a durable one and a warm restore into a
cold one without root: write back (fsync), then POSIX_FADV_DONTNEED.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def files_under(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    if p.is_file():
        return [str(p)]
    return sorted(str(f) for f in p.rglob("*") if f.is_file())


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_paths(paths: list[str]) -> None:
    """fsync every file, then every directory holding one (names become durable too)."""
    dirs = set()
    for p in paths:
        fsync_file(p)
        dirs.add(os.path.dirname(os.path.abspath(p)))
    for d in sorted(dirs):
        fsync_dir(d)


def drop_cache(paths: list[str]) -> None:
    """Evict files from the page cache. Dirty pages are not dropped, so write back first."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def ensure_writable_dir(path: str | os.PathLike, what: str) -> str:
    """Create `path` if needed and prove we can write there, before any work starts."""
    from .errors import ResourceError

    path = os.path.abspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ResourceError(f"cannot write to {what} {path}: {e.strerror or e}") from None
    return path
