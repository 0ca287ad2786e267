import os
import shutil
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tf_sees_gpu() -> bool:
    # NVML first (no CUDA context); TF itself only if NVML saw something
    from harness.devices import visible_gpu_count
    if visible_gpu_count() == 0:
        return False
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


def pytest_collection_modifyitems(config, items):
    gpu_items = [i for i in items if "gpu" in i.keywords]
    if gpu_items and not _tf_sees_gpu():
        skip = pytest.mark.skip(reason="no GPU visible to TensorFlow on this machine")
        for item in gpu_items:
            item.add_marker(skip)


def run_cli(*args, timeout=300, cwd=None, env=None):
    """Run the installed CLI as a user would (`python -m harness`), capture text output."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=e)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def strace_path():
    path = shutil.which("strace")
    if not path:
        pytest.skip("strace is not installed (apt-get install -y strace)")
    return path
