"""Device requests: parsing (no TF) and configuring TensorFlow (before it initializes).

Accepted: cpu, gpu, gpu:N, multi-cpu:N (N logical CPU devices carved out of the
one physical CPU, so multi-device placement is exercised without a GPU).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import ResourceError, UsageError

_DEVICE_RE = re.compile(r"^(cpu|gpu|multi-cpu)(?::(\d+))?$")


@dataclass(frozen=True)
class DeviceRequest:
    kind: str          # "cpu" | "gpu" | "multi-cpu"
    index: int = 0     # gpu:N -> N
    count: int = 1     # multi-cpu:N -> N

    @property
    def label(self) -> str:
        if self.kind == "gpu":
            return f"gpu:{self.index}"
        if self.kind == "multi-cpu":
            return f"multi-cpu:{self.count}"
        return "cpu"


def parse_device(text: str) -> DeviceRequest:
    m = _DEVICE_RE.match(str(text).strip().lower())
    if not m:
        raise UsageError(f"unknown device {text!r}; use cpu, gpu, gpu:N or multi-cpu:N")
    kind, num = m.group(1), m.group(2)
    if kind == "cpu":
        if num not in (None, "0"):
            raise UsageError(f"there is one physical CPU device; for several logical ones use multi-cpu:{num}")
        return DeviceRequest("cpu")
    if kind == "gpu":
        return DeviceRequest("gpu", index=int(num or 0))
    count = int(num or 2)
    if not 2 <= count <= 64:
        raise UsageError(f"multi-cpu needs 2 to 64 logical devices, got {count}")
    return DeviceRequest("multi-cpu", count=count)


def visible_gpu_count() -> int:
    """GPUs CUDA will enumerate here, without making a CUDA context: NVML's GPUs filtered by
    CUDA_VISIBLE_DEVICES read as CUDA reads it (indices or UUIDs; the list ends at the first
    entry that names no GPU, so '0,-1,1' is one GPU and '7' on a 2-GPU machine none)."""
    from .telemetry import gpu
    uuids, migs = gpu.nvml_inventory()
    return len(gpu.visible_physical_indices(os.environ.get("CUDA_VISIBLE_DEVICES"), uuids, migs))


def check_available(req: DeviceRequest) -> None:
    """Fail early, without TF, when a GPU is asked for where none exists."""
    if req.kind == "gpu":
        n = visible_gpu_count()
        if n == 0:
            raise ResourceError(f"device {req.label} requested but no NVIDIA GPU is visible on this machine")
        if req.index >= n:
            raise ResourceError(f"device {req.label} requested but only {n} GPU(s) are visible")


def configure(text_or_req) -> list[str]:
    """Configure TF for the request and return the TF device strings to place variables on.

    Must run before TensorFlow initializes its devices (first op or list_logical_devices).
    """
    req = parse_device(text_or_req) if isinstance(text_or_req, str) else text_or_req
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for g in gpus:  # memory growth before the GPU initializes, so peaks mean something
        try:
            tf.config.experimental.set_memory_growth(g, True)
        except RuntimeError:
            pass
    if req.kind == "gpu":
        if req.index >= len(gpus):
            raise ResourceError(f"device {req.label} requested but TensorFlow sees {len(gpus)} GPU(s)")
        return [f"/device:GPU:{req.index}"]
    if req.kind == "multi-cpu":
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(req.count)])
        except RuntimeError:
            # TF already initialized in this process: fine only if it has the devices we need
            have = len(tf.config.list_logical_devices("CPU"))
            if have < req.count:
                raise ResourceError(f"{req.label} must be configured before TensorFlow initializes; "
                                    f"this process already has {have} CPU device(s)") from None
        return [f"/device:CPU:{i}" for i in range(req.count)]
    return ["/device:CPU:0"]
