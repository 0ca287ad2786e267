"""TensorFlow's GPU:N -> the NVML device to sample (harness/telemetry/gpu.py).

NVML numbers all GPUs in PCI order and ignores CUDA_VISIBLE_DEVICES; TF numbers the GPUs CUDA
shows it. The mapping logic is pure and tested here without a GPU; the NVML and TF calls around
it run for real (on a machine without a GPU they must answer "nothing", not raise), and the
`gpu`-marked test checks the whole chain where TensorFlow sees a GPU.
"""

from __future__ import annotations

import pytest

from harness.telemetry import gpu

# three GPUs as NVML lists them (index = position)
UUIDS = ["GPU-8932f937-d72c-4106-c12f-20bd9faed9f6",
         "GPU-04fff293-9845-6ff7-1b98-6de072be462b",
         "GPU-04ffa000-0000-0000-0000-000000000000"]
MIGS = {"MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f": 2, "MIG-c6d4aaaa-0000-0000-0000-000000000000": 2}


# -- PCI bus ids ----------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "0000:3b:00.0",        # TF's device description, CUDA's cuDeviceGetPCIBusId
    "00000000:3B:00.0",    # NVML's busId
    "0000:3B:00.0",        # NVML's busIdLegacy
    "3b:00.0",             # no domain: domain 0
    b"00000000:3B:00.0",   # bytes, as older pynvml returns
    "  0000:3b:00.0\n",
])
def test_bus_id_spellings_normalise_to_nvmls(text):
    assert gpu.normalize_bus_id(text) == "00000000:3B:00.0"


def test_bus_ids_that_differ_stay_different():
    assert gpu.normalize_bus_id("0001:3b:00.0") == "00000001:3B:00.0"
    assert gpu.normalize_bus_id("0000:3b:00.1") != gpu.normalize_bus_id("0000:3b:00.0")
    assert gpu.normalize_bus_id("0000:b3:00.0") != gpu.normalize_bus_id("0000:3b:00.0")


@pytest.mark.parametrize("text", ["", "GPU:0", "0000:3b:00", "0000:3b:20.0", "0000:3b:00.8", "3b.00.0", None, 7])
def test_what_is_not_a_bus_id_is_none(text):
    assert gpu.normalize_bus_id(text) is None


def test_bus_id_from_tfs_device_description():
    desc = "device: 0, name: NVIDIA H100 80GB HBM3, pci bus id: 0000:00:06.0, compute capability: 9.0"
    assert gpu.bus_id_from_desc(desc) == "00000000:00:06.0"
    assert gpu.bus_id_from_desc("") is None            # a CPU device has no description
    assert gpu.bus_id_from_desc("device: 0, name: X") is None


# -- CUDA_VISIBLE_DEVICES ---------------------------------------------------------------------
def test_parse_visible_devices():
    assert gpu.parse_visible_devices(None) is None
    assert gpu.parse_visible_devices("") == [] and gpu.parse_visible_devices("  ") == []
    assert gpu.parse_visible_devices("2, 0") == ["2", "0"]


@pytest.mark.parametrize("cvd, physical", [
    (None, [0, 1, 2]),                       # unset: every GPU, NVML order
    ("", []), ("-1", []),                    # no GPU
    ("2,0", [2, 0]),                         # TF's GPU:0 is physical 2
    ("1", [1]),
    ("0,-1,1", [0]),                         # the list ends at the first invalid entry
    ("0,7,1", [0]),                          # ... an index past the last GPU is one
    ("1,1,0", [1]),                          # ... and so is a repeated device
    (UUIDS[2] + "," + UUIDS[0], [2, 0]),     # full UUIDs
    ("GPU-8932f937", [0]),                   # a unique prefix
    ("gpu-8932F937", [0]),                   # any case
    ("GPU-04ff", []),                        # a prefix of two GPUs names neither
    ("GPU-04fff,GPU-ffff,0", [1]),           # an unknown UUID ends the list
    ("MIG-GPU-04fff293-9845-6ff7-1b98-6de072be462b/1/0", [1]),  # old MIG form: its GPU
    ("MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f", [2]),           # MIG UUID: its GPU
    ("MIG-c6d4", []),                        # ambiguous MIG prefix
    ("MIG-GPU-04fff293-9845-6ff7-1b98-6de072be462b", []),       # old form without instance ids
    ("nvidia0", []),
])
def test_visible_physical_indices(cvd, physical):
    assert gpu.visible_physical_indices(cvd, UUIDS, MIGS) == physical


def test_tf_gpu_0_under_cuda_visible_devices_is_not_nvml_device_0():
    """The bug this mapping fixes: TF's logical index was handed to NVML as it was."""
    assert gpu.choose_nvml_index(0, bus_index=None, cvd="1", uuids=UUIDS) == (1, "cuda-visible-devices")
    assert gpu.choose_nvml_index(1, bus_index=None, cvd="2,0", uuids=UUIDS) == (0, "cuda-visible-devices")
    assert gpu.choose_nvml_index(0, bus_index=None, cvd=UUIDS[2], uuids=UUIDS) == (2, "cuda-visible-devices")


def test_the_pci_bus_id_wins_over_cuda_visible_devices():
    # integer entries are CUDA ordinals, which follow NVML's order only with
    # CUDA_DEVICE_ORDER=PCI_BUS_ID; the bus id is exact whatever the order
    assert gpu.choose_nvml_index(0, bus_index=2, cvd="1", uuids=UUIDS) == (2, "pci-bus-id")


def test_without_a_bus_id_or_variable_the_identity_and_nothing_past_the_last():
    assert gpu.choose_nvml_index(2, bus_index=None, cvd=None, uuids=UUIDS) == (2, "identity")
    assert gpu.choose_nvml_index(3, bus_index=None, cvd=None, uuids=UUIDS) == (None, "none")
    assert gpu.choose_nvml_index(1, bus_index=None, cvd="2", uuids=UUIDS) == (None, "none")
    assert gpu.choose_nvml_index(0, bus_index=None, cvd="", uuids=UUIDS) == (None, "none")


# -- the NVML and TF sides, for real --------------------------------------------------------
def test_without_nvml_nothing_is_matched_and_nothing_raises():
    if gpu.device_count() > 0:
        pytest.skip("NVML sees a GPU here")
    assert gpu.nvml_device_for_tf_gpu(0) == gpu.NvmlDevice(None, "none")
    assert gpu.nvml_device_for_tf_gpu(0, bus_id="0000:3b:00.0", cvd="0").index is None
    assert gpu.nvml_index_by_bus_id("0000:3b:00.0") is None
    assert gpu.nvml_inventory() == ([], {})


def test_reset_tf_peak_says_whether_the_peak_is_per_phase():
    """A device whose stats cannot be reset gives False (the peak read later is a running
    one), not an exception; one that can gives True."""
    assert gpu.reset_tf_peak("CPU:0") is True
    assert isinstance(gpu.tf_peak_bytes("CPU:0"), int)
    assert gpu.reset_tf_peak("GPU:4096") is False
    assert gpu.tf_peak_bytes("GPU:4096") is None


def test_tf_gpu_bus_id_of_a_gpu_tf_does_not_have_is_none():
    assert gpu.tf_gpu_bus_id(4096) is None


@pytest.mark.gpu
def test_tf_gpu_maps_to_the_nvml_device_at_its_bus_id():
    import tensorflow as tf

    from harness import devices

    devices.configure("gpu")
    tf.constant(1.0)  # TF's devices are up, as in a worker
    bus = gpu.tf_gpu_bus_id(0)
    assert bus is not None
    dev = gpu.nvml_device_for_tf_gpu(0, bus_id=bus)
    assert dev.how == "pci-bus-id" and dev.bus_id == bus
    assert gpu.sample(dev.index)["mem_used_bytes"] > 0
    assert gpu.reset_tf_peak("GPU:0") is True


@pytest.mark.parametrize("reset_ok,kind", [(True, "phase"), (False, "running")])
def test_sampler_says_when_the_gpu_peak_is_a_running_peak(monkeypatch, reset_ok, kind):
    # TF's side is stood in for at the harness's own seam (no GPU here): a failed
    # reset_memory_stats must not pass a running peak off as the phase's peak
    from harness.telemetry import gpu, sampler

    monkeypatch.setattr(gpu, "reset_tf_peak", lambda dev: reset_ok)
    monkeypatch.setattr(gpu, "tf_peak_bytes", lambda dev: 123)
    s = sampler.Sampler(tf_gpu="GPU:0")
    s.start()
    t = s.stop()
    assert t.gpu_peak_bytes == 123 and t.gpu_peak_kind == kind
