"""The disk's own limits, measured on the same directory with the same byte
count as the checkpoint: what a save or restore could at best achieve."""

from __future__ import annotations

import os
import time

import numpy as np

from .fsio import drop_cache, fsync_dir

_CHUNK = 16 * 1024**2


def _chunk() -> memoryview:
    # incompressible bytes, made once per process
    global _BUF
    try:
        return _BUF
    except NameError:
        _BUF = memoryview(np.random.default_rng(1).integers(0, 256, _CHUNK, dtype=np.uint8).tobytes())
        return _BUF


def _write(path: str, nbytes: int, durable: bool) -> float:
    buf = _chunk()
    os.sync()  # start from a clean page cache, as the checkpoint phases do
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, buf[: min(left, _CHUNK)])
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable:
        fsync_dir(os.path.dirname(path))
    return time.perf_counter() - t0


def _read(path: str) -> float:
    buf = bytearray(_CHUNK)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.perf_counter() - t0


def measure(directory: str, nbytes: int) -> dict[str, float]:
    """Seconds for raw_write, raw_write_durable, raw_read_warm, raw_read_cold of `nbytes`."""
    os.makedirs(directory, exist_ok=True)
    a = os.path.join(directory, "raw-buffered.bin")
    b = os.path.join(directory, "raw-durable.bin")
    try:
        out = {"raw_write": _write(a, nbytes, durable=False)}
        os.unlink(a)  # leave no dirty pages of ours in the way of the next measurement
        out["raw_write_durable"] = _write(b, nbytes, durable=True)
        out["raw_read_warm"] = _read(b)
        drop_cache([b])
        out["raw_read_cold"] = _read(b)
        return out
    finally:
        for p in (a, b):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
