"""NVML (nvidia-ml-py's `pynvml`) telemetry. Without a GPU or without the
driver library every function returns empty values; none raises."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_state = {"init": None}


def _nvml():
    """The initialised pynvml module, or None when NVML is unavailable."""
    with _lock:
        if _state["init"] is None:
            try:
                import pynvml
                pynvml.nvmlInit()
                _state["init"] = pynvml
            except Exception:  # no package, no driver, no GPU: all mean "no NVML"
                _state["init"] = False
        return _state["init"] or None


def device_count() -> int:
    nv = _nvml()
    if nv is None:
        return 0
    try:
        return int(nv.nvmlDeviceGetCount())
    except Exception:
        return 0


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def describe() -> list[dict]:
    """Model, memory and driver of each GPU, for metadata.json."""
    nv = _nvml()
    if nv is None:
        return []
    out = []
    try:
        driver = _text(nv.nvmlSystemGetDriverVersion())
    except Exception:
        driver = ""
    for i in range(device_count()):
        try:
            h = nv.nvmlDeviceGetHandleByIndex(i)
            out.append({"index": i, "name": _text(nv.nvmlDeviceGetName(h)),
                        "memory_total_bytes": int(nv.nvmlDeviceGetMemoryInfo(h).total),
                        "driver": driver})
        except Exception:
            continue
    return out


def sample(index: int = 0) -> dict:
    """One reading: memory used (bytes), utilization (%), power (W). Empty dict without NVML."""
    nv = _nvml()
    if nv is None:
        return {}
    out = {}
    try:
        h = nv.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        return {}
    for key, fn in (("mem_used_bytes", lambda: int(nv.nvmlDeviceGetMemoryInfo(h).used)),
                    ("util_pct", lambda: float(nv.nvmlDeviceGetUtilizationRates(h).gpu)),
                    ("power_w", lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0)):
        try:
            out[key] = fn()
        except Exception:
            pass
    return out
