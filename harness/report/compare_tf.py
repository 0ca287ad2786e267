"""`compare-tf`: one table of asv results, benchmark x TensorFlow version.

asv compares commits; this compares environments. For each machine,
benchmark and parameter combination it takes the newest result of every
TensorFlow version and divides it by the result of the baseline version
(default: the oldest). For time_/peakmem_ a ratio above 1 is worse; for
track_ throughputs (GB/s) above 1 is better.
"""

from __future__ import annotations

import math
import re

from ..errors import UsageError

KEY_COLUMNS = ["machine", "benchmark", "params", "unit"]


def version_key(version: str):
    """Sort 2.9 before 2.17, unpinned environments last."""
    parts = re.findall(r"\d+|[^\d.]+", version)
    return (not re.match(r"^\d", version),
            [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts])


def sorted_versions(versions) -> list[str]:
    return sorted(set(versions), key=version_key)


def newest_per_version(long):
    """One value per machine x benchmark x params x TF version: the newest non-NaN."""
    valid = long.dropna(subset=["value"]).sort_values(["date", "commit"], na_position="first")
    return valid.groupby(KEY_COLUMNS + ["tf_version"], sort=False, dropna=False).tail(1)


def compare_table(long, baseline: str | None = None):
    """Wide table: KEY_COLUMNS, one value column per TF version, then ratio columns.

    Returns (table, versions, baseline).
    """
    import pandas as pd

    versions = sorted_versions(long["tf_version"])
    if baseline is None:
        baseline = versions[0]
    elif baseline not in versions:
        raise UsageError(f"baseline TensorFlow {baseline} has no results; have: {', '.join(versions)}")
    newest = newest_per_version(long)
    if newest.empty:
        raise UsageError("the asv results hold no successful benchmark values")
    wide = newest.set_index(KEY_COLUMNS + ["tf_version"])["value"].unstack("tf_version")
    wide = wide.reindex(columns=[v for v in versions if v in wide.columns])
    table = wide.reset_index()
    table.columns.name = None
    for v in versions:
        if v not in table.columns:
            table[v] = math.nan
    for v in versions:
        base = table[baseline]
        table[f"ratio_{v}"] = (table[v] / base).where(base.notna() & (base != 0))
    table = table.sort_values(["machine", "benchmark", "params"], kind="stable").reset_index(drop=True)
    return pd.DataFrame(table), versions, baseline


def _format_value(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "seconds":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{suffix}"
        return f"{value * 1e9:.3g}ns"
    if unit == "bytes":
        return f"{value / 2**20:.1f}MiB"
    return f"{value:.3g}"


def format_table(table, versions: list[str], baseline: str) -> str:
    """Plain-text table: value per version, with the ratio to the baseline."""
    headers = ["benchmark", "params", "unit"] + [f"tf {v}" for v in versions]
    multi_machine = table["machine"].nunique() > 1
    if multi_machine:
        headers.insert(0, "machine")
    lines = []
    for _, row in table.iterrows():
        cells = [row["benchmark"], row["params"], row["unit"] or ""]
        if multi_machine:
            cells.insert(0, row["machine"])
        for v in versions:
            text = _format_value(row[v], row["unit"])
            ratio = row[f"ratio_{v}"]
            if v != baseline and isinstance(ratio, float) and not math.isnan(ratio):
                text += f" (x{ratio:.2f})"
            cells.append(text)
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(headers)]
    out = [f"ratios are relative to TensorFlow {baseline}; time/peakmem: >1 is slower/larger, "
           "track (GB/s, fraction): >1 is better",
           "  ".join(h.ljust(w) for h, w in zip(headers, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in lines]
    return "\n".join(out)
