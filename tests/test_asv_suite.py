"""The asv suite is importable, well-formed and runs: a broken benchmark fails CI.

asv runs here against the current interpreter (an `existing` environment),
through a copy of asv.conf.json whose matrix is emptied: with the matrix left
in, `--python=same` would run the same interpreter once per matrix entry.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.asv_gpu import load_conf

pytest.importorskip("asv")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def asv_env(tmp_path_factory):
    """(config path, environment) for running asv on this interpreter in a temp dir."""
    tmp = tmp_path_factory.mktemp("asv")
    conf = load_conf(ROOT / "asv.conf.json")
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"), env_dir=str(tmp / "env"),
                results_dir=str(tmp / "results"), html_dir=str(tmp / "html"), matrix={})
    path = tmp / "asv.conf.json"
    path.write_text(json.dumps(conf))
    home = tmp / "home"  # asv keeps its machine description in ~/.asv-machine.json
    home.mkdir()
    env = dict(os.environ, HOME=str(home), CKPT_BENCH_APIS="tf2-checkpoint", CKPT_BENCH_GPU="0",
               CKPT_BENCH_STRATEGIES="none,multi-worker:2",
               TF_CPP_MIN_LOG_LEVEL="2", CKPT_BENCH_DIR=str(tmp))
    env.pop("CKPT_BENCH_LARGE", None)
    _asv(["machine", "--yes", "--machine", "pytest"], path, env)
    return path, env


def _asv(args, config, env, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "asv", *args, "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_asv_check_finds_every_benchmark_kind(asv_env):
    config, env = asv_env
    rc, out = _asv(["check", "--python=same"], config, env)
    assert rc == 0, out
    assert "No problems found" in out, out


def test_asv_config_matrix_pins_every_supported_tensorflow_minor():
    conf = load_conf(ROOT / "asv.conf.json")
    versions = conf["matrix"]["req"]["tensorflow-cpu"]
    assert all(re.fullmatch(r"2\.\d+\.\d+", v) for v in versions)
    # one pin per minor, 2.16 to 2.21 (README: supported TensorFlow)
    assert sorted(int(v.split(".")[1]) for v in versions) == list(range(16, 22))
    assert conf["launch_method"] == "spawn"
    assert any("--no-deps" in c for c in conf["install_command"])
    # tensorflow goes last: each entry is a separate `pip install --upgrade`
    assert list(conf["matrix"]["req"])[-1] == "tensorflow-cpu"


@pytest.mark.timeout(1200)  # ~2 min on a quiet 2-core machine; over 10 under heavy load
def test_quick_dry_run_of_whole_suite_succeeds(asv_env):
    """Every benchmark once (one API, small state, CPU): no failures, GPU combos skipped."""
    config, env = asv_env
    rc, out = _asv(["run", "--quick", "--dry-run", "--python=same", "--machine", "pytest",
                    "--show-stderr", "--launch-method", "spawn"], config, env, timeout=1100)
    assert rc == 0, out[-5000:]
    # asv marks a benchmark that raised with "failed" in its status column; TensorFlow's own
    # log lines (e.g. "failed call to cuInit" from a CUDA-enabled wheel) are not failures
    failed = re.findall(r"^.*\sfailed\s*$", out, re.M)  # a status, or a cell of a params table
    assert not failed, "\n".join(failed) + "\n" + out[-5000:]
    for name in ["time_init", "time_save", "time_save_durable", "time_restore_warm", "time_restore_cold",
                 "peakmem_save", "peakmem_restore", "track_save_gbps", "track_restore_cold_gbps",
                 "track_save_durable_roofline_fraction", "track_restore_cold_roofline_fraction",
                 "track_save_reported_over_bare", "track_save_phase_wall_over_bare", "track_save_cpu_over_bare",
                 "track_crash_states_per_second", "track_save_us_per_var", "track_restore_cold_gbps_asymptote",
                 "track_save_seconds", "track_restore_seconds"]:
        assert name in out, f"{name} did not run:\n{out[-3000:]}"
    assert "n/a" in out  # the gpu column: skipped, not failed


def test_gpu_config_swaps_in_tensorflow_with_cuda_extras(tmp_path):
    """The nightly GPU job's config: asv accepts it and builds one env per TF version."""
    from asv.config import Config
    from asv.environment import get_environments

    from harness.report.asv_gpu import CUDA_EXTRAS_STEP, main as asv_gpu_main

    out = tmp_path / "asv.gpu.conf.json"
    assert asv_gpu_main(["config", "--base", str(ROOT / "asv.conf.json"), "--out", str(out)]) == 0
    conf = json.loads(out.read_text())
    req = conf["matrix"]["req"]
    assert "tensorflow-cpu" not in req and list(req)[-1] == "tensorflow"
    assert req["tensorflow"] == load_conf(ROOT / "asv.conf.json")["matrix"]["req"]["tensorflow-cpu"]
    assert conf["install_command"][-1] == CUDA_EXTRAS_STEP
    assert conf["project_url"].startswith("https://")  # '//' inside strings is not a comment
    names = [e.name for e in get_environments(Config.from_json(conf), None, verbose=False)]
    assert len(names) == len(req["tensorflow"]) and all("tensorflow2." in n for n in names)


def test_gpu_config_single_version_for_the_regression_gate(tmp_path):
    from harness.report.asv_gpu import main as asv_gpu_main

    out = tmp_path / "gate.json"
    assert asv_gpu_main(["config", "--base", str(ROOT / "asv.conf.json"), "--tf", "2.21.0", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["matrix"]["req"]["tensorflow"] == ["2.21.0"]
