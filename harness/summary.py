"""The terminal summary of a run: median, min and max per scenario and phase."""

from __future__ import annotations

import pandas as pd

from .outcomes import Outcome
from .results import PHASES, ROOFLINE_PHASES

_ORDER = {p: i for i, p in enumerate(PHASES + ROOFLINE_PHASES)}


def _worst(outcomes) -> str:
    words = [o for o in outcomes if isinstance(o, str) and o]
    return max(words, key=lambda w: Outcome(w).severity) if words else ""


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


def print_summary(rows: list[dict]) -> None:
    table = summarize(rows)
    fmt = {"median_s": "{:.4f}".format, "min_s": "{:.4f}".format, "max_s": "{:.4f}".format,
           "gbps": lambda v: "" if pd.isna(v) else f"{v:.3f}",
           "roofline": lambda v: "" if pd.isna(v) else f"{v:.0%}"}
    for scenario, part in table.groupby("scenario", sort=False):
        print(f"\n{scenario}")
        print(part.drop(columns="scenario").to_string(index=False, formatters=fmt))
