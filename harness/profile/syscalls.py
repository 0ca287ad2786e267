"""One save per API under `strace -f -c -w`: wall seconds inside write, fsync and file-metadata
system calls against the save's wall time; the rest is TensorFlow's compute and Python.

strace attaches (all threads) to a child that has already built, initialised and saved once,
only for the one save call, so TensorFlow's import and first-save costs stay out of it. `-w`
sums the wall time *inside* each system call over every thread: calls that wait for work
(futex, epoll) are left out here, and parallel writers could sum to more than the wall time
(the remainder is then 0 and `overlap` says so). ptrace makes every system call slower, so the
traced save is slower than an untraced one and the system call shares are upper bounds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

from ..child import ChannelClosed, Child, ChildFailed
from ..faults import strace
from ..session import Scenario

GROUPS = {
    "write": ("write", "pwrite64", "writev", "pwritev", "pwritev2"),
    "fsync": ("fsync", "fdatasync", "sync_file_range", "sync", "syncfs"),
    "open_rename": ("open", "openat", "openat2", "creat", "close", "rename", "renameat", "renameat2",
                    "unlink", "unlinkat", "mkdir", "mkdirat", "ftruncate", "fallocate"),
    "read": ("read", "pread64", "readv", "preadv", "preadv2"),
}
REMAINDER = "tf_compute_python"

# "% time seconds usecs/call calls errors syscall"; errors may be empty
_ROW = re.compile(r"^\s*[\d.]+\s+([\d.]+)\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$")


class _SummaryTrace(strace.StraceSession):
    """strace counting time per system call (-c, wall time with -w) instead of logging calls."""

    def command(self) -> list[str]:
        return [strace.require(), "-f", "-c", "-w", "-o", self.log_path, "-p", str(self.pid)]


def parse_summary(text: str) -> dict[str, tuple[float, int]]:
    """syscall -> (seconds, calls) from an `strace -c` table (the total line left out)."""
    out = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m and m.group(3) != "total":
            out[m.group(3)] = (float(m.group(1)), int(m.group(2)))
    return out


def attribute(summary: dict[str, tuple[float, int]], wall: float) -> dict:
    """Group the system call seconds, the remainder of the wall time, and the dominant term."""
    row = {}
    for group, calls in GROUPS.items():
        row[f"{group}_seconds"] = sum(summary.get(c, (0.0, 0))[0] for c in calls)
    row["write_calls"] = sum(summary.get(c, (0.0, 0))[1] for c in GROUPS["write"])
    row["fsync_calls"] = sum(summary.get(c, (0.0, 0))[1] for c in GROUPS["fsync"])
    in_calls = sum(row[f"{g}_seconds"] for g in GROUPS)
    row["wall_seconds"] = wall
    row[f"{REMAINDER}_seconds"] = max(0.0, wall - in_calls)
    row["overlap"] = int(in_calls > wall)
    terms = {g: row[f"{g}_seconds"] for g in GROUPS}
    terms[REMAINDER] = row[f"{REMAINDER}_seconds"]
    row["dominant"] = max(terms, key=terms.get)
    return row


def skipped(scenario: Scenario, note: str) -> dict:
    return {"api": scenario.api, "n_vars": scenario.spec.n_vars, "state_bytes": scenario.spec.state_bytes,
            "note": note}


def breakdown(scenario: Scenario, scratch: str, timeout: float) -> dict:
    """One row of fileformat.SYSCALL_COLUMNS for one traced save of `scenario`; without strace, a row with a note.
    Raises RuntimeError when the child fails."""
    if strace.available() is None:
        return skipped(scenario, "strace not installed (apt-get install -y strace): no breakdown")
    workdir = tempfile.mkdtemp(prefix="strace-save-", dir=scratch)
    job = os.path.join(workdir, "job.json")
    with open(job, "w") as f:
        json.dump({"scenario": scenario.to_dict(), "workdir": os.path.join(workdir, "ckpt")}, f)
    child = Child("harness.profile.save_child", os.path.join(workdir, "child.log"), args=(job,),
                  what="strace save child")
    summary_path = os.path.join(workdir, "strace-summary.txt")
    try:
        try:
            ev = child.start(timeout)
            while ev.get("event") not in ("ready", "error"):
                ev = child.recv(timeout)
            if ev["event"] == "error":
                raise RuntimeError(ev["message"])
            tracer = _SummaryTrace(int(ev["pid"]), summary_path).start()
            try:
                child.send({"cmd": "go"})
                ev = child.recv(timeout)
            finally:
                tracer.stop()
        except (ChildFailed, ChannelClosed, TimeoutError) as e:
            raise RuntimeError(f"the strace save child failed: {e} ({child.log_tail() or 'no output'})") from None
        if ev.get("event") != "saved":
            raise RuntimeError(ev.get("message", f"unexpected message {ev}"))
        with open(summary_path) as f:
            summary = parse_summary(f.read())
        if not summary:
            raise RuntimeError("strace wrote no summary")
        row = skipped(scenario, "")
        row["state_bytes"] = ev["state_bytes"]
        row.update(attribute(summary, float(ev["seconds"])))
        return row
    finally:
        child.close()
        shutil.rmtree(workdir, ignore_errors=True)
