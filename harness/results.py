"""The results format: columns, versions, atomic writers.

History of FORMAT_VERSION is written down in docs/results-format.md.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from .errors import UsageError

FORMAT_VERSION = 2
# the results format versions this code reads (see History in docs/results-format.md)
READABLE_FORMAT_VERSIONS = (1, 2)

# phases.csv: one row per scenario x phase x repeat
PHASE_COLUMNS = [
    "run_id", "scenario", "api", "device", "n_vars", "state_bytes", "shape_mix",
    "optimizer", "phase", "repeat", "seconds", "gbps", "roofline_fraction", "suspect",
    "extra_seconds", "peak_rss_bytes", "ru_maxrss_bytes", "io_read_bytes",
    "io_write_bytes", "cpu_seconds", "gpu_peak_bytes", "gpu_peak_kind", "nvml_mem_used_bytes",
    "nvml_util_pct", "nvml_power_w", "outcome", "detail",
    "peak_rss_source",  # "kernel" (VmHWM reset per phase) or "sampled" (5 ms polls)
    "task",   # tf.distribute task (worker:1, chief:0; `cluster`: the cross-task verdict); empty for --strategy none
]

# phases in pipeline order; "raw_*" rows are the disk roofline measured on the
# same directory with the same byte count
PHASES = ["build", "init", "save_return", "save", "save_durable",
          "restore_warm", "restore_cold", "verify"]
ROOFLINE_PHASES = ["raw_write", "raw_write_durable", "raw_read_warm", "raw_read_cold"]
# which roofline each I/O phase is compared with
ROOFLINE_FOR = {
    "save_return": "raw_write",
    "save": "raw_write",
    "save_durable": "raw_write_durable",
    "restore_warm": "raw_read_warm",
    "restore_cold": "raw_read_cold",
}


def check_version(found, accepted, what: str, path, hint: str = "") -> int:
    """`found` if it is one of the `accepted` versions, else a UsageError of one line naming `path`.

    `what` names the version field (e.g. "format_version"); `hint` is added to the message (what
    to do about an old or a new file). Versions are JSON integers: a missing field, a string or a
    bool is refused like an unknown number, since guessing what it meant is what this prevents.
    """
    readable = ", ".join(str(v) for v in accepted)
    if found is None:
        problem = f"no {what}"
    elif isinstance(found, bool) or not isinstance(found, int):
        problem = f"{what} {found!r} is not an integer"
    elif found in accepted:
        return found
    else:
        newer = " (a newer writer?)" if found > max(accepted) else ""
        problem = f"unknown {what} {found}{newer}"
    raise UsageError(f"{path}: {problem}; this ckpt-harness reads {what} {readable}"
                     + (f"; {hint}" if hint else ""))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """tmp in the same dir + fsync + rename + fsync(dir): readers see old or new, never half.

    durable=False skips both fsyncs (still atomic for readers, not across a power loss): for
    files written next to a checkpoint under test, where an fsync would flush the checkpoint too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if not durable:
        return
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_text(path, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_json(path, obj, durable: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", durable)


def atomic_write_csv(path, rows: list[dict], columns: list[str]) -> None:
    """Write rows (dicts) with `columns` first, then any extra keys, sorted."""
    extra = sorted({k for r in rows for k in r} - set(columns))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns + extra, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def new_run_id(kind: str = "run") -> str:
    import datetime
    import secrets
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{kind}-{secrets.token_hex(2)}"
