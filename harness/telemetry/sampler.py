"""Per-phase resource telemetry for the measured process.

Each phase reads its peaks between `start()` and `stop()`, plus the process's
I/O bytes, CPU time and ru_maxrss.

Peak RSS comes from the kernel where it can: `start()` resets the process's
high-water mark (writing 5 to /proc/self/clear_refs, Linux 4.0+) and `stop()`
reads VmHWM, an exact peak at no cost while the phase runs. A polling thread
runs only for NVML (GPU) readings, or for RSS where the reset is refused: on a
2-core machine a thread waking every 5 ms slowed a Python-bound phase (assigning
20,000 variables) by about 20 %, by taking the interpreter lock from it. The
high-water mark is per process: one Sampler at a time in a process. The reset
also resets what getrusage reports as ru_maxrss, so the Sampler keeps the
process's peak itself (folding in the kernel's mark before each reset) and
reports that as `ru_maxrss_bytes`.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from dataclasses import dataclass

import psutil

from . import gpu

_INTERVAL_S = 0.005
_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process; False where that is not allowed."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def kernel_peak_rss() -> int | None:
    """VmHWM (the kernel's peak RSS since start or the last reset) in bytes, or None."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return 1024 * int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass
class PhaseTelemetry:
    peak_rss_bytes: int
    ru_maxrss_bytes: int
    io_read_bytes: int | None
    io_write_bytes: int | None
    cpu_seconds: float
    peak_rss_source: str = "kernel"  # "kernel" (VmHWM, exact) or "sampled" (every 5 ms)
    nvml_mem_used_bytes: int | None = None
    nvml_util_pct: float | None = None
    nvml_power_w: float | None = None
    gpu_peak_bytes: int | None = None
    gpu_peak_kind: str | None = None  # "phase", or "running" when TF could not reset its peak

    def as_row(self) -> dict:
        return dict(self.__dict__)


def _ru_maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024  # Linux reports KiB


class Sampler:
    def __init__(self, gpu_index: int | None = None, tf_gpu: str | None = None):
        self.proc = psutil.Process()
        self.gpu_index = gpu_index if gpu_index is not None and gpu.device_count() > gpu_index else None
        self.tf_gpu = tf_gpu  # "GPU:0" for tf.config.experimental memory stats
        self._peak_reset = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._reset_peaks()
        # the kernel's mark when it can be reset (and read); else RSS joins the thread's polls
        self._process_peak = _ru_maxrss_bytes()  # before the first reset: the whole history
        self.kernel_rss = reset_peak_rss() and kernel_peak_rss() is not None

    def _reset_peaks(self):
        self._peak_rss = 0
        self._nvml = {"mem_used_bytes": None, "util_pct": None, "power_w": None}

    def _poll(self):
        rss = 0 if self.kernel_rss else self.proc.memory_info().rss
        reading = gpu.sample(self.gpu_index) if self.gpu_index is not None else {}
        with self._lock:
            self._peak_rss = max(self._peak_rss, rss)
            for k, v in reading.items():
                cur = self._nvml.get(k)
                self._nvml[k] = v if cur is None else max(cur, v)

    def _run(self):
        while not self._stop.wait(_INTERVAL_S):
            try:
                self._poll()
            except psutil.Error:
                return

    def __enter__(self):
        if self.gpu_index is not None or not self.kernel_rss:
            self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=1)

    def _io(self):
        try:
            io = self.proc.io_counters()
            return io.read_bytes, io.write_bytes
        except (psutil.Error, AttributeError):
            return None, None

    def start(self):
        """Begin a phase: reset peaks and remember the counters."""
        with self._lock:
            self._reset_peaks()
        if self.kernel_rss:
            # what happened since the last phase still counts in the process's peak
            self._process_peak = max(self._process_peak, kernel_peak_rss() or 0)
            reset_peak_rss()
        self._poll()
        self._io0 = self._io()
        # the process's CPU clock (all threads, ns): psutil's cpu_times() counts 10 ms ticks,
        # too coarse for a 40 ms save
        self._cpu0 = time.process_time()
        self._peak_reset = gpu.reset_tf_peak(self.tf_gpu) if self.tf_gpu else False

    def stop(self) -> PhaseTelemetry:
        self._poll()
        io1 = self._io()
        gpu_peak = gpu.tf_peak_bytes(self.tf_gpu) if self.tf_gpu else None
        # a peak TF could not reset is the process's running peak: say so rather than pass it off
        peak_kind = None if gpu_peak is None else ("phase" if self._peak_reset else "running")
        with self._lock:
            nv = dict(self._nvml)
            peak = self._peak_rss
        if self.kernel_rss:
            peak = kernel_peak_rss() or peak
        self._process_peak = max(self._process_peak, peak, _ru_maxrss_bytes())
        delta = lambda a, b: (b - a) if a is not None and b is not None else None
        return PhaseTelemetry(
            peak_rss_bytes=peak,
            ru_maxrss_bytes=self._process_peak,
            io_read_bytes=delta(self._io0[0], io1[0]),
            io_write_bytes=delta(self._io0[1], io1[1]),
            cpu_seconds=time.process_time() - self._cpu0,
            peak_rss_source="kernel" if self.kernel_rss else "sampled",
            nvml_mem_used_bytes=nv["mem_used_bytes"],
            nvml_util_pct=nv["util_pct"],
            nvml_power_w=nv["power_w"],
            gpu_peak_bytes=gpu_peak,
            gpu_peak_kind=peak_kind,
        )
