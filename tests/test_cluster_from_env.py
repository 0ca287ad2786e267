"""`run --strategy multi-worker:3 --cluster-from-env`: three real task processes started here the way an
external launcher would (each with its own hand-made TF_CONFIG on 127.0.0.1, no harness parent), meeting
only through TensorFlow and a shared output directory."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.distributed.fromenv import read_tf_config, run_id_for
from harness.distributed.launcher import HOST, free_ports
from harness.distributed.strategy import parse_strategy
from harness.errors import UsageError

N = 3
ARGS = ["--strategy", f"multi-worker:{N}", "--cluster-from-env", "--api", "tf2-manager",
        "--size", "256KiB", "--vars", "8", "--repeat", "1", "--quiet"]


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def start_task(out: Path, config: str, log: Path, extra: list[str]) -> subprocess.Popen:
    env = dict(os.environ, TF_CONFIG=config, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-m", "harness", "run", *ARGS, "--out", str(out), *extra],
                                env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Tasks:
    """Processes started here, each in its own group; every group is SIGKILLed and reaped on exit."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def wait_all(self, seconds: float) -> list[int]:
        end = time.monotonic() + seconds
        return [p.wait(max(0.1, end - time.monotonic())) for p in self.procs]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def task_pids(run_dir: Path) -> list[int]:
    """The TensorFlow processes the tasks' drivers started (each in a process group of its own)."""
    return [json.loads(p.read_text())["task_pid"] for p in sorted(run_dir.glob("task-*.json"))]


def read_phases(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_three_tasks_meet_through_tf_and_the_shared_directory(tmp_path):
    out = tmp_path / "shared"
    addresses = [f"{HOST}:{p}" for p in free_ports(N)]
    with Tasks() as tasks:
        for i in range(N):
            tasks.procs.append(start_task(out, tf_config(addresses, i), tmp_path / f"task-{i}.log",
                                          ["--timeout", "240"]))
        codes = tasks.wait_all(300)
        logs = {i: (tmp_path / f"task-{i}.log").read_text(errors="replace")[-3000:] for i in range(N)}
        assert codes == [0] * N, logs
        for p in tasks.procs:
            assert not group_alive(p.pid)
    runs = list(out.iterdir())
    assert len(runs) == 1, runs   # the same run name on every task, with no message between them
    run_dir = runs[0]
    assert run_dir.name == run_id_for({"worker": addresses}, None)
    rows = read_phases(run_dir / "phases.csv")
    verdicts = {(r["task"], r["phase"]): r["outcome"] for r in rows if r["outcome"]}
    for i in range(N):
        assert verdicts[(f"worker:{i}", "verify")] == "complete"
        assert verdicts[(f"worker:{i}", "restore_warm")] == "complete"
        assert {r["phase"] for r in rows if r["task"] == f"worker:{i}"} >= {"strategy", "build", "save", "barrier"}
    assert verdicts[("cluster", "agree")] == "complete"
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["failures"] == []
    assert sorted(p.name for p in run_dir.glob("task-*.json")) == [f"task-worker-{i}.json" for i in range(N)]
    assert not (run_dir / "ckpt").exists()   # the chief removed the checkpoints
    pids = task_pids(run_dir)
    assert len(pids) == N and not any(group_alive(p) for p in pids)


def test_a_task_of_another_cluster_is_refused_and_the_others_end_at_their_deadline(tmp_path):
    """worker:2's TF_CONFIG names a 2-task cluster: it refuses in one line (exit 2) before TensorFlow;
    the other two wait for it inside TF until their --timeout, then the chief records it as `hang`."""
    out = tmp_path / "shared"
    addresses = [f"{HOST}:{p}" for p in free_ports(N)]
    timeout = 20
    with Tasks() as tasks:
        for i in range(N - 1):
            tasks.procs.append(start_task(out, tf_config(addresses, i), tmp_path / f"task-{i}.log",
                                          ["--timeout", str(timeout)]))
        bad = start_task(out, tf_config(addresses[:2], 1), tmp_path / "bad.log", ["--timeout", str(timeout)])
        tasks.procs.append(bad)
        assert bad.wait(60) == 2
        lines = [x for x in (tmp_path / "bad.log").read_text().splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("ckpt-harness: error:") and "needs 3" in lines[0], lines
        t0 = time.monotonic()
        codes = tasks.wait_all(timeout + 90)   # the deadline, the chief's grace, start-up on busy cores
        logs = {i: (tmp_path / f"task-{i}.log").read_text(errors="replace")[-3000:] for i in range(N - 1)}
        assert codes[:2] == [1, 1], (codes, logs)
        assert time.monotonic() - t0 < timeout + 60
        for p in tasks.procs:
            assert not group_alive(p.pid)
    run_dir = out / run_id_for({"worker": addresses}, None)
    rows = read_phases(run_dir / "phases.csv")
    verdicts = {(r["task"], r["phase"]): r for r in rows if r["outcome"]}
    assert verdicts[("worker:2", "verify")]["outcome"] == "hang"
    assert "no task file" in verdicts[("worker:2", "verify")]["detail"]
    assert verdicts[("worker:0", "verify")]["outcome"] == "hang"   # stuck in the strategy's constructor
    assert verdicts[("cluster", "agree")]["outcome"] == "hang"
    assert json.loads((run_dir / "metadata.json").read_text())["status"] == "failed"
    pids = task_pids(run_dir)   # the two TF processes stuck in the strategy's constructor were killed
    assert len(pids) == 2 and not any(group_alive(p) for p in pids)


def test_tf_config_is_checked_against_the_strategy():
    mw3 = parse_strategy("multi-worker:3")
    good = tf_config(["h0:1", "h1:2", "h2:3"], 2)
    assert read_tf_config(mw3, {"TF_CONFIG": good}) == ({"worker": ["h0:1", "h1:2", "h2:3"]}, "worker:2")
    bad = {
        "not set": {},
        "not valid JSON": {"TF_CONFIG": "{worker"},
        "names 2 worker": {"TF_CONFIG": tf_config(["h0:1", "h1:2"], 0)},
        "exactly one job": {"TF_CONFIG": json.dumps({"cluster": {"worker": ["h:1", "h:2", "h:3"], "ps": ["h:4"]},
                                                     "task": {"type": "worker", "index": 0}})},
        "task must be": {"TF_CONFIG": tf_config(["h0:1", "h1:2", "h2:3"], 3)},
        "host:port": {"TF_CONFIG": tf_config(["h0", "h1:2", "h2:3"], 0)},
        "twice": {"TF_CONFIG": tf_config(["h0:1", "h0:1", "h2:3"], 0)},
    }
    for words, env in bad.items():
        with pytest.raises(UsageError, match=words):
            read_tf_config(mw3, env)


def test_run_id_depends_only_on_the_cluster_and_the_given_id():
    a, b = {"worker": ["h0:1", "h1:2"]}, {"worker": ["h0:1", "h1:3"]}
    assert run_id_for(a, None) == run_id_for(dict(a), None)
    assert len({run_id_for(a, None), run_id_for(b, None), run_id_for(a, "job-7"), run_id_for(a, "job-8")}) == 4
    assert run_id_for(a, "job-7").startswith("job-7-")
    with pytest.raises(UsageError, match="--run-id"):
        run_id_for(a, "../x")


def test_a_relaunch_under_the_same_name_is_refused(tmp_path):
    """Without a fresh --run-id a relaunch on the same addresses would mix with the earlier launch's
    files: the chief refuses the earlier metadata, a task its own earlier file (one line, exit 2)."""
    addresses = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
    run_dir = tmp_path / run_id_for({"worker": addresses}, None)
    run_dir.mkdir()
    (run_dir / "metadata.json").write_text("{}")
    (run_dir / "task-worker-1.json").write_text("{}")
    for index in (0, 1):
        env = dict(os.environ, TF_CONFIG=tf_config(addresses, index))
        res = subprocess.run([sys.executable, "-m", "harness", "run", *ARGS, "--out", str(tmp_path)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2
        assert len(res.stderr.strip().splitlines()) == 1 and "--run-id" in res.stderr, res.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["metadata.json", "task-worker-1.json"]   # untouched
