"""Rates as the harness itself reports them: GB/s and fraction of the disk
roofline (from harness.phases.run_scenario), the harness's overhead over a
bare Checkpoint.write loop, and crash states checked per second."""

import itertools
import os
import tempfile

from .common import (GRID_NAMES, GRID_PARAMS, LARGE, N_VARS, SIZES, gpu_skips, median, require_device,
                     scenario, skip_gpu_without_gpu)

REPEATS = 3


def _run_grid() -> dict:
    """phases rows of every runnable grid combination, or the error that stopped it."""
    from harness.phases import run_scenario

    skipped = set(gpu_skips(GRID_PARAMS, GRID_NAMES))
    out = {}
    for combo in itertools.product(*GRID_PARAMS):
        if combo in skipped:
            continue
        workdir = tempfile.mkdtemp(prefix="ckpt-bench-", dir=os.environ.get("CKPT_BENCH_DIR"))
        try:
            out[combo] = run_scenario(scenario(*combo), workdir, REPEATS)  # removes workdir
        except Exception as e:  # one broken scenario fails its own benchmarks only
            out[combo] = f"{type(e).__name__}: {e}"
    return out


def _median_of(grid, combo, phase, column) -> float:
    rows = grid[combo]
    if isinstance(rows, str):
        raise RuntimeError(rows)
    values = [r[column] for r in rows if r["phase"] == phase and r.get(column) not in (None, "")]
    if not values:
        raise RuntimeError(f"the harness recorded no {column} for {phase}")
    return median(values)


class Throughput:
    """One process runs the whole grid (one TensorFlow start-up); each track_ reads its figure."""

    params = GRID_PARAMS
    param_names = GRID_NAMES
    rounds = 1
    timeout = 7200 if LARGE else 900

    def setup_cache(self):
        return _run_grid()

    def setup(self, grid, api, state_size, n_vars, device):
        require_device(device)

    @skip_gpu_without_gpu()
    def track_save_gbps(self, grid, *combo):
        return _median_of(grid, combo, "save", "gbps")
    track_save_gbps.unit = "GB/s"

    @skip_gpu_without_gpu()
    def track_restore_cold_gbps(self, grid, *combo):
        return _median_of(grid, combo, "restore_cold", "gbps")
    track_restore_cold_gbps.unit = "GB/s"

    @skip_gpu_without_gpu()
    def track_save_durable_roofline_fraction(self, grid, *combo):
        """Durable save GB/s over raw write + fsync GB/s of the same bytes in the same directory."""
        return _median_of(grid, combo, "save_durable", "roofline_fraction")
    track_save_durable_roofline_fraction.unit = "fraction of roofline"

    @skip_gpu_without_gpu()
    def track_restore_cold_roofline_fraction(self, grid, *combo):
        """Cold restore GB/s over a cold raw read of the same bytes."""
        return _median_of(grid, combo, "restore_cold", "roofline_fraction")
    track_restore_cold_roofline_fraction.unit = "fraction of roofline"


class Overhead:
    """Save time the harness reports over a bare Checkpoint.write loop (tf2-checkpoint, CPU)."""

    params = [SIZES, N_VARS]
    param_names = ["state_size", "n_vars"]
    rounds = 1
    timeout = 3600 if LARGE else 600

    def track_overhead_ratio(self, state_size, n_vars):
        from harness.session import overhead_ratio

        spec = scenario("tf2-checkpoint", state_size, n_vars, "cpu").spec
        workdir = tempfile.mkdtemp(prefix="ckpt-bench-", dir=os.environ.get("CKPT_BENCH_DIR"))
        return overhead_ratio(spec, repeats=7, workdir=workdir)  # the session removes workdir
    track_overhead_ratio.unit = "harness/bare"


class CrashStates:
    """Crash states judged per second by a small crash campaign (trace mode; mutate without strace)."""

    params = [["tf2-manager"]]
    param_names = ["api"]
    rounds = 1
    timeout = 900

    def track_crash_states_per_second(self, api):
        from harness.faults.bench import states_per_second

        return states_per_second(api=api)
    track_crash_states_per_second.unit = "states/s"
