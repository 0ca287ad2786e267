"""tf.distribute checkpointing on real local clusters (harness/distributed/): real task
processes on 127.0.0.1, real TensorFlow, real signals.

- the launcher leaves no process of any task's group behind: after a normal close, after
  its deadline, and after the harness is stopped by SIGTERM in the middle of a run;
- the barrier race: in one long-lived 3-worker cluster whose chief saves late on purpose,
  20 rounds with the harness's barrier all agree, and without it the workers diverge;
- `run --strategy mirrored:2` end to end: every replica complete, rows with a task column;
- the cross-task verdict (pure) and the refusal of bad --strategy input.

One multi-worker cluster is started for the race and reused for every round of it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from harness.distributed.launcher import ClusterTimeout, LocalCluster, TaskId
from harness.distributed.run import ClusterRun
from harness.distributed.strategy import parse_strategy
from harness.distributed.verdict import agree, judge_round
from harness.errors import UsageError
from harness.outcomes import ORDER, Outcome, Verdict
from harness.specs import GraphSpec

TINY = GraphSpec(n_vars=8, state_bytes=64 * 1024)
PAUSED_AT_START = {"pause_at": "start"}   # the task says hello and stops before importing TF
DELAY = 0.5   # the chief's planted lateness in the race test


def _cluster(tmp_path, n: int, deadline: float, **kw) -> LocalCluster:
    tasks = [TaskId("worker", i) for i in range(n)]
    return LocalCluster(tasks, {"ckpt_dir": str(tmp_path / "ckpt")}, str(tmp_path / "cluster"), deadline,
                        per_task={t.label: PAUSED_AT_START for t in tasks}, **kw)


def _group_members(pgids) -> list[psutil.Process]:
    """Live (non-zombie) processes in any of the process groups `pgids`."""
    left = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) in pgids and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
        except (ProcessLookupError, psutil.Error):
            pass
    return left


def _paused_everywhere(cluster: LocalCluster) -> set[int]:
    """Wait for every task's `paused` message; returns the tasks' process groups."""
    for label in cluster.labels:
        assert cluster.recv(label) == {"event": "paused", "point": "start", "task": label}
    pgids = {os.getpgid(pid) for pid in cluster.pids.values()}
    assert pgids == set(cluster.pids.values())   # each task leads a group of its own
    return pgids


# -- the launcher ----------------------------------------------------------------------
def test_launcher_normal_close_leaves_no_task(tmp_path):
    cluster = _cluster(tmp_path, 3, deadline=120)
    with cluster:
        pgids = _paused_everywhere(cluster)
        assert len(pgids) == 3 and not (tmp_path / "ckpt").exists()
    assert _group_members(pgids) == []
    assert all(c.proc.returncode is not None for c in cluster.children.values())   # reaped


def test_launcher_deadline_raises_and_kills(tmp_path):
    cluster = _cluster(tmp_path, 2, deadline=4)
    t0 = time.monotonic()
    with pytest.raises(ClusterTimeout):
        with cluster:
            pgids = _paused_everywhere(cluster)
            cluster.recv("worker:0")   # a paused task says nothing more: only the deadline ends this
    assert time.monotonic() - t0 < 30
    assert _group_members(pgids) == []


def test_harness_sigterm_mid_run_kills_every_task(tmp_path):
    """A real `run --strategy multi-worker:2`, SIGTERMed once its first round is reported:
    exit 130, no task process left, scratch gone, the finished round's rows kept."""
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--strategy", "multi-worker:2",
                             "--repeat", "500", "--size", "64KiB", "--vars", "8", "--timeout", "300",
                             "--out", str(out)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        tasks = []
        for line in proc.stderr:
            tasks = tasks or [p for p in psutil.Process(proc.pid).children()
                              if "harness.distributed.task" in " ".join(p.cmdline())]
            if line.startswith("  round 0:"):
                break
        assert "complete" in line, line
        tasks = [p for p in psutil.Process(proc.pid).children()
                 if "harness.distributed.task" in " ".join(p.cmdline())]
        assert len(tasks) == 2
        pgids = {os.getpgid(p.pid) for p in tasks}
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert _group_members(pgids) == []
    (run_dir,) = list(out.iterdir())
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".scratch")] == []
    with open(run_dir / "phases.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["task"] for r in rows} >= {"worker:0", "worker:1", "cluster"}


# -- the barrier race ------------------------------------------------------------------
def test_barrier_race_in_one_long_lived_cluster(tmp_path):
    """The chief saves DELAY s late every round. With the barrier, 20 rounds agree; without it
    the non-chief workers restore the previous save while the chief restores the new one (5 of 5
    rounds diverged with this very delay when tried by hand on 2 cores)."""
    with ClusterRun(parse_strategy("multi-worker:3"), TINY, str(tmp_path / "c"), deadline=400) as run:
        assert {r["task"] for r in run.start_rows} == {"worker:0", "worker:1", "worker:2"}
        for r in range(20):
            rows, verdict = run.round(r, barrier=True, delay_save=DELAY)
            assert verdict.outcome == Outcome.COMPLETE, (r, verdict)
        barrier_rows = [x for x in rows if x["phase"] == "barrier"]
        assert len(barrier_rows) == 3 and max(x["seconds"] for x in barrier_rows) >= DELAY / 2  # they waited
        racy = [run.round(r, barrier=False, delay_save=DELAY) for r in range(20, 23)]
        outcomes = [v.outcome for _, v in racy]
        assert Outcome.DIVERGED in outcomes, [v for _, v in racy]
        rows, v = next((rows, v) for rows, v in racy if v.outcome == Outcome.DIVERGED)
        by_task = {x["task"]: x["outcome"] for x in rows if x["phase"] == "restore_warm"}
        assert by_task["worker:0"] == "complete"   # the chief alone looks fine
        assert "mismatch" in by_task.values()   # a worker restored the save before
        rows, verdict = run.round(23, barrier=True, delay_save=DELAY)   # the same cluster recovers
        assert verdict.outcome == Outcome.COMPLETE, verdict


def test_parameter_server_variables_on_ps_and_shards_per_ps(tmp_path):
    """parameter-server:1,2: the chief's variables live on both ps tasks, each ps writes a data
    shard of the save, and the chief restores them complete."""
    with ClusterRun(parse_strategy("parameter-server:1,2"), TINY, str(tmp_path / "c"), deadline=300) as run:
        assert set(run.meta["placement"]) == {"ps:0", "ps:1"}
        assert {r["task"] for r in run.start_rows} == {"chief:0", "worker:0", "ps:0", "ps:1"}
        rows, verdict = run.round(0)
        assert verdict.outcome == Outcome.COMPLETE, verdict
        assert {r["task"] for r in rows} == {"chief:0", "cluster"}   # servers take no part in rounds
        shards = sorted(f for f in os.listdir(run.ckpt_dir) if f.startswith("ckpt-1.data-"))
        assert shards == [f"ckpt-1.data-0000{i}-of-00003" for i in range(3)]   # one per ps + the chief's


# -- end to end ------------------------------------------------------------------------
def test_run_strategy_mirrored_end_to_end(tmp_path):
    out = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "harness", "run", "--strategy", "mirrored:2", "--repeat", "2",
                          "--size", "256KiB", "--vars", "8", "--out", str(out), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (run_dir,) = list(out.iterdir())
    with open(run_dir / "phases.csv") as f:
        rows = list(csv.DictReader(f))
    verify = [r for r in rows if r["phase"] == "verify"]
    assert [r["outcome"] for r in verify] == ["complete", "complete"]
    assert all(r["task"] == "chief:0" for r in verify)
    assert "2 unit(s) agree" in verify[0]["detail"]   # both replicas judged
    assert [r["outcome"] for r in rows if r["task"] == "cluster"] == ["complete", "complete"]
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".scratch")] == []


def test_run_without_barrier_diverges_and_exits_1(tmp_path):
    """The CLI with the barrier off and the chief's save planted late: the round is
    `diverged`, the run exits 1 with status failed and one stderr line naming it."""
    out = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "harness", "run", "--strategy", "multi-worker:2", "--repeat", "1",
                          "--size", "64KiB", "--vars", "8", "--no-barrier", "--chief-save-delay", "1.0",
                          "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    failed = [ln for ln in res.stderr.splitlines() if "scenario failed" in ln]
    assert len(failed) == 1 and "diverged" in failed[0] and "worker:1" in failed[0]
    (run_dir,) = list(out.iterdir())
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "failed" and meta["barrier"] is False


# -- the verdict and the input ---------------------------------------------------------
def test_diverged_is_a_quiet_failure_between_mismatch_and_silent():
    assert ORDER.index(Outcome.MISMATCH) < ORDER.index(Outcome.DIVERGED) < ORDER.index(Outcome.SILENT)
    assert Outcome.DIVERGED.is_failure


def test_agree_and_judge_round():
    expected = {"a": "1", "b": "2"}
    same = judge_round(expected, {"w0": {"digests": {"w0": expected}}, "w1": {"digests": {"w1": expected}}})
    assert same[1].outcome == Outcome.COMPLETE
    stale = judge_round(expected, {"w0": {"digests": {"w0": expected}},
                                   "w1": {"digests": {"w1": {"a": "1", "b": "old"}}}})
    assert stale[0]["w0"].outcome == Outcome.COMPLETE and stale[0]["w1"].outcome == Outcome.MISMATCH
    assert stale[1].outcome == Outcome.DIVERGED and "b" in stale[1].detail
    # same verdict on every unit, different states: still diverged
    both_wrong = agree({"x": Verdict(Outcome.MISMATCH), "y": Verdict(Outcome.MISMATCH)},
                       {"x": {"a": "9"}, "y": {"a": "8"}})
    assert both_wrong.outcome == Outcome.DIVERGED
    # replicas of one task that disagree make that task diverged
    task, cluster = judge_round(expected, {"c": {"digests": {"c/replica:0": expected,
                                                             "c/replica:1": {"a": "1", "b": "x"}}}})
    assert task["c"].outcome == Outcome.DIVERGED == cluster.outcome
    errors = judge_round(expected, {"w0": {"digests": {"w0": {}}, "error": "NotFoundError: x"},
                                    "w1": {"digests": {"w1": {}}, "error": "NotFoundError: x"}})
    assert errors[1].outcome == Outcome.ERROR


@pytest.mark.parametrize("text", ["bogus", "mirrored", "multi-worker:0", "multi-worker:x", "none:2",
                                  "parameter-server:2", "parameter-server:0,1", "mirrored:2,2"])
def test_bad_strategy_is_one_line(text):
    with pytest.raises(UsageError):
        parse_strategy(text)


def test_cli_refuses_bad_strategy_input(tmp_path):
    for extra in (["--strategy", "multi-worker:99"], ["--strategy", "multi-worker:2", "--api", "tf1-saver"]):
        res = subprocess.run([sys.executable, "-m", "harness", "run", *extra, "--out", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []
