"""The terminal summary of a run: median, min and max per scenario and phase."""

from __future__ import annotations

import pandas as pd

from .outcomes import worst
from .results import PHASES, ROOFLINE_PHASES

_ORDER = {p: i for i, p in enumerate(PHASES + ROOFLINE_PHASES)}


def _worst(outcomes) -> str:
    found = worst(o for o in outcomes if isinstance(o, str))
    return found.value if found else ""


def summarize(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in ("gbps", "roofline_fraction", "outcome"):
        if col not in df:
            df[col] = None
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce")
    df["gbps"] = pd.to_numeric(df["gbps"], errors="coerce")
    df["roofline_fraction"] = pd.to_numeric(df["roofline_fraction"], errors="coerce")
    g = df.groupby(["scenario", "phase"], sort=False)
    out = g.agg(median_s=("seconds", "median"), min_s=("seconds", "min"), max_s=("seconds", "max"),
                gbps=("gbps", "median"), roofline=("roofline_fraction", "median"),
                outcome=("outcome", _worst)).reset_index()
    out["_o"] = out["phase"].map(_ORDER)
    return out.sort_values(["scenario", "_o"], kind="stable").drop(columns="_o")


def suspect_lines(rows: list[dict]) -> list[str]:
    """One warning per scenario and phase with a throughput above its roofline."""
    seen = {}
    for r in rows:
        if r.get("suspect"):
            seen.setdefault((r["scenario"], r["phase"], r["suspect"]), []).append(r.get("roofline_fraction"))
    return [f"warning: {sc} {phase}: {max(f)*100:.0f}% of its roofline ({flag.split(':', 1)[1]}) in "
            f"{len(f)} repeat(s): faster than the disk measured the same way (page cache, or less work than claimed)"
            for (sc, phase, flag), f in seen.items()]


def print_summary(rows: list[dict]) -> None:
    table = summarize(rows)
    fmt = {"median_s": "{:.4f}".format, "min_s": "{:.4f}".format, "max_s": "{:.4f}".format,
           "gbps": lambda v: "" if pd.isna(v) else f"{v:.3f}",
           "roofline": lambda v: "" if pd.isna(v) else f"{v:.0%}"}
    for scenario, part in table.groupby("scenario", sort=False):
        print(f"\n{scenario}")
        print(part.drop(columns="scenario").to_string(index=False, formatters=fmt))
    for line in suspect_lines(rows):
        print(line)
