"""The `run` command end to end, as a user runs it: results files, bad input,
multi-device placement, Ctrl-C."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from conftest import run_cli

REQUIRED = ["run_id", "scenario", "api", "device", "n_vars", "state_bytes", "phase", "repeat", "seconds",
            "gbps", "roofline_fraction", "peak_rss_bytes", "gpu_peak_bytes", "outcome"]


def _run_dir(out):
    dirs = [d for d in os.listdir(out) if not d.startswith(".")]
    assert len(dirs) == 1, dirs
    return os.path.join(out, dirs[0])


def test_run_writes_results_and_cleans_up(tmp_path):
    out = tmp_path / "runs"
    p = run_cli("run", "--api", "tf2-checkpoint", "--api", "tf1-saver", "--size", "1MiB", "--vars", "12",
                "--repeat", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    run_dir = _run_dir(out)
    with open(os.path.join(run_dir, "phases.csv")) as f:
        rows = list(csv.DictReader(f))
    assert set(REQUIRED) <= set(rows[0])
    phases = {(r["api"], r["phase"]) for r in rows}
    for api in ("tf2-checkpoint", "tf1-saver"):
        for phase in ("build", "init", "save", "save_durable", "restore_warm", "restore_cold", "verify",
                      "raw_write", "raw_read_cold"):
            assert (api, phase) in phases
    restores = [r for r in rows if r["phase"].startswith("restore")]
    assert restores and all(r["outcome"] == "complete" for r in restores)
    assert all(float(r["gbps"]) > 0 and float(r["roofline_fraction"]) > 0 for r in restores)
    assert {r["repeat"] for r in rows} == {"0", "1"}
    meta = json.load(open(os.path.join(run_dir, "metadata.json")))
    for key in ("tensorflow_version", "python_version", "harness_version", "cpu_model", "ram_bytes", "gpus",
                "output_filesystem", "git_commit", "format_version"):
        assert key in meta
    assert meta["status"] == "complete"
    assert sorted(os.listdir(run_dir)) == ["metadata.json", "phases.csv"]  # scratch removed
    assert "median_s" in p.stdout and "tf1-saver" in p.stdout


@pytest.mark.parametrize("args,needle", [
    (["run", "--api", "tf3-magic"], "unknown api"),
    (["run", "--api", "async-restart"], "crash target only"),
    (["run", "--device", "tpu"], "unknown device"),
    (["run", "--shape-mix", "round"], "unknown shape mix"),
    (["run", "--size", "lots"], "cannot parse size"),
    (["run", "--size", "0"], "must be positive"),
    (["run", "--vars", "-3"], "must be positive"),
    (["run", "--repeat", "zero"], "whole number"),
    (["run", "--device", "gpu"], "no NVIDIA GPU"),
    (["run", "--size", "100TiB"], "RAM"),
    (["run", "--out", "/proc/no-such-place"], "cannot write"),
    (["run", "--bogus"], "unrecognized arguments"),
])
def test_bad_input_is_one_line(args, needle, tmp_path):
    if "--out" not in args:
        args = args + ["--out", str(tmp_path)]
    p = run_cli(*args, timeout=60, env={"CUDA_VISIBLE_DEVICES": ""})
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.tmpfs
def test_disk_check_before_starting(tmp_path):
    # a 32 MiB filesystem as --scratch: 200 MiB of state fits in RAM but not on that disk
    scratch = tmp_path / "small"
    scratch.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(scratch)], check=True)
    try:
        p = run_cli("run", "--size", "200MiB", "--scratch", str(scratch), "--out", str(tmp_path / "runs"),
                    timeout=60)
    finally:
        subprocess.run(["umount", str(scratch)], check=True)
    assert p.returncode == 2 and "of disk" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not os.listdir(tmp_path / "runs")  # refused before creating a run


def test_help_and_list_do_not_import_tensorflow():
    code = textwrap.dedent("""
        import sys, contextlib, io
        from harness.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            main(["list"])
            try:
                main(["--help"])
            except SystemExit:
                pass
        assert "tensorflow" not in sys.modules, "TF was imported"
        print("ok")
    """)

    def seconds(*argv):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        return time.perf_counter() - t0, p

    # against TF's own import, timed here and now: the machine's load scales both alike
    cli_times, tf_times = [], []
    for _ in range(2):
        t, p = seconds("-c", code)
        assert p.stdout.strip() == "ok", p.stderr
        cli_times.append(t)
        tf_times.append(seconds("-c", "import tensorflow")[0])
    assert min(cli_times) < min(tf_times) / 3, (cli_times, tf_times)


def test_multi_cpu_placement_in_fresh_process(tmp_path):
    # logical devices must be configured before TF initializes: own process
    code = textwrap.dedent(f"""
        from harness.session import Scenario, ScenarioSession
        from harness.specs import GraphSpec
        for api in ("tf2-checkpoint", "tf1-saver", "keras-weights"):
            with ScenarioSession(Scenario(api, "multi-cpu:3", GraphSpec(n_vars=9, state_bytes=1 << 18)),
                                 r"{tmp_path}/" + api) as s:
                s.build(); s.init(); s.save(); s.restore(cold=True)
                # Keras wraps the tf.Variable: its device is on .value
                devs = sorted({{getattr(v, "device", "") or v.value.device for v in s.adapter.vars.values()}})
                print(api, s.verify().outcome.value, [d.rsplit("/", 1)[-1] for d in devs])
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert " complete " in line and all(f"CPU:{i}" in line for i in range(3)), line


def harness_with_sigint(*args) -> list[str]:
    """`python -m harness ARGS` with SIGINT raising KeyboardInterrupt as at a terminal, also where
    this test runs with SIGINT ignored (a background job inherits that, and Python keeps it)."""
    code = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "runpy.run_module('harness', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", code, *args]


def test_ctrl_c_keeps_finished_results_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen(harness_with_sigint("run", "--api", "tf2-checkpoint", "--api", "tf2-manager",
                                                "--size", "4MiB", "--vars", "16", "--repeat", "2", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 240
    children = []
    # let the first scenario finish (phases.csv appears) and catch the second one's worker
    # while it is still starting (importing TF takes seconds)
    while time.time() < deadline:
        time.sleep(0.1)
        found = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f == "phases.csv"]
        children = parent.children(recursive=True)
        if found and children:
            break
    else:
        proc.kill()
        pytest.fail("first scenario never finished")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"worker processes left behind: {alive}"
    run_dir = _run_dir(out)
    assert sorted(os.listdir(run_dir)) == ["metadata.json", "phases.csv"]
    rows = list(csv.DictReader(open(os.path.join(run_dir, "phases.csv"))))
    assert {r["api"] for r in rows} == {"tf2-checkpoint"}
    assert json.load(open(os.path.join(run_dir, "metadata.json")))["status"] == "interrupted"


def test_timeout_kills_worker_and_cleans_up(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--api", "tf2-checkpoint", "--size", "1MiB",
                             "--vars", "4", "--repeat", "1", "--timeout", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = set()
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            seen.update(parent.children(recursive=True))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "exceeded --timeout" in err, err
    assert "Traceback" not in err
    assert seen, "the worker was never seen"
    assert not [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    run_dir = _run_dir(out)
    assert os.listdir(run_dir) == ["metadata.json"]
    assert json.load(open(os.path.join(run_dir, "metadata.json")))["status"] == "failed"
