"""Everything about the machine and software a result depends on, collected in one place."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time

import psutil

from . import __version__
from .results import FORMAT_VERSION, atomic_write_json
from .telemetry import gpu
from .tfenv import keras_info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def filesystem_type(path: str) -> str:
    """Type of the filesystem holding `path` (longest matching mount point)."""
    path = os.path.realpath(path)
    best, fstype = "", ""
    for part in psutil.disk_partitions(all=True):
        mp = part.mountpoint
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best, fstype = mp, part.fstype
    return fstype


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return ""


def installed_tf_version() -> str:
    """TF version from package metadata (no import, so the CLI stays fast)."""
    from importlib import metadata
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly", "tensorflow-intel"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


def collect(out_dir: str | None = None, **extra) -> dict:
    vm = psutil.virtual_memory()
    meta = {
        "format_version": FORMAT_VERSION,
        "harness_version": __version__,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "tensorflow_version": installed_tf_version(),
        **keras_info(),   # the Keras tf.keras gives here and in every child (TF_USE_LEGACY_KERAS)
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": vm.total,
        "gpus": gpu.describe(),
        "git_commit": git_commit(),
        "argv": sys.argv,
        "collected_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if out_dir:
        meta["output_dir"] = os.path.abspath(out_dir)
        meta["output_filesystem"] = filesystem_type(out_dir)
    meta.update(extra)
    return meta


def finish(meta: dict, path: str, status: str, failures: list[str]) -> None:
    """Write a run's final metadata: any failure makes a run that went to its end `failed`
    (an interrupted one stays `interrupted`)."""
    meta.update(status=status if not failures or status != "complete" else "failed",
                failures=failures, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(path, meta)
