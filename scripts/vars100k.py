"""100,000 variables: which part of each phase is TensorFlow and which is the harness.

  python scripts/vars100k.py [--vars 100000] [--size 512MiB] [--json]

Runs, one after the other in separate processes, the bare script
(scripts/bare_save.py --read: create the variables, assign their values,
Checkpoint.write, Checkpoint.read, nothing else) and one repeat of the harness
(harness.phases.run_scenario for tf2-checkpoint, as `ckpt-harness run` runs it)
on the same variables with the same values. Per phase it prints TensorFlow's
own time (bare), what the harness reports, the wall time of the harness's whole
phase (its untimed preparation and finish included: previous save removed,
os.sync, poisoning before a restore, fingerprints after a save, telemetry), and
the harness's share of each: (harness - bare) / harness, of wall time and of
process CPU time (steadier than wall time on a shared machine). The verify
phase (the oracle) has no bare counterpart and is listed on its own.

The defaults are the state of the issue (100,000 variables, 512 MiB, mixed
shapes). Per-variable costs dominate at this count: TensorFlow alone needs
several minutes for it here (creating one variable costs about 1 ms), so the
script takes about 10 minutes on a 2-core machine and needs about 8 GiB of RAM
per process; --vars 20000 shows the same shares in about 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.overhead import BARE_KEY, harness_seconds, run_bare, run_harness  # noqa: E402

PHASES = ["build", "init", "save", "restore_warm"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vars", type=int, default=100_000)
    p.add_argument("--size", default="512MiB")
    p.add_argument("--dir", default=None, help="where checkpoints are written [a temp dir]")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vars100k-", dir=a.dir) as workdir:
        t0 = time.perf_counter()
        bare = run_bare(a.size, a.vars, 1, workdir, read=True)
        t_bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        # one repeat, no warm-up round: one-time costs are well under 1% of a phase here
        harness = run_harness(a.size, a.vars, 1, workdir, warmup=False)
        t_harness = time.perf_counter() - t0
    out = {"n_vars": a.vars, "size": a.size, "bare_process_s": t_bare, "harness_process_s": t_harness,
           "bare_peak_rss_bytes": bare.get("vm_hwm_bytes"),
           "harness_peak_rss_bytes": max(int(r.get("ru_maxrss_bytes") or 0) for r in harness["rows"]),
           "phases": []}
    for phase in PHASES:
        tf_s = bare[BARE_KEY[phase]][0]
        tf_cpu = bare[BARE_KEY[phase].replace("_s", "_cpu_s")][0]
        reported, wall = harness_seconds(harness, phase)
        cpu = next(r["cpu_seconds"] for r in harness["rows"] if r["phase"] == phase)
        out["phases"].append({"phase": phase, "bare_s": tf_s, "reported_s": reported[0], "wall_s": wall[0],
                              "bare_cpu_s": tf_cpu, "reported_cpu_s": cpu,
                              "reported_share": (reported[0] - tf_s) / reported[0],
                              "cpu_share": (cpu - tf_cpu) / cpu,
                              "wall_share": (wall[0] - tf_s) / wall[0]})
    verify = harness_seconds(harness, "verify")
    out["verify_s"] = verify[0][0] if verify[0] else None
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{a.vars} variables, {a.size}, one repeat; bare process {t_bare:.0f} s, "
          f"harness process {t_harness:.0f} s")
    print(f"{'':<13} {'TF (bare)':>19} {'harness reported':>24} {'harness phase':>20}")
    print(f"{'phase':<13} {'wall s':>9} {'cpu s':>9} {'wall s':>9} {'share':>6} {'cpu s':>8} {'share':>6} "
          f"{'wall s':>12} {'share':>6}")
    for r in out["phases"]:
        print(f"{r['phase']:<13} {r['bare_s']:9.2f} {r['bare_cpu_s']:9.2f} {r['reported_s']:9.2f} "
              f"{r['reported_share']:6.1%} {r['reported_cpu_s']:8.2f} {r['cpu_share']:6.1%} "
              f"{r['wall_s']:12.2f} {r['wall_share']:6.1%}")
    print(f"{'verify':<13} {'-':>11} {out['verify_s']:10.2f}   (the oracle: harness only)")
    gib = 2**30
    print(f"peak RSS: bare {out['bare_peak_rss_bytes'] / gib:.2f} GiB, "
          f"harness worker {out['harness_peak_rss_bytes'] / gib:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
