"""The timed pipeline of one scenario: phases x repeats, with telemetry, the
roofline and the oracle's verdicts, as rows of phases.csv."""

from __future__ import annotations

import statistics
import time
from typing import Callable

from .judge.core import error_summary
from .outcomes import Outcome, Verdict, worst
from .results import ROOFLINE_FOR, ROOFLINE_PHASES
from .session import Scenario, ScenarioSession
from .telemetry import gpu as gpu_tel
from .telemetry.sampler import Sampler

IO_PHASES = set(ROOFLINE_FOR) | set(ROOFLINE_PHASES)

Emit = Callable[[dict], None]


def _gpu_index(session: ScenarioSession):
    dev = session.tf_devices[0]
    if "GPU" in dev:
        return int(dev.rsplit(":", 1)[1])
    return None


def run_scenario(scenario: Scenario, workdir: str, repeats: int, progress: Emit | None = None,
                 warmup: bool = True) -> list[dict]:
    """Run every phase `repeats` times; returns the rows (roofline fractions filled in).

    With `warmup`, one untimed round of the same scenario comes first: a process's first
    build, save and restore of a layout pay one-time costs (TensorFlow instantiating its
    kernels and save/restore functions): the first save took 2-5x a later one at 64 MiB,
    the first build 3.3x at 5,000 variables, and with the default 3 repeats that pulled
    the median up.
    """
    progress = progress or (lambda _ev: None)
    rows: list[dict] = []
    session = ScenarioSession(scenario, workdir)
    gpu_index = _gpu_index(session)
    base = {"scenario": scenario.name, "api": scenario.api, "device": scenario.device,
            "n_vars": scenario.spec.n_vars, "shape_mix": scenario.spec.shape_mix,
            "optimizer": scenario.spec.optimizer}
    try:
        # The disk roofline of every repeat first, away from the timed phases: measured
        # between init and save, its writes, fsync and cold reads slowed the save after it
        # by 1.1-1.4x (64 MiB, 512 MiB), still 1.16x with 1.5 s of CPU work in between.
        raw = [session.roofline() for _ in range(repeats)]
        if warmup:
            _warm_up(session)
        # NVML counts physical GPUs and ignores CUDA_VISIBLE_DEVICES: map TF's logical GPU to it
        nvml = gpu_tel.nvml_device_for_tf_gpu(gpu_index, bus_id=gpu_tel.tf_gpu_bus_id(gpu_index)) \
            if gpu_index is not None else None
        with Sampler(gpu_index=nvml.index if nvml else None,
                     tf_gpu=f"GPU:{gpu_index}" if gpu_index is not None else None) as sampler:
            def record(phase, repeat, fn, prepare=None, finish=None):
                """Time fn() with telemetry; prepare/finish are the phase's untimed steps (they
                count in the phase's wall time, reported with the progress event only)."""
                t_wall = time.perf_counter()
                if prepare is not None:
                    prepare()
                sampler.start()
                seconds, extra = fn()
                row = dict(base, phase=phase, repeat=repeat, seconds=seconds, **sampler.stop().as_row())
                row.update(extra)
                if finish is not None:
                    finish()
                rows.append(row)
                progress({"event": "phase", "scenario": scenario.name, "phase": phase, "repeat": repeat,
                          "seconds": seconds, "outcome": row.get("outcome", ""),
                          "wall_seconds": time.perf_counter() - t_wall})
                return row

            for r in range(repeats):
                for phase in ROOFLINE_PHASES:
                    rows.append(dict(base, phase=phase, repeat=r, seconds=raw[r][phase]))
                # the previous model goes first, in no phase: the bare script drops its own untimed
                session.release()
                record("build", r, lambda: (session.build(), {}))
                record("init", r, lambda: (session.init(), {}))
                # The oracle's record of the state (fingerprints), between init and save and in
                # neither: it is the harness's work, like verify, so it is reported on its own
                # (about 25 us a variable, 2.5 s at 100,000 variables) and not folded into the
                # wall time of the save it would be compared with.
                t_fp = time.perf_counter()
                session.record_manifest()
                progress({"event": "oracle", "scenario": scenario.name, "step": "fingerprint",
                          "repeat": r, "wall_seconds": time.perf_counter() - t_fp})
                timing = {}

                def save():
                    timing["t"] = t = session.save_call()
                    return t.done_seconds, {}
                # prepare: previous save removed, then os.sync (start from a clean page cache)
                save_steps = dict(prepare=session.prepare_save)
                if scenario.api == "async-checkpoint":
                    # one save, two clocks: the call's return and the write being done
                    save_row = record("save", r, save, **save_steps)
                    rows.insert(len(rows) - 1, dict(save_row, phase="save_return",
                                                    seconds=timing["t"].return_seconds))
                else:
                    record("save", r, save, **save_steps)

                def durable():
                    extra = session.make_durable()  # fsync after the API returned
                    return timing["t"].done_seconds + extra, {"extra_seconds": extra}
                # no sync before: flushing the save's own dirty pages is what this phase times;
                # the manifest file comes after, so its pages are not flushed with the checkpoint
                record("save_durable", r, durable, finish=session.write_manifest)
                for phase, cold in (("restore_warm", False), ("restore_cold", True)):
                    verdict = {}
                    # Poisoning is the oracle's guard (a restore that writes nothing cannot pass),
                    # like the fingerprints: reported apart, in no phase (about 15 us a variable).
                    # The bare script zeroes its variables untimed too.
                    t_poison = time.perf_counter()
                    try:
                        session.poison()
                    except Exception as e:  # e.g. a model a failed restore left unusable
                        verdict["v"] = Verdict(Outcome.ERROR, error_summary(e))
                    progress({"event": "oracle", "scenario": scenario.name, "step": "poison", "phase": phase,
                              "repeat": r, "wall_seconds": time.perf_counter() - t_poison})

                    def prepare(cold=cold, verdict=verdict):
                        if "v" in verdict:
                            return
                        try:
                            session.prepare_restore(cold, poison=False)
                        except Exception as e:
                            verdict["v"] = Verdict(Outcome.ERROR, error_summary(e))

                    def restore(verdict=verdict):
                        if "v" in verdict:
                            return float("nan"), {}
                        try:
                            seconds = session.restore_call()
                        except Exception as e:  # a failed restore is a result, not a harness crash
                            verdict["v"] = Verdict(Outcome.ERROR, error_summary(e))
                            return float("nan"), {}
                        return seconds, {}
                    row = record(phase, r, restore, prepare=prepare)
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


def _warm_up(session: ScenarioSession) -> None:
    """One untimed round of every phase; nothing is recorded."""
    session.build()
    session.init()
    session.save()
    session.make_durable()
    for cold in (False, True):
        try:
            session.restore(cold=cold)
            session.verify()
        except Exception:
            break  # the timed repeats record what a failing restore does


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


def incomplete_restores(rows: list[dict]) -> str | None:
    """One line on the restore/verify verdicts of a scenario's rows that are not `complete`
    (how many, the worst, where), or None when every one is complete. The runner fails the
    run on it and the asv benchmarks raise on it."""
    bad = [r for r in rows if r.get("outcome") not in (None, "") and r["outcome"] != Outcome.COMPLETE.value]
    if not bad:
        return None
    outcome = worst(r["outcome"] for r in bad)
    first = next(r for r in bad if r["outcome"] == outcome.value)
    return (f"{len(bad)} restore/verify verdict(s) not complete, worst {outcome} "
            f"({first['phase']} r{first['repeat']}: {first.get('detail', '')})")


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
