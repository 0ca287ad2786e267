"""Rates as the harness itself reports them: GB/s and fraction of the disk
roofline (from harness.phases.run_scenario), the harness's save time over a
bare TensorFlow script's (separate processes, harness.overhead), and crash
states checked per second."""

import itertools
import os
import tempfile

from .common import (GRID_NAMES, GRID_PARAMS, LARGE, SkipNotImplemented, bare_script, check_rows, gpu_skips,
                     median, require_device, scenario, skip_gpu_without_gpu)

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
    rows = check_rows(grid[combo])  # raises when any restore of the combination was incomplete
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


class SaveOverhead:
    """The harness's save over a bare TensorFlow script's Checkpoint.write (tf2-checkpoint, CPU),
    each side in its own process, alternating (harness.overhead.compare_save)."""

    params = [["64MiB"], [64]]
    param_names = ["state_size", "n_vars"]
    rounds = 1
    timeout = 1800

    def setup_cache(self):
        from harness.overhead import compare_save

        out = {}
        for size, n_vars in itertools.product(*self.params):
            try:
                out[(size, n_vars)] = compare_save(size, n_vars, rounds=2, repeats=3, script=bare_script(),
                                                   workdir=os.environ.get("CKPT_BENCH_DIR"))
            except FileNotFoundError as e:  # the suite runs without the checkout's scripts/
                out[(size, n_vars)] = e
            except Exception as e:  # e.g. an incomplete restore: that combination fails, loudly
                out[(size, n_vars)] = f"{type(e).__name__}: {e}"
        return out

    def _get(self, res, state_size, n_vars, key):
        got = res[(state_size, n_vars)]
        if isinstance(got, FileNotFoundError):
            raise SkipNotImplemented(str(got))
        if isinstance(got, str):
            raise RuntimeError(got)
        return got[key]

    def track_save_reported_over_bare(self, res, state_size, n_vars):
        """Median save the harness reports / median bare Checkpoint.write."""
        return self._get(res, state_size, n_vars, "reported_ratio")
    track_save_reported_over_bare.unit = "harness/bare"

    def track_save_phase_wall_over_bare(self, res, state_size, n_vars):
        """Median wall time of the harness's whole save phase / median bare Checkpoint.write."""
        return self._get(res, state_size, n_vars, "phase_wall_ratio")
    track_save_phase_wall_over_bare.unit = "harness/bare"

    def track_save_cpu_over_bare(self, res, state_size, n_vars):
        """Median process CPU seconds of the harness's saves / of the bare writes (steadier than
        wall time on a loaded machine; the harness's side includes its sampler thread)."""
        return self._get(res, state_size, n_vars, "cpu_ratio")
    track_save_cpu_over_bare.unit = "harness/bare"


class CrashStates:
    """Crash states judged per second by a small crash campaign, per mode (trace needs strace)."""

    params = [["tf2-manager"], ["trace", "mutate"]]
    param_names = ["api", "mode"]
    rounds = 1
    timeout = 900

    def setup(self, api, mode):
        from harness.faults import strace

        if mode == "trace" and strace.available() is None:
            raise SkipNotImplemented("trace mode needs strace (apt-get install -y strace)")

    def track_crash_states_per_second(self, api, mode):
        from harness.faults.bench import states_per_second

        return states_per_second(api=api, mode=mode)
    track_crash_states_per_second.unit = "states/s"


class CrashStatesLarge:
    """The same at a real size: a trace campaign (power model) over a 256 MiB tf2-manager
    checkpoint, 16 variables. Its large files are extents on disk (harness/faults/content.py);
    the states inside one run of writes are judged on a sample (docs/crash.md). The rate counts
    judged states only; the time includes assembling each judged state in a scratch folder
    (copy_file_range of the pieces that are not whole files) and the restores it needs."""

    params = [["tf2-manager"], ["256MiB"]]
    param_names = ["api", "size"]
    rounds = 1
    timeout = 1200

    def setup(self, api, size):
        from harness.faults import strace

        if strace.available() is None:
            raise SkipNotImplemented("trace mode needs strace (apt-get install -y strace)")

    def track_crash_states_per_second(self, api, size):
        from harness.faults.bench import states_per_second

        return states_per_second(api=api, mode="trace", model="power", size=size)
    track_crash_states_per_second.unit = "states/s"

