"""What the timed regions contain, and that no figure is recorded for an incomplete restore.

Real TensorFlow in this process. A restore that restores nothing is planted by
replacing the harness adapter's `restore` with a no-op (TensorFlow itself is not
touched): the poisoned state stays, and the oracle must say so.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ResourceError
from harness.savers.tf2 import TF2Checkpoint
from harness.specs import GraphSpec, layout, values

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the asv suite is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_phases, bench_rates, common  # noqa: E402

SIZE, N_VARS = "256KiB", 8
COMBO = ("tf2-checkpoint", SIZE, N_VARS, "cpu")


@pytest.fixture
def bench_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CKPT_BENCH_DIR", str(tmp_path))
    yield tmp_path
    for s in common._SESSIONS.values():
        s.close()
    common._SESSIONS.clear()


@pytest.fixture
def restores_nothing(monkeypatch):
    monkeypatch.setattr(TF2Checkpoint, "restore", lambda self, path: None)


def asv_sample(cls, method: str, params=COMBO):
    """One sample as asv runs it: setup, the timed method, teardown."""
    bench = cls()
    bench.setup(*params)
    try:
        getattr(bench, method)(*params)
    finally:
        if hasattr(bench, "teardown"):
            bench.teardown(*params)


# -- restore benchmarks raise instead of timing an incomplete restore -----------------
@pytest.mark.parametrize("cls, method", [(bench_phases.Restore, "time_restore_warm"),
                                         (bench_phases.RestoreCold, "time_restore_cold"),
                                         (bench_phases.Restore, "peakmem_restore")])
def test_restore_benchmark_raises_when_nothing_was_restored(bench_dir, restores_nothing, cls, method):
    with pytest.raises(RuntimeError, match="restore not complete: mismatch"):
        asv_sample(cls, method)


def test_restore_benchmark_passes_a_complete_restore(bench_dir):
    asv_sample(bench_phases.Restore, "time_restore_warm")
    asv_sample(bench_phases.RestoreCold, "time_restore_cold")


# -- the Throughput tracks raise with the verdict, not with "no gbps" -----------------
def _grid(tmp_path):
    from harness.phases import run_scenario

    return {COMBO: run_scenario(common.scenario(*COMBO), str(tmp_path / "run"), repeats=1)}


TRACKS = ["track_save_gbps", "track_restore_cold_gbps", "track_save_durable_roofline_fraction",
          "track_restore_cold_roofline_fraction"]


def test_throughput_tracks_raise_with_the_verdict_of_an_incomplete_restore(tmp_path, restores_nothing):
    grid = _grid(tmp_path)
    for track in TRACKS:
        with pytest.raises(RuntimeError, match=r"worst mismatch .*differ from the save"):
            getattr(bench_rates.Throughput(), track)(grid, *COMBO)


def test_throughput_tracks_report_a_complete_run(tmp_path):
    grid = _grid(tmp_path)
    for track in TRACKS:
        assert getattr(bench_rates.Throughput(), track)(grid, *COMBO) > 0


# -- save: the timed function is the API call, preparation and manifest are not ---------
def test_save_benchmark_times_only_the_api_call(bench_dir, monkeypatch):
    import harness.session as session_mod

    log = []
    real_save, real_rmtree, real_from_adapter = TF2Checkpoint.save, shutil.rmtree, session_mod.Manifest.from_adapter
    monkeypatch.setattr(TF2Checkpoint, "save", lambda self, d: (log.append("api"), real_save(self, d))[1])
    monkeypatch.setattr(session_mod.shutil, "rmtree", lambda *a, **k: (log.append("rmtree"), real_rmtree(*a, **k)))
    monkeypatch.setattr(os, "sync", lambda: log.append("sync"))
    monkeypatch.setattr(session_mod.Manifest, "from_adapter",
                        classmethod(lambda cls, *a, **k: (log.append("fingerprint"), real_from_adapter(*a, **k))[1]))
    for method in ("time_save", "time_save", "time_save_durable"):
        bench = bench_phases.Save()
        bench.setup(*COMBO)
        log.append("[")
        getattr(bench, method)(*COMBO)
        log.append("]")
        if hasattr(bench, "teardown"):
            bench.teardown(*COMBO)
    timed = " ".join(log).split("[ ")[1:]
    assert [t.split(" ]")[0] for t in timed] == ["api"] * 3, log
    # a sample's preparation: the previous save removed, then os.sync (in that order)
    starts = [i for i, e in enumerate(log) if e == "["]
    assert all(log[i - 2:i] == ["rmtree", "sync"] for i in starts[1:]), log
    assert log.count("fingerprint") == 1, log  # once per state, in a teardown
    assert common._SESSIONS[COMBO].manifest is not None


def test_worker_save_removes_then_syncs_then_calls_the_api(tmp_path, monkeypatch):
    """The order matters: a removal left to the journal during the timed write slowed it."""
    import harness.session as session_mod
    from harness.phases import run_scenario

    log = []
    real_save, real_rmtree = TF2Checkpoint.save, shutil.rmtree
    monkeypatch.setattr(TF2Checkpoint, "save", lambda self, d: (log.append("api"), real_save(self, d))[1])
    monkeypatch.setattr(session_mod.shutil, "rmtree",
                        lambda p, *a, **k: (log.append("rmtree") if "save-" in str(p) else None,
                                            real_rmtree(p, *a, **k)))
    real_sync = os.sync
    monkeypatch.setattr(os, "sync", lambda: (log.append("sync"), real_sync()))
    rows = run_scenario(common.scenario(*COMBO), str(tmp_path / "w"), repeats=2)
    saves = [i for i, e in enumerate(log) if e == "api"]
    # one untimed warm-up save, then one per repeat
    assert len(saves) == 3 and len([r for r in rows if r["phase"] == "save"]) == 2
    for i in saves[1:]:
        assert log[i - 2:i] == ["rmtree", "sync"], log


def test_worker_build_phase_leaves_out_dropping_the_previous_model(tmp_path, monkeypatch):
    """Freeing the last repeat's variables (seconds at 100,000) is not building the next model."""
    import time

    from harness.phases import run_scenario

    real_close = TF2Checkpoint.close
    slow = 3.0   # a planted slow drop
    monkeypatch.setattr(TF2Checkpoint, "close", lambda self: (time.sleep(slow), real_close(self))[1])
    events = []
    run_scenario(common.scenario(*COMBO), str(tmp_path / "w"), repeats=2, progress=events.append, warmup=False)
    builds = [e for e in events if e.get("phase") == "build"]
    assert len(builds) == 2
    # repeat 1 drops the model of repeat 0: a slow drop must not show in the build's wall time
    # (the wall time over the timed build is the phase's untimed part: here the Sampler only)
    assert builds[1]["wall_seconds"] - builds[1]["seconds"] < slow, builds


def test_worker_restore_phase_leaves_out_the_oracles_poisoning(tmp_path, monkeypatch):
    """Poisoning is the oracle's guard: reported apart as its own step, not in the restore phase."""
    import time

    from harness.phases import run_scenario

    real_poison = TF2Checkpoint.poison
    slow = 3.0   # a planted slow poisoning
    monkeypatch.setattr(TF2Checkpoint, "poison", lambda self: (time.sleep(slow), real_poison(self))[1])
    events = []
    rows = run_scenario(common.scenario(*COMBO), str(tmp_path / "w"), repeats=1, progress=events.append,
                        warmup=False)
    for phase in ("restore_warm", "restore_cold"):
        ev = next(e for e in events if e.get("phase") == phase and e["event"] == "phase")
        assert ev["wall_seconds"] - ev["seconds"] < slow, ev
        poison = next(e for e in events if e["event"] == "oracle" and e.get("phase") == phase)
        assert poison["step"] == "poison" and poison["wall_seconds"] >= slow, poison
        # still poisoned before the call: the restore is judged against the saved values
        assert next(r for r in rows if r["phase"] == phase)["outcome"] == "complete"


# -- crash-state rate: no silent change of mode ----------------------------------------
def test_states_per_second_refuses_trace_without_strace(monkeypatch):
    from harness.faults import bench, strace

    monkeypatch.setattr(strace, "available", lambda: None)
    with pytest.raises(ResourceError, match="strace"):
        bench.states_per_second(mode="trace")
    with pytest.raises(common.SkipNotImplemented):
        bench_rates.CrashStates().setup("tf2-manager", "trace")
    bench_rates.CrashStates().setup("tf2-manager", "mutate")  # mutate needs no strace
    with pytest.raises(common.SkipNotImplemented):
        bench_rates.CrashStatesLarge().setup("tf2-manager", "256MiB")


# -- asv params: literal, append-only, complete ----------------------------------------
RECORDED_APIS = ["tf2-checkpoint", "tf2-restore-on-create", "tf2-manager", "tf1-saver", "keras-weights",
                 "keras-model", "keras-modelcheckpoint", "savedmodel", "tf2-sharded", "async-checkpoint"]


def test_benchmark_apis_keep_the_recorded_order_and_cover_every_adapter():
    from harness.savers import API_NAMES

    # the committed asv history (results/asv) was recorded with these, in this order
    assert common.ALL_APIS[:len(RECORDED_APIS)] == RECORDED_APIS
    assert set(API_NAMES) <= set(common.ALL_APIS), "append a new adapter to benchmarks/common.py ALL_APIS"


# -- the bare script builds what the harness builds --------------------------------------
def _bare_module():
    spec = importlib.util.spec_from_file_location("bare_save", ROOT / "scripts" / "bare_save.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("mix", ["mixed", "few-large", "many-small"])
def test_bare_script_has_the_harness_variables_and_values(mix):
    bare = _bare_module()
    spec = GraphSpec(n_vars=150, state_bytes=3 << 20, shape_mix=mix, seed=5)
    harness_vars = layout(spec)
    assert bare.layout(150, 3 << 20, mix, 5) == [(v.name, v.shape) for v in harness_vars]
    for v in harness_vars[::17]:
        assert np.array_equal(bare.values(v.name, v.shape, 5), values(v, 5))


def test_bare_script_imports_no_harness():
    tree = ast.parse((ROOT / "scripts" / "bare_save.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "harness" not in imported and imported <= set(sys.stdlib_module_names) | {"numpy", "tensorflow"}


# -- layering: what measures the harness sits above it -----------------------------------
@pytest.mark.parametrize("module", ["session.py", "phases.py", "telemetry/sampler.py"])
def test_lower_modules_do_not_import_the_overhead_module(module):
    tree = ast.parse((ROOT / "harness" / module).read_text())
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [n for n in names if n.split(".")[-1] == "overhead"], names


@pytest.mark.timeout(300)
def test_strategy_benchmark_records_nothing_for_a_round_that_is_not_complete(tmp_path, monkeypatch):
    """bench_strategies' figures come from real cluster rounds (here `none`: one task process).
    A round judged against values the tasks do not hold (the manifest of another save, planted in
    the harness process) must give no figure: strategy_timings says why, the track raises."""
    from benchmarks import bench_strategies
    from harness.distributed import run as dist_run
    from harness.judge.manifest import Manifest

    monkeypatch.setenv("CKPT_BENCH_DIR", str(tmp_path))
    good = common.strategy_timings("none", "64KiB", 4, 1)
    assert isinstance(good, dict) and good["save"] > 0 and good["restore"] > 0, good

    spec = GraphSpec(n_vars=4, state_bytes=64 * 1024)
    monkeypatch.setattr(dist_run.Manifest, "load",
                        staticmethod(lambda _path: Manifest.expected(layout(spec), spec.seed, 7)))
    bad = common.strategy_timings("none", "64KiB", 4, 1)
    assert isinstance(bad, str) and "round 0 was mismatch" in bad, bad
    bench = bench_strategies.Strategies()
    with pytest.raises(RuntimeError, match="mismatch"):
        bench.track_save_seconds({("none", "64KiB"): bad}, "none", "64KiB")
    assert os.listdir(tmp_path) == []   # the cluster's work dirs are gone either way
