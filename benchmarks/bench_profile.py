"""The cost model of `ckpt-harness profile` per API: fixed cost, cost per variable and the GB/s
asymptote of save and cold restore, fitted (harness.profile) from a small literal grid that one
setup_cache process runs with harness.phases.run_scenario, as `profile` runs each point.

The grid is small on purpose (the suite runs once per TensorFlow version): 2 sizes x 2 variable
counts x 2 repeats per API, about 5-10 s per API on 2 cores. Its terms are for comparing
TensorFlow versions, not the large-state figures `ckpt-harness profile` gives."""

import itertools
import os
import tempfile

from .common import APIS, SkipNotImplemented, check_rows

SIZES = ["2MiB", "16MiB"]
N_VARS = [4, 64]
REPEATS = 2


def _fit_all() -> dict:
    """api -> {op: profile-fit row}, or the error that stopped that API."""
    from harness.phases import run_scenario
    from harness.profile.sweep import points, roofline_gbps
    from harness.profile.terms import fit_rows

    from .common import scenario

    out = {}
    for api in APIS:
        try:
            rows = []
            for size, n_vars in itertools.product(SIZES, N_VARS):
                workdir = tempfile.mkdtemp(prefix="ckpt-bench-", dir=os.environ.get("CKPT_BENCH_DIR"))
                rows += check_rows(run_scenario(scenario(api, size, n_vars, "cpu"), workdir, REPEATS))
            fits = fit_rows("asv", api, points(rows), roofline_gbps(rows), at_vars=max(N_VARS))
            out[api] = {f["op"]: f for f in fits}
        except Exception as e:  # one broken API fails its own benchmarks only
            out[api] = f"{type(e).__name__}: {e}"
    return out


def _term(fits, api, op, key, scale=1.0) -> float:
    got = fits[api]
    if isinstance(got, str):
        raise RuntimeError(got)
    row = got[op]
    if row.get("note"):
        raise RuntimeError(f"{api} {op}: {row['note']}")
    if row.get(key) is None:   # the gbps asymptote of a per-byte term the points did not show
        raise SkipNotImplemented(f"{api} {op}: {key} not identified (per-byte term clamped to 0)")
    return float(row[key]) * scale


class CostModel:
    """t = fixed + per_variable x n_vars + per_byte x bytes, per API (CPU)."""

    params = [APIS]
    param_names = ["api"]
    rounds = 1
    timeout = 900

    def setup_cache(self):
        return _fit_all()

    def track_save_fixed_ms(self, fits, api):
        return _term(fits, api, "save", "fixed_seconds", 1e3)
    track_save_fixed_ms.unit = "ms"

    def track_save_us_per_var(self, fits, api):
        return _term(fits, api, "save", "per_var_seconds", 1e6)
    track_save_us_per_var.unit = "us/variable"

    def track_save_gbps_asymptote(self, fits, api):
        return _term(fits, api, "save", "gbps_asymptote")
    track_save_gbps_asymptote.unit = "GB/s"

    def track_restore_cold_fixed_ms(self, fits, api):
        return _term(fits, api, "restore_cold", "fixed_seconds", 1e3)
    track_restore_cold_fixed_ms.unit = "ms"

    def track_restore_cold_us_per_var(self, fits, api):
        return _term(fits, api, "restore_cold", "per_var_seconds", 1e6)
    track_restore_cold_us_per_var.unit = "us/variable"

    def track_restore_cold_gbps_asymptote(self, fits, api):
        return _term(fits, api, "restore_cold", "gbps_asymptote")
    track_restore_cold_gbps_asymptote.unit = "GB/s"
