"""Which of the harness's steps around a restore make the next round's restore slower.

  python scripts/restore_bisect.py [--vars 100000] [--size 512MiB] [--rounds 2]
                                   [--skip fingerprint,durable,verify,cold,sampler] [--gc-before-restore]
  python scripts/restore_bisect.py --run-scenario [--no-roofline] [--vars ...] [--size ...] [--rounds 2]

One process, one tf2-checkpoint ScenarioSession, `--rounds` rounds in the
order harness/phases.py runs a repeat: build (dropping the previous model),
init, fingerprints (the manifest), save, fsync (durable), manifest file,
poison + os.sync, the timed restore call inside a telemetry Sampler, verify,
then a cold restore and its verify and the timed verify. `--skip` leaves
steps out: with all five skipped a round is what scripts/bare_save.py
--read --rebuild does (build, init, save, zero, read). Printed per round:
the restore call's wall and CPU seconds, how long Python's cyclic collector
ran inside it (gc.callbacks) and how many collections of each generation,
and the objects the collector tracks just before it.

Why: at 100,000 variables the harness's restore call ran 15-22 % longer
than the bare script's in a process's second round (docs/benchmarks.md),
while a session that only saves and reads reads as fast as the bare
script (scripts/first_restore.py). Running this once per --skip set, each
in its own process, bisects the steps of the round before.

With --run-scenario the rounds are harness/phases.run_scenario itself
(`--rounds` repeats, no warm-up round: what scripts/vars100k.py's harness
process runs), in this process, with the same clocks around each timed
restore call; --no-roofline replaces the disk roofline measured at its
start (a write, a durable write, a warm and a cold read of the state's
size, per repeat) with zeros, to see whether it slows the restores after it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STEPS = ("fingerprint", "durable", "verify", "cold", "sampler")


class GcClock:
    """Seconds Python's cyclic collector runs, and collections per generation, while on."""

    def __init__(self):
        self.on, self.seconds, self.counts, self._t0 = False, 0.0, [0, 0, 0], None
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if not self.on:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self._t0 is not None:
            self.seconds += time.perf_counter() - self._t0
            self.counts[info["generation"]] += 1
            self._t0 = None

    def reset(self):
        self.seconds, self.counts = 0.0, [0, 0, 0]

    def measure(self, fn) -> tuple[object, dict]:
        """fn()'s result, and its wall and CPU seconds, the collector's time and collections
        inside it, and the objects tracked just before it."""
        tracked = len(gc.get_objects())
        self.reset()
        self.on = True
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            out = fn()
        finally:
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            self.on = False
        return out, {"restore_s": wall, "restore_cpu_s": cpu, "gc_s": self.seconds,
                     "gc_collections": list(self.counts), "gc_tracked_before": tracked}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vars", type=int, default=100_000)
    p.add_argument("--size", default="512MiB")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--skip", default="", help=f"comma-separated steps to leave out: {', '.join(STEPS)}")
    p.add_argument("--gc-before-restore", action="store_true", help="gc.collect() before each timed restore")
    p.add_argument("--dir", default=None, help="where checkpoints are written [a temp dir]")
    p.add_argument("--json", action="store_true")
    p.add_argument("--run-scenario", action="store_true", help="time harness.phases.run_scenario's restores")
    p.add_argument("--no-roofline", action="store_true", help="with --run-scenario: skip the roofline")
    a = p.parse_args(argv)
    skip = {s for s in a.skip.split(",") if s}
    if skip - set(STEPS) or a.rounds < 1:
        print(f"restore_bisect: --skip takes {', '.join(STEPS)}; --rounds at least 1", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if a.run_scenario:
        return _run_scenario(a)

    from harness.session import Scenario, ScenarioSession
    from harness.specs import GraphSpec
    from harness.telemetry.sampler import Sampler
    from harness.units import parse_size

    spec = GraphSpec(n_vars=a.vars, state_bytes=parse_size(a.size))
    session = ScenarioSession(Scenario("tf2-checkpoint", spec=spec),
                              tempfile.mkdtemp(prefix="restore-bisect-", dir=a.dir))
    sampler = Sampler()
    clock = GcClock()
    rounds = []
    try:
        for r in range(a.rounds):
            session.build()
            session.init()
            if "fingerprint" not in skip:
                session.record_manifest()
            session.prepare_save()
            session.save_call()
            if "durable" not in skip:
                session.make_durable()
            if "fingerprint" not in skip:
                session.write_manifest()
            session.prepare_restore(cold=False)
            if a.gc_before_restore:
                gc.collect()
            if "sampler" not in skip:
                sampler.start()
            _, figures = clock.measure(session.restore_call)
            if "sampler" not in skip:
                sampler.stop()
            row = dict(round=r + 1, **figures)
            if "verify" not in skip:
                row["outcome"] = session.verify().outcome.value
            if "cold" not in skip:
                session.prepare_restore(cold=True)
                session.restore_call()
                if "verify" not in skip:
                    session.verify()
            if "verify" not in skip:
                session.verify()
            rounds.append(row)
            if not a.json:
                print(f"round {r + 1}: restore {row['restore_s']:7.2f} s (cpu {row['restore_cpu_s']:7.2f} s), "
                      f"gc {row['gc_s']:6.2f} s in {row['gc_collections']} collections, "
                      f"{row['gc_tracked_before']} objects tracked before"
                      + (f", {row['outcome']}" if "outcome" in row else ""), flush=True)
    finally:
        session.close()
    if a.json:
        print(json.dumps({"vars": a.vars, "size": a.size, "skip": sorted(skip),
                          "gc_before_restore": a.gc_before_restore, "rounds": rounds}))
    return 0


def _run_scenario(a) -> int:
    """run_scenario's own rounds, each timed restore call clocked as in main()."""
    from harness.phases import run_scenario
    from harness.session import Scenario, ScenarioSession
    from harness.specs import GraphSpec
    from harness.units import parse_size

    clock = GcClock()
    calls = []
    restore_call = ScenarioSession.restore_call

    def clocked_restore_call(self):
        seconds, figures = clock.measure(lambda: restore_call(self))
        calls.append(figures)
        return seconds

    ScenarioSession.restore_call = clocked_restore_call
    if a.no_roofline:
        ScenarioSession.roofline = lambda self: dict.fromkeys(
            ("raw_write", "raw_write_durable", "raw_read_warm", "raw_read_cold"), 0.0)
    spec = GraphSpec(n_vars=a.vars, state_bytes=parse_size(a.size))
    work = tempfile.mkdtemp(prefix="restore-bisect-", dir=a.dir)
    rows = run_scenario(Scenario("tf2-checkpoint", spec=spec), os.path.join(work, "ckpt"), a.rounds,
                        warmup=False)
    os.rmdir(work)
    phases = [r["phase"] for r in rows if r["phase"] in ("restore_warm", "restore_cold")]
    out = [dict(c, phase=ph, round=i // 2 + 1) for i, (c, ph) in enumerate(zip(calls, phases))]
    if a.json:
        print(json.dumps({"vars": a.vars, "size": a.size, "run_scenario": True,
                          "roofline": not a.no_roofline, "calls": out}))
    else:
        for c in out:
            print(f"round {c['round']} {c['phase']}: restore {c['restore_s']:7.2f} s (cpu {c['restore_cpu_s']:7.2f} s), "
                  f"gc {c['gc_s']:6.2f} s in {c['gc_collections']} collections, "
                  f"{c['gc_tracked_before']} objects tracked before", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
