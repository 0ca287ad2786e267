import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# CKPT_REQUIRE_ALL=1: a test that would be skipped because this machine lacks a working strace
# or the right to mount a tmpfs (root) fails instead. CI sets it where those are provided, so
# that these tests cannot quietly stop running there. (GPU tests are not covered: CI has no GPU.)
REQUIRE_ALL = os.environ.get("CKPT_REQUIRE_ALL", "") not in ("", "0")

# markers for what a test needs from the machine, checked before the test's fixtures run
NEEDS = {
    "strace": "needs strace able to attach to a process that is not its child",
    "tmpfs": "needs root and permission to mount a tmpfs",
}


def require(condition: bool, reason: str) -> None:
    """Skip the running test when `condition` is false, or fail it under CKPT_REQUIRE_ALL=1."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"CKPT_REQUIRE_ALL=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@functools.lru_cache(maxsize=None)
def strace_problem() -> str:
    """'' when strace can attach to a running process here, else why not. The harness attaches
    to trial processes that are not strace's children, which ptrace_scope=1 forbids non-root."""
    if not shutil.which("strace"):
        return "strace is not installed (apt-get install -y strace)"
    from harness.errors import ResourceError
    from harness.faults.strace import StraceSession

    tracee = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdin=subprocess.DEVNULL)
    try:
        with tempfile.TemporaryDirectory() as d:
            session = StraceSession(tracee.pid, os.path.join(d, "probe.strace"))
            try:
                session.start()
            except ResourceError as e:
                return str(e)
            session.stop()
        return ""
    finally:
        tracee.kill()
        tracee.wait()


@functools.lru_cache(maxsize=None)
def tmpfs_problem() -> str:
    """'' when a tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d], capture_output=True, text=True)
        if r.returncode != 0:
            return f"cannot mount a tmpfs: {(r.stderr.strip() or 'mount failed').splitlines()[0]}"
        subprocess.run(["umount", d], check=True)
    return ""


def pytest_configure(config):
    for name, text in NEEDS.items():
        config.addinivalue_line("markers", f"{name}: {text} (skipped without, failed under CKPT_REQUIRE_ALL=1)")


def pytest_runtest_setup(item):
    for need in NEEDS:
        if item.get_closest_marker(need) is not None:
            problem = strace_problem() if need == "strace" else tmpfs_problem()
            require(not problem, problem)


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
    problem = strace_problem()
    require(not problem, problem)
    return shutil.which("strace")


@contextlib.contextmanager
def crash_children(logs, checker_timeout: float):
    """A started saving zygote and checker for crash tests; on the way out both are closed and
    no process they started may be left running."""
    import psutil

    from harness.faults.checker import Checker
    from harness.faults.saver_control import Zygote

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    zygote = Zygote(str(logs / "saver.log")).start()
    checker = Checker(str(logs / "checker.log"), timeout=checker_timeout).start()
    try:
        yield zygote, checker
    finally:
        zygote.close()
        checker.close()
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left behind: {[p.cmdline()[:3] for p in left]}"
