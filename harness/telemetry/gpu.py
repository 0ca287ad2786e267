"""NVML (nvidia-ml-py's `pynvml`) telemetry. Without a GPU or without the
driver library every function returns empty values; none raises.

Which NVML device is TensorFlow's GPU:N? NVML numbers every GPU of the machine
in PCI order and ignores CUDA_VISIBLE_DEVICES; TensorFlow numbers the GPUs CUDA
lets it see, in CUDA's order. So `GPU:0` under CUDA_VISIBLE_DEVICES=2 is NVML
device 2, and even without the variable CUDA's default order (fastest first)
need not be NVML's. `nvml_device_for_tf_gpu` maps one to the other:

1. by PCI bus id, which both sides report (TF in the device description of
   `device_lib`, NVML in `nvmlDeviceGetHandleByPciBusId`): exact;
2. else by CUDA_VISIBLE_DEVICES (indices, GPU UUIDs or their unique prefixes,
   MIG ids): exact for UUIDs; integer entries are CUDA ordinals, equal to NVML
   indices when CUDA_DEVICE_ORDER=PCI_BUS_ID or the GPUs are all alike;
3. else the identity (same caveat as integer entries).

The mapping logic is kept in pure functions (bus id normalisation, parsing
CUDA_VISIBLE_DEVICES, choosing the index) so it is tested without a GPU.
A MIG instance maps to its parent GPU: readings are those of the whole GPU.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Mapping, Sequence

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
    """Model, memory, driver, PCI bus id and UUID of each GPU (NVML index order), for metadata.json."""
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
            entry = {"index": i, "name": _text(nv.nvmlDeviceGetName(h)),
                     "memory_total_bytes": int(nv.nvmlDeviceGetMemoryInfo(h).total),
                     "driver": driver}
        except Exception:
            continue
        entry["pci_bus_id"] = _bus_id_of(nv, h) or ""
        entry["uuid"] = _uuid_of(nv, h) or ""
        out.append(entry)
    return out


def sample(index: int = 0) -> dict:
    """One reading of NVML device `index` (a physical index: see nvml_device_for_tf_gpu):
    memory used (bytes), utilization (%), power (W). Empty dict without NVML."""
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


# -- TF logical GPU -> NVML device: pure parts ----------------------------------------------
_BUS_ID = re.compile(r"^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$")
_DESC_BUS_ID = re.compile(r"pci bus id:\s*([0-9a-fA-F]+:[0-9a-fA-F]+(?::[0-9a-fA-F]+)?\.[0-7])")


def normalize_bus_id(text) -> str | None:
    """A PCI address in NVML's own spelling ('00000000:3B:00.0'), or None when `text` is not one.

    Accepts what the two sides print: TF/CUDA '0000:3b:00.0', NVML '00000000:3B:00.0',
    and a domain-less '3b:00.0' (domain 0); bytes or str, any case."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if not isinstance(text, str):
        return None
    m = _BUS_ID.match(text.strip().lower())
    if not m:
        return None
    domain, bus, dev, fn = (int(g, 16) if g else 0 for g in m.groups())
    if dev > 0x1F:  # a PCI device number has 5 bits
        return None
    return f"{domain:08X}:{bus:02X}:{dev:02X}.{fn:X}"


def bus_id_from_desc(desc) -> str | None:
    """The normalised PCI bus id in a TF device description such as
    'device: 0, name: NVIDIA H100 80GB HBM3, pci bus id: 0000:3b:00.0, compute capability: 9.0'."""
    m = _DESC_BUS_ID.search(desc or "")
    return normalize_bus_id(m.group(1)) if m else None


def parse_visible_devices(value: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES split into its entries; None when the variable is unset.

    '' means no device at all ([]); entries keep their spelling (resolved by
    visible_physical_indices)."""
    if value is None:
        return None
    if not value.strip():
        return []
    return [part.strip() for part in value.split(",")]


def _by_uuid_prefix(prefix: str, uuids: Sequence[str]) -> int | None:
    """The one NVML index whose UUID starts with `prefix` (CUDA accepts unique prefixes)."""
    p = prefix.lower()
    hits = [i for i, u in enumerate(uuids) if u and u.lower().startswith(p)]
    return hits[0] if len(hits) == 1 else None


def _resolve_entry(entry: str, uuids: Sequence[str], mig_parents: Mapping[str, int]):
    """(NVML index, identity) of one CUDA_VISIBLE_DEVICES entry, or None when CUDA would find it invalid."""
    if re.fullmatch(r"\d+", entry):
        n = int(entry)
        return (n, f"index {n}") if n < len(uuids) else None
    low = entry.lower()
    if low.startswith("gpu-") and len(low) > 4:
        i = _by_uuid_prefix(entry, uuids)
        return None if i is None else (i, f"index {i}")
    if low.startswith("mig-gpu-"):  # old MIG form: MIG-GPU-<gpu uuid>/<gpu instance>/<compute instance>
        parent, _, rest = entry[4:].partition("/")
        i = _by_uuid_prefix(parent, uuids)
        return None if i is None or not rest else (i, low)
    if low.startswith("mig-") and len(low) > 4:  # MIG device UUID (driver R470 and later)
        matched = [mig for mig in mig_parents if mig.lower().startswith(low)]
        return (mig_parents[matched[0]], matched[0].lower()) if len(matched) == 1 else None
    return None


def visible_physical_indices(cvd: str | None, uuids: Sequence[str],
                             mig_parents: Mapping[str, int] | None = None) -> list[int]:
    """NVML indices of the GPUs CUDA enumerates, in CUDA's order.

    `cvd`: the value of CUDA_VISIBLE_DEVICES (None: unset, every GPU in NVML order);
    `uuids[i]`: the UUID ('GPU-...') of NVML device i; `mig_parents`: MIG device UUID
    ('MIG-...') -> NVML index of its GPU. As CUDA does, the list ends at the first entry
    that names no device (so '0,-1,1' is just GPU 0); a repeated device counts as such.
    """
    entries = parse_visible_devices(cvd)
    if entries is None:
        return list(range(len(uuids)))
    out, seen = [], set()
    for entry in entries:
        found = _resolve_entry(entry, uuids, mig_parents or {})
        if found is None or found[1] in seen:
            break
        seen.add(found[1])
        out.append(found[0])
    return out


def choose_nvml_index(tf_index: int, *, bus_index: int | None, cvd: str | None, uuids: Sequence[str],
                      mig_parents: Mapping[str, int] | None = None) -> tuple[int | None, str]:
    """(NVML index, how it was found) for TF's GPU:`tf_index`; (None, "none") when nothing fits.

    `bus_index`: the NVML index found by the GPU's PCI bus id, when known; it wins."""
    if bus_index is not None:
        return bus_index, "pci-bus-id"
    visible = visible_physical_indices(cvd, uuids, mig_parents)
    if 0 <= tf_index < len(visible):
        return visible[tf_index], ("identity" if cvd is None else "cuda-visible-devices")
    return None, "none"


# -- TF logical GPU -> NVML device: NVML and TF side ----------------------------------------
def _bus_id_of(nv, handle) -> str | None:
    try:
        return normalize_bus_id(nv.nvmlDeviceGetPciInfo(handle).busId)
    except Exception:
        return None


def _uuid_of(nv, handle) -> str | None:
    try:
        return _text(nv.nvmlDeviceGetUUID(handle))
    except Exception:
        return None


def nvml_index_by_bus_id(bus_id) -> int | None:
    """NVML index of the GPU at PCI address `bus_id` (any spelling normalize_bus_id takes)."""
    nv = _nvml()
    norm = normalize_bus_id(bus_id)
    if nv is None or norm is None:
        return None
    try:
        return int(nv.nvmlDeviceGetIndex(nv.nvmlDeviceGetHandleByPciBusId(norm.encode())))
    except Exception:
        return None


def nvml_inventory() -> tuple[list[str], dict[str, int]]:
    """(UUID of each NVML device by index, MIG device UUID -> NVML index of its GPU)."""
    nv = _nvml()
    uuids: list[str] = []
    migs: dict[str, int] = {}
    if nv is None:
        return uuids, migs
    for i in range(device_count()):
        try:
            h = nv.nvmlDeviceGetHandleByIndex(i)
        except Exception:
            uuids.append("")
            continue
        uuids.append(_uuid_of(nv, h) or "")
        try:
            if nv.nvmlDeviceGetMigMode(h)[0] != 1:
                continue
            slots = int(nv.nvmlDeviceGetMaxMigDeviceCount(h))
        except Exception:  # not MIG capable
            continue
        for slot in range(slots):
            try:
                mig = _uuid_of(nv, nv.nvmlDeviceGetMigDeviceHandleByIndex(h, slot))
            except Exception:  # empty slot
                continue
            if mig:
                migs[mig] = i
    return uuids, migs


def tf_gpu_bus_id(tf_index: int) -> str | None:
    """PCI bus id (normalised) of TensorFlow's GPU:`tf_index`, or None.

    `tf.config.experimental.get_device_details` holds only the name and compute capability,
    so the id comes from the device description of `device_lib`. That call builds device
    objects of its own: it is given allow_growth so that, if it is the first to touch a GPU,
    it does not reserve the GPU's memory. Call it after devices.configure()."""
    try:
        import tensorflow as tf
        from tensorflow.python.client import device_lib

        config = tf.compat.v1.ConfigProto()
        config.gpu_options.allow_growth = True
        for dev in device_lib.list_local_devices(config):
            if dev.device_type == "GPU" and dev.name.rsplit("/", 1)[-1].upper() == f"DEVICE:GPU:{tf_index}":
                return bus_id_from_desc(dev.physical_device_desc)
    except Exception:
        return None
    return None


@dataclass(frozen=True)
class NvmlDevice:
    """The NVML device behind a TF GPU. index None: no NVML device could be matched."""

    index: int | None
    how: str              # "pci-bus-id" | "cuda-visible-devices" | "identity" | "none"
    bus_id: str = ""      # NVML's PCI bus id of that device

    @property
    def label(self) -> str:
        if self.index is None:
            return ""
        return " ".join(p for p in (f"nvml:{self.index}", self.bus_id, f"({self.how})") if p)


_FROM_ENV = object()


def nvml_device_for_tf_gpu(tf_index: int, bus_id: str | None = None, cvd=_FROM_ENV) -> NvmlDevice:
    """The NVML device of TF's GPU:`tf_index`.

    `bus_id`: the GPU's PCI bus id if the caller has it (tf_gpu_bus_id reads it in a process
    with TensorFlow); `cvd`: CUDA_VISIBLE_DEVICES (default: this process's environment)."""
    if cvd is _FROM_ENV:
        cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    nv = _nvml()
    if nv is None:
        return NvmlDevice(None, "none")
    uuids, migs = nvml_inventory()
    index, how = choose_nvml_index(tf_index, bus_index=nvml_index_by_bus_id(bus_id) if bus_id else None,
                                   cvd=cvd, uuids=uuids, mig_parents=migs)
    found_bus = ""
    if index is not None:
        try:
            found_bus = _bus_id_of(nv, nv.nvmlDeviceGetHandleByIndex(index)) or ""
        except Exception:
            pass
    return NvmlDevice(index, how, found_bus)


# -- TF's per-phase GPU memory peak ---------------------------------------------------------
def reset_tf_peak(tf_gpu: str) -> bool:
    """Reset TF's memory peak of device `tf_gpu` (e.g. "GPU:0"): True when done.

    False when reset_memory_stats fails (e.g. an allocator without resettable stats, or no such
    device): the peak read after the phase is then the process's running peak, not the phase's."""
    try:
        import tensorflow as tf
        tf.config.experimental.reset_memory_stats(tf_gpu)
        return True
    except Exception:
        return False


def tf_peak_bytes(tf_gpu: str) -> int | None:
    """TF's memory peak of device `tf_gpu` since its last reset (or since start), None if unreadable."""
    try:
        import tensorflow as tf
        return int(tf.config.experimental.get_memory_info(tf_gpu)["peak"])
    except Exception:
        return None
