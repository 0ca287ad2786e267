"""The sweep: state size x variable count per API, each point an ordinary scenario run by the
runner's worker (harness/runner.py, harness/worker.py, harness/phases.py time everything;
nothing is timed here), then the points of each operation and the roofline of the same run."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass

from ..outcomes import Outcome, worst
from ..session import Scenario
from ..specs import GraphSpec

# operation -> the roofline phase of the same run it is compared with
OPS = {"save": "raw_write", "save_durable": "raw_write_durable", "restore_cold": "raw_read_cold"}


def grid_specs(sizes, n_vars_list, shape_mix: str, seed: int) -> list[GraphSpec]:
    """One synthetic spec per size x variable count (GraphSpec validates each)."""
    return [GraphSpec(n_vars=n, state_bytes=size, shape_mix=shape_mix, seed=seed)
            for size, n in itertools.product(sizes, n_vars_list)]


def model_specs(names, seed: int) -> list[GraphSpec]:
    """One spec per real model layout (its variable count and size are the model's)."""
    return [GraphSpec(model=name, seed=seed) for name in dict.fromkeys(names)]


def plan(apis, device: str, specs: list[GraphSpec]) -> list[Scenario]:
    """One scenario per API x spec, the APIs outermost (each API's points run together)."""
    return [Scenario(api, device, spec) for api, spec in itertools.product(apis, specs)]


@dataclass
class Point:
    api: str
    op: str
    n_vars: int
    state_bytes: int
    repeat: int
    seconds: float
    outcome: str        # worst restore/verify verdict of that repeat ("" if none was judged)
    included: bool      # used by the fit: a finite time and a repeat whose verdicts were all complete
    nominal_bytes: int = 0   # the size asked for (state_bytes is what the layout holds: a bit less)
    fitted: float | None = None
    residual_pct: float | None = None

    def as_row(self) -> dict:
        return {"api": self.api, "op": self.op, "n_vars": self.n_vars, "state_bytes": self.state_bytes,
                "nominal_bytes": self.nominal_bytes, "fitted_seconds": self.fitted,
                "residual_pct": self.residual_pct,
                "repeat": self.repeat, "seconds": self.seconds, "outcome": self.outcome,
                "included": int(self.included)}


def repeat_outcomes(rows: list[dict]) -> dict[tuple[str, int], str]:
    """(scenario, repeat) -> the worst restore/verify verdict of that repeat of that scenario."""
    found: dict[tuple[str, int], list[str]] = {}
    for r in rows:
        if r.get("outcome") not in (None, ""):
            found.setdefault((r["scenario"], int(r["repeat"])), []).append(r["outcome"])
    return {key: worst(words).value for key, words in found.items()}


def points(rows: list[dict], nominal: dict[str, int] | None = None) -> list[Point]:
    """The fit's points from phase rows (any number of scenarios): one per operation, scenario and repeat.

    A repeat whose restore or verify was not judged `complete` is excluded for every operation
    (its save cannot be trusted to have written what the restore was compared with either), and
    so is a repeat with no verdict at all. `nominal` maps scenario names to the size asked for.
    """
    verdicts = repeat_outcomes(rows)
    out = []
    for r in rows:
        if r["phase"] not in OPS:
            continue
        rep = int(r["repeat"])
        outcome = verdicts.get((r["scenario"], rep), "")
        s = float(r["seconds"]) if r.get("seconds") not in (None, "") else float("nan")
        ok = outcome == Outcome.COMPLETE.value and s == s and s > 0
        out.append(Point(r["api"], r["phase"], int(r["n_vars"]), int(r["state_bytes"]), rep, s, outcome, ok,
                         (nominal or {}).get(r["scenario"], int(r["state_bytes"]))))
    return out


def roofline_gbps(rows: list[dict]) -> dict[str, float]:
    """Median GB/s of each raw phase at the largest state size of these rows (the asymptote the
    per-byte term is compared with; small raw transfers are dominated by their own overheads)."""
    if not rows:
        return {}
    top = max(int(r["state_bytes"]) for r in rows)
    out = {}
    for raw in set(OPS.values()):
        vals = [float(r["gbps"]) for r in rows
                if r["phase"] == raw and int(r["state_bytes"]) == top and r.get("gbps") not in (None, "")]
        if vals:
            out[raw] = statistics.median(vals)
    return out
