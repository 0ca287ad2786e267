"""The timed pipeline of one scenario: phases x repeats, with telemetry, the
roofline and the oracle's verdicts, as rows of phases.csv."""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

from .judge.core import error_summary
from .outcomes import Outcome, Verdict
from .results import ROOFLINE_FOR, ROOFLINE_PHASES
from .session import Scenario, ScenarioSession
from .telemetry.sampler import Sampler

IO_PHASES = set(ROOFLINE_FOR) | set(ROOFLINE_PHASES)

Emit = Callable[[dict], None]


def _gpu_index(session: ScenarioSession):
    dev = session.tf_devices[0]
    if "GPU" in dev:
        return int(dev.rsplit(":", 1)[1])
    return None


def run_scenario(scenario: Scenario, workdir: str, repeats: int, progress: Emit | None = None) -> list[dict]:
    """Run every phase `repeats` times; returns the rows (roofline fractions filled in)."""
    progress = progress or (lambda _ev: None)
    rows: list[dict] = []
    session = ScenarioSession(scenario, workdir)
    gpu_index = _gpu_index(session)
    base = {"scenario": scenario.name, "api": scenario.api, "device": scenario.device,
            "n_vars": scenario.spec.n_vars, "shape_mix": scenario.spec.shape_mix,
            "optimizer": scenario.spec.optimizer}
    try:
        with Sampler(gpu_index=gpu_index, tf_gpu=f"GPU:{gpu_index}" if gpu_index is not None else None) as sampler:
            def record(phase, repeat, fn):
                if phase in IO_PHASES and phase != "save_durable":
                    # start with no dirty pages of an earlier phase; save_durable must find the
                    # save's own dirty pages still there, since flushing them is what it times
                    os.sync()
                sampler.start()
                seconds, extra = fn()
                row = dict(base, phase=phase, repeat=repeat, seconds=seconds, **sampler.stop().as_row())
                row.update(extra)
                rows.append(row)
                progress({"event": "phase", "scenario": scenario.name, "phase": phase, "repeat": repeat,
                          "seconds": seconds, "outcome": row.get("outcome", "")})
                return row

            for r in range(repeats):
                record("build", r, lambda: (session.build(), {}))
                record("init", r, lambda: (session.init(), {}))
                raw = session.roofline()
                for phase in ROOFLINE_PHASES:
                    rows.append(dict(base, phase=phase, repeat=r, seconds=raw[phase]))
                timing = {}

                def save():
                    timing["t"] = t = session.save()
                    return t.done_seconds, {}
                if scenario.api == "async-checkpoint":
                    # one save, two clocks: the call's return and the write being done
                    save_row = record("save", r, save)
                    rows.insert(len(rows) - 1, dict(save_row, phase="save_return",
                                                    seconds=timing["t"].return_seconds))
                else:
                    record("save", r, save)

                def durable():
                    extra = session.make_durable()  # fsync after the API returned
                    return timing["t"].done_seconds + extra, {"extra_seconds": extra}
                record("save_durable", r, durable)
                for phase, cold in (("restore_warm", False), ("restore_cold", True)):
                    verdict = {}

                    def restore(cold=cold, verdict=verdict):
                        try:
                            seconds = session.restore(cold=cold)
                        except Exception as e:  # a failed restore is a result, not a harness crash
                            verdict["v"] = Verdict(Outcome.ERROR, error_summary(e))
                            return float("nan"), {}
                        return seconds, {}
                    row = record(phase, r, restore)
                    if "v" not in verdict:
                        verdict["v"] = session.verify()  # untimed here; the verify phase times it
                    row.update(verdict["v"].as_dict())
                if rows[-1]["outcome"] != Outcome.ERROR.value:
                    record("verify", r, lambda: _timed_verify(session))
    finally:
        state_bytes = session.state_bytes
        session.close()
    for row in rows:
        row["state_bytes"] = state_bytes
    _fill_rates(rows, state_bytes)
    return rows


def _timed_verify(session: ScenarioSession):
    t0 = time.perf_counter()
    verdict = session.verify()
    return time.perf_counter() - t0, verdict.as_dict()


# a throughput this far above its roofline is flagged: the page cache can make a read or a
# buffered write look faster than the disk (real, and worth knowing), and so can a restore
# or save that did less work than it claims
SUSPECT_FACTOR = 1.2


def _failed_repeats(rows: list[dict]) -> set:
    """Repeats whose restore or verify verdict is not `complete`."""
    return {r["repeat"] for r in rows
            if r.get("outcome") not in (None, "") and r["outcome"] != Outcome.COMPLETE.value}


def _fill_rates(rows: list[dict], state_bytes: int) -> None:
    """GB/s for I/O phases, each one's fraction of the matching roofline's median, and a
    `suspect` flag above SUSPECT_FACTOR x roofline.

    A repeat whose restore was not judged complete gets no figure for any of its save or
    restore phases: a restore that restored nothing takes no time, and its save cannot be
    trusted to have written what the roofline compares it with.
    """
    failed = _failed_repeats(rows)
    for row in rows:
        s = row.get("seconds")
        if row["phase"] in ROOFLINE_FOR and row["repeat"] in failed:
            continue
        if row["phase"] in IO_PHASES and s and s == s and s > 0:
            row["gbps"] = state_bytes / s / 1e9
    medians = {}
    for phase in ROOFLINE_PHASES:
        vals = [r["gbps"] for r in rows if r["phase"] == phase and r.get("gbps")]
        if vals:
            medians[phase] = statistics.median(vals)
    for row in rows:
        if row["phase"] in ROOFLINE_PHASES and row.get("gbps"):
            row["roofline_fraction"] = row["gbps"] / medians[row["phase"]]
        ref = ROOFLINE_FOR.get(row["phase"])
        if ref in medians and row.get("gbps"):
            row["roofline_fraction"] = row["gbps"] / medians[ref]
            if row["roofline_fraction"] > SUSPECT_FACTOR:
                row["suspect"] = f"above-roofline:{ref}"
