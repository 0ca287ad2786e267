"""The report's figures, rendered with matplotlib's Agg backend to PNG bytes.

Each function returns None when the data holds nothing to draw, so the page
can leave the figure out instead of showing an empty frame.
"""

from __future__ import annotations

import io

from ..outcomes import CRASH_STATE, SINGLE_RESTORE, Outcome
from ..results import ROOFLINE_FOR, ROOFLINE_PHASES
from .rundata import failed_repeat_rows

# (phase, title) of the four throughput panels
THROUGHPUT_PANELS = [
    ("save", "save, buffered (API returned)"),
    ("save_durable", "save, durable (after fsync)"),
    ("restore_warm", "restore, warm (page cache)"),
    ("restore_cold", "restore, cold (cache dropped)"),
]

# phases that are separate operations of one pipeline pass, in order
BREAKDOWN_PHASES = ["build", "init", "save", "restore_warm", "restore_cold", "verify"]

_OUTCOME_COLORS = {
    Outcome.COMPLETE: "#2e7d32", Outcome.NEW: "#2e7d32", Outcome.ROLLBACK: "#66bb6a",
    Outcome.DETECTED: "#fbc02d", Outcome.UNINITIALIZED: "#ffa726", Outcome.UNEXPECTED: "#ff7043",
    Outcome.MISMATCH: "#e53935", Outcome.MISSING: "#d81b60", Outcome.ERROR: "#8e24aa",
    Outcome.LOST: "#c62828", Outcome.CRASH: "#6d4c41", Outcome.HANG: "#546e7a",
    Outcome.SILENT: "#000000",
}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # no display; must precede the pyplot import
    import matplotlib.pyplot as plt
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


IO_PHASES = set(ROOFLINE_FOR) | set(ROOFLINE_PHASES)


def with_gbps(phases):
    """gbps of the I/O phases filled in from state_bytes/seconds where the run left it empty,
    except in a repeat whose restore was not complete (left empty on purpose)."""
    frame = phases.copy()
    computed = frame["state_bytes"] / frame["seconds"] / 1e9
    fill = frame["phase"].isin(IO_PHASES) & (frame["seconds"] > 0) & ~failed_repeat_rows(frame)
    frame["gbps"] = frame["gbps"].fillna(computed.where(fill))
    return frame


def _size_label(n_bytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g}{unit}"
    return f"{n_bytes:.3g}B"


def throughput_figure(phases) -> bytes | None:
    """GB/s against state size per API and device, the disk roofline dashed."""
    frame = with_gbps(phases)
    if not frame["phase"].isin([p for p, _ in THROUGHPUT_PANELS]).any():
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    sizes = sorted(frame["state_bytes"].dropna().unique())
    # one colour per API and device in every panel
    keys = sorted(set(zip(frame["api"], frame["device"])))
    colors = {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(keys)}
    for ax, (phase, title) in zip(axes.flat, THROUGHPUT_PANELS):
        rows = frame[frame["phase"] == phase].dropna(subset=["gbps", "state_bytes"])
        for (api, device), group in rows.groupby(["api", "device"], sort=True):
            med = group.groupby("state_bytes")["gbps"].median()
            ax.plot(med.index, med.values, marker="o", color=colors[(api, device)], label=f"{api} ({device})")
            if phase == "save" and "save_return" in set(frame["phase"]):
                ret = frame[(frame["phase"] == "save_return") & (frame["api"] == api)
                            & (frame["device"] == device)].groupby("state_bytes")["gbps"].median()
                if not ret.empty:
                    ax.plot(ret.index, ret.values, marker="x", linestyle=":", color=colors[(api, device)],
                            label=f"{api} ({device}) call return")
        roof_phase = ROOFLINE_FOR[phase]
        roof = frame[frame["phase"] == roof_phase].dropna(subset=["gbps"]).groupby("state_bytes")["gbps"].median()
        if not roof.empty:
            ax.plot(roof.index, roof.values, color="black", linestyle="--", marker="D",
                    label=f"roofline ({roof_phase})")
        ax.set_title(title)
        ax.set_ylabel("GB/s")
        ax.grid(True, alpha=0.3)
        if rows.empty and roof.empty:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xscale("log")
        ax.set_xlabel("state size")
        if sizes:
            ax.set_xticks(sizes)
            ax.set_xticklabels([_size_label(s) for s in sizes], rotation=30)
            ax.minorticks_off()
    fig.suptitle("Save and restore throughput against state size (median over repeats)")
    fig.tight_layout()
    return _png(fig)


def scenario_label(row) -> str:
    return f"{row['api']} · {row['device']} · {_size_label(row['state_bytes'])} · {int(row['n_vars'])} vars"


def phase_breakdown_figure(phases) -> bytes | None:
    """Median seconds of each pipeline phase, one stacked bar per scenario."""
    rows = phases[phases["phase"].isin(BREAKDOWN_PHASES)].dropna(subset=["seconds"])
    if rows.empty:
        return None
    keys = ["api", "device", "state_bytes", "n_vars", "scenario"]
    med = rows.groupby(keys + ["phase"], dropna=False)["seconds"].median().unstack("phase")
    med = med.reindex(columns=[p for p in BREAKDOWN_PHASES if p in med.columns]).fillna(0.0)
    labels = [scenario_label(dict(zip(keys, idx))) for idx in med.index]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.45 * len(med)))
    left = [0.0] * len(med)
    cmap = plt.get_cmap("tab10")
    for i, phase in enumerate(med.columns):
        values = med[phase].tolist()
        ax.barh(range(len(med)), values, left=left, color=cmap(i), label=phase)
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(range(len(med)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (median over repeats)")
    ax.set_title("Phase breakdown per scenario")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def outcome_order(words) -> list[str]:
    known = [o.value for o in CRASH_STATE + SINGLE_RESTORE]
    present = set(words)
    return [w for w in known if w in present] + sorted(present - set(known))


def distinct_states(crash):
    """Crash rows minus those recorded as a duplicate of an identical state."""
    if "duplicate_of" not in crash.columns:
        return crash
    return crash[crash["duplicate_of"].astype(str).str.strip() == ""]


def crash_outcomes_figure(crash) -> bytes | None:
    """Count of each outcome per API and crash mode (distinct states), stacked."""
    if crash is None or crash.empty:
        return None
    crash = distinct_states(crash)
    counts = crash.groupby(["api", "mode", "outcome"]).size().unstack("outcome", fill_value=0)
    counts = counts.reindex(columns=outcome_order(counts.columns))
    labels = [f"{api} · {mode}" for api, mode in counts.index]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.45 * len(counts)))
    left = [0] * len(counts)
    for word in counts.columns:
        try:
            color = _OUTCOME_COLORS[Outcome(word)]
        except ValueError:
            color = "#9e9e9e"
        values = counts[word].tolist()
        ax.barh(range(len(counts)), values, left=left, color=color, label=word)
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(range(len(counts)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("distinct crash states")
    ax.set_title("Crash outcomes per API and mode")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)
