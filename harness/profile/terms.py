"""Per API and operation: the fitted terms as a profile-fit.csv row (asymptote, its fraction of
the roofline of the same run, fit quality, the dominant term at 64 MiB and 1 GiB)."""

from __future__ import annotations

import statistics

from . import fit as fitmod
from .sweep import OPS, Point

# the state sizes whose dominant term is named (the two questions)
DOMINANT_AT = {"64MiB": 64 * 2**20, "1GiB": 2**30}


def _measured(used: list[Point], roofline: float | None) -> str:
    """What the points say without a fit: median seconds and GB/s, and that GB/s over the roofline."""
    if not used:
        return ""
    seconds = statistics.median(p.seconds for p in used)
    gbps = statistics.median(p.state_bytes / p.seconds / 1e9 for p in used)
    frac = f", {gbps / roofline:.0%} of the roofline" if roofline else ""
    return f"; measured: median {seconds:.3f} s over {len(used)} point(s), {gbps:.3f} GB/s{frac}"


def fit_rows(run_id: str, api: str, pts: list[Point], raw: dict[str, float], at_vars: int) -> list[dict]:
    """One profile-fit.csv row per operation of `api`; fills in each used point's fitted time and
    residual. `raw` is the roofline GB/s per raw phase (sweep.roofline_gbps)."""
    out = []
    for op, raw_phase in OPS.items():
        mine = [p for p in pts if p.api == api and p.op == op]
        used = [p for p in mine if p.included]
        row = {"run_id": run_id, "api": api, "op": op, "n_points": len(used), "n_excluded": len(mine) - len(used),
               "roofline_phase": raw_phase, "roofline_gbps": raw.get(raw_phase), "at_vars": at_vars}
        why = fitmod.identifiable([p.n_vars for p in used], [p.state_bytes for p in used]) if used else "no points"
        if why:
            row["note"] = f"not fitted: {why}" + _measured(used, raw.get(raw_phase))
            out.append(row)
            continue
        f = fitmod.fit([p.n_vars for p in used], [p.state_bytes for p in used], [p.seconds for p in used])
        for p, res in zip(used, f.residual_pct):
            p.fitted = float(f.predict(p.n_vars, p.state_bytes))
            p.residual_pct = res
        row.update(fixed_seconds=f.fixed, per_var_seconds=f.per_var, per_byte_seconds=f.per_byte,
                   gbps_asymptote=f.gbps_asymptote, r2=f.r2, median_abs_residual_pct=f.median_abs_residual_pct,
                   max_abs_residual_pct=f.max_abs_residual_pct, clamped=" ".join(f.clamped))
        if raw.get(raw_phase) and f.gbps_asymptote:
            row["roofline_fraction"] = f.gbps_asymptote / raw[raw_phase]
        for label, nbytes in DOMINANT_AT.items():
            term, share = f.dominant(at_vars, nbytes)
            row[f"dominant_{label}"], row[f"dominant_{label}_share"] = term, share
        out.append(row)
    return out


