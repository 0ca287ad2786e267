"""Crash injection against real TensorFlow (CPU): every mode, the planted silent
corruption, replay, and nothing left behind (processes, mounts, temp dirs).

One saving zygote and one checker are shared by the whole module (each costs
a TensorFlow import); checkpoints are small (16 variables, 256 KiB).
"""

from __future__ import annotations

import csv
import json
import os
import shutil

import psutil
import pytest
from conftest import crash_children

from harness.outcomes import CRASH_STATE, Outcome
from harness.specs import GraphSpec

VOCAB = {o.value for o in CRASH_STATE}
SPEC = GraphSpec(n_vars=16, state_bytes=256 * 1024)


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    from harness.faults import diskfull

    with crash_children(tmp_path_factory.mktemp("crash-logs"), checker_timeout=60) as kids:
        yield kids
    assert not diskfull._mounted


def _own_children(children) -> set[int]:
    zygote, checker = children
    return {p.pid for p in psutil.Process().children(recursive=True)} - {zygote.proc.pid, checker.proc.pid}


def run(children, tmp_path, mode, api="tf2-manager", **kw):
    from harness.faults.campaign import Campaign, CrashConfig

    before = _own_children(children)
    cfg = CrashConfig(mode=mode, apis=(api,), spec=SPEC, out=str(tmp_path), quiet=True, **kw)
    camp = Campaign(cfg, *children).run()
    # trials, strace and scratch dirs are gone once a run returns
    assert _own_children(children) - before == set()
    assert not [d for d in os.listdir(camp.run_dir) if d.startswith(".work-")]
    with open(os.path.join(camp.run_dir, "crash.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(camp.run_dir, "metadata.json")) as f:
        meta = json.load(f)
    return camp, rows, meta


def _check_rows(camp, rows, meta):
    assert rows, "a run must produce crash states"
    for col in ("run_id", "api", "mode", "model", "state_id", "fault", "outcome", "detail", "orphan_bytes", "case_dir"):
        assert col in rows[0]
    assert {r["outcome"] for r in rows} <= VOCAB
    assert len({r["state_id"] for r in rows}) == len(rows)
    assert meta["states_total"] == len(rows) and meta["states_per_second"] > 0
    for r in rows:
        if r["case_dir"]:
            case = os.path.join(camp.run_dir, r["case_dir"])
            with open(os.path.join(case, "case.json")) as f:
                cj = json.load(f)
            assert cj["outcome"] == r["outcome"] and Outcome(cj["outcome"]).is_failure
            assert cj["api"] == r["api"] and cj["tensorflow_version"] and "operations" in cj
            assert os.path.isdir(os.path.join(case, "state"))
            assert os.path.isfile(os.path.join(case, "manifests", "gen-3.json"))
        elif Outcome(r["outcome"]).is_failure:
            assert r["similar_case"] or meta["failure_states_over_cap"] > 0


@pytest.fixture(scope="module")
def trace_runs(children, tmp_path_factory, strace_path):
    out = tmp_path_factory.mktemp("trace")
    return {model: run(children, out, "trace", model=model) for model in ("process", "power")}


@pytest.mark.strace
def test_trace_states_cover_the_save_and_power_adds_failures(trace_runs):
    (pcamp, prows, pmeta), (wcamp, wrows, wmeta) = trace_runs["process"], trace_runs["power"]
    _check_rows(pcamp, prows, pmeta)
    _check_rows(wcamp, wrows, wmeta)
    # the process model ends with the complete save and starts with the untouched directory
    assert prows[0]["outcome"] == "rollback"
    assert any(r["outcome"] == "new" for r in prows)
    with open(os.path.join(pcamp.run_dir, "traces", "tf2-manager-ops.json")) as f:
        ops = json.load(f)
    assert any(op["call"] == "rename" for op in ops) and any(op["call"] == "write" for op in ops)
    # power states include the process ones, so it can only find as many failures or more
    p_fail = sum(Outcome(r["outcome"]).is_failure for r in prows)
    w_fail = sum(Outcome(r["outcome"]).is_failure for r in wrows)
    assert len(wrows) > len(prows) and w_fail >= p_fail


@pytest.mark.strace
def test_replay_reproduces_a_case_and_flags_a_tampered_one(trace_runs, children, tmp_path, cli):
    from harness.faults.cases import replay

    camp, rows, _ = trace_runs["power"]
    with_case = sorted((r for r in rows if r["case_dir"]), key=lambda r: r["outcome"] == "lost")
    if not with_case:
        pytest.skip("this TensorFlow left no failing state in the power model: nothing to replay")
    case = os.path.join(camp.run_dir, with_case[0]["case_dir"])
    verdict, recorded = replay(case, checker=children[1])
    assert verdict.outcome.value == recorded["outcome"]
    # tamper with a copy: every checkpoint gone (the outcome becomes lost), exit 1
    tampered = tmp_path / "tampered"
    shutil.copytree(case, tampered)
    for name in os.listdir(tampered / "state"):
        p = tampered / "state" / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    if recorded["outcome"] == "lost":  # then claim something else was recorded
        cj = json.loads((tampered / "case.json").read_text())
        (tampered / "case.json").write_text(json.dumps({**cj, "outcome": "detected"}))
    r = cli("replay", str(tampered), timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DIFFERENT" in r.stdout


@pytest.mark.parametrize("points", [pytest.param("strace", marks=pytest.mark.strace), "polled"])
def test_kill_mode(children, tmp_path, monkeypatch, points):
    from harness.faults import strace

    if points == "polled":   # as on a machine without strace
        monkeypatch.setattr(strace, "available", lambda: None)
    camp, rows, meta = run(children, tmp_path, "kill", trials=3, seed=1)
    _check_rows(camp, rows, meta)
    assert len(rows) == 3
    assert all(r["fault"].startswith("SIG") for r in rows)
    # tf2-manager renames complete files into place: a kill leaves save k or save k-1, never
    # a directory that restores wrong values (silent) or nothing (lost)
    assert {r["outcome"] for r in rows} <= {"new", "rollback"}, [(r["outcome"], r["fault"]) for r in rows]
    notes = meta["per_api"]["tf2-manager"]["notes"]
    if points == "strace":
        assert rows[0]["fault_kind"] == "kill-event"   # the schedule starts at a file event
        assert not notes
    else:
        assert "kill-event" not in {r["fault_kind"] for r in rows}
        assert any("strace not installed" in n for n in notes)


def test_mutate_mode_and_planted_silent_corruption(children, tmp_path):
    camp, rows, meta = run(children, tmp_path, "mutate", trials=2, index_offsets=6)
    _check_rows(camp, rows, meta)
    kinds = {r["fault_kind"] for r in rows}
    assert {"truncate-index", "truncate-data", "bitflip-data", "delete", "state-missing"} <= kinds
    planted = {r["fault_kind"]: r for r in rows if r["fault_kind"].startswith("planted")}
    assert planted["planted-change-value"]["outcome"] == "silent", planted["planted-change-value"]["detail"]
    assert planted["planted-drop-variable"]["outcome"] == "silent", planted["planted-drop-variable"]["detail"]
    # an index cut short is never taken for the real thing
    assert all(r["outcome"] != "new" for r in rows if r["fault_kind"] == "truncate-index")


def test_mutate_tf1_saver_planted_value_is_silent(children, tmp_path):
    camp, rows, meta = run(children, tmp_path, "mutate", api="tf1-saver", trials=1, index_offsets=2)
    _check_rows(camp, rows, meta)
    change = next(r for r in rows if r["fault_kind"] == "planted-change-value")
    assert change["outcome"] == "silent"


@pytest.mark.parametrize("method", [pytest.param("tmpfs", marks=pytest.mark.tmpfs), "rlimit"])
def test_diskfull_mode_error_is_clear_and_previous_checkpoint_survives(children, tmp_path, monkeypatch, method):
    from harness.faults import diskfull

    if method == "rlimit":
        monkeypatch.setattr(diskfull, "can_mount", lambda: False)
    camp, rows, meta = run(children, tmp_path, "diskfull", trials=2, seed=3)
    _check_rows(camp, rows, meta)
    starved = rows[0]   # the first fraction leaves well under half a checkpoint of room
    assert starved["note"].startswith("save raised"), starved["note"]
    assert starved["outcome"] == "rollback", starved["detail"]
    assert meta["diskfull_method"] == method
    assert all(r["fault_kind"] == f"diskfull-{method}" for r in rows)
    with open("/proc/mounts") as f:
        assert camp.run_dir not in f.read()
    assert not diskfull._mounted


def test_checker_turns_a_dead_or_stuck_restore_into_crash_and_hang(children, tmp_path):
    import signal

    from harness.faults.checker import Checker
    from harness.faults.state import DirImage
    from harness.faults.target import CrashTarget

    zygote, _ = children
    target = CrashTarget("tf2-manager", SPEC)
    state, manifests = str(tmp_path / "state"), str(tmp_path / "manifests")
    trial = zygote.fork(target)
    try:
        trial.prepare(state, manifests)
        trial.start_save(state)
        assert trial.result()["ok"]
    finally:
        trial.finish()
    img = DirImage.load(state)
    digests = {p: img.prefix_digest(p) for p in img.prefixes()}
    with Checker(str(tmp_path / "checker.log"), timeout=60) as checker:
        checker.start()
        os.killpg(checker.proc.pid, signal.SIGKILL)          # the restoring process dies
        verdict, _ = checker.check(target, state, manifests, digests)
        assert verdict.outcome is Outcome.CRASH and "SIGKILL" in verdict.detail
        checker.start()                                        # a fresh worker replaces it
        checker.timeout = 1e-4                                 # ... which cannot answer in time
        verdict, _ = checker.check(target, state, manifests, digests)
        assert verdict.outcome is Outcome.HANG
        checker.timeout = 60
        verdict, _ = checker.check(target, state, manifests, digests)
        assert verdict.outcome is Outcome.NEW and checker.restarts == 2
