"""100,000 variables: which part of each phase is TensorFlow and which is the harness.

  python scripts/vars100k.py [--vars 100000] [--size 512MiB] [--pairs 3] [--warm-up] [--json]

Runs `--pairs` pairs of processes, alternating which side goes first: the bare
script (scripts/bare_save.py --read: create the variables, assign their values,
Checkpoint.write, Checkpoint.read, nothing else) and one repeat of the harness
(harness.phases.run_scenario for tf2-checkpoint, as `ckpt-harness run` runs it)
on the same variables with the same values. Per phase it prints the median over
the pairs of TensorFlow's own time (bare), of what the harness reports, and of
the wall time of the harness's whole phase (its untimed preparation included:
previous save removed and os.sync before a save, os.sync before a restore,
telemetry), and the harness's share of each: (harness - bare) /
harness, of wall time and of process CPU time. The per-pair shares follow: a
single process pair moved by up to 20 % on this VM in build and init.

With --warm-up both sides run their whole pipeline twice in their process and
the second round is compared: the bare script with --rebuild (a new model
each round, as the harness builds one every repeat), so on both sides the
timed build and init are a process's second, and the timed read is the first
into a model in a process that has read before. A process's first build and
first read carry TensorFlow's one-time work; without --warm-up both sides are
compared on their first. Between the two processes of a pair the script runs
os.sync(), timed by neither: otherwise the first process's unflushed
checkpoint is written back inside the second's phase (the harness syncs before
its save and restore, and counts that in its whole phase).

The oracle's own work has no bare counterpart and is listed apart: the
fingerprints of the state taken between init and save, the poisoning of the
live state before the restore (the bare script zeroes its variables, untimed;
harness code before the poisoning was reported apart counted it in the restore
phase), and verify.

The defaults are the state of the issue (100,000 variables, 512 MiB, mixed
shapes). Per-variable costs dominate at this count: TensorFlow alone needs
several minutes for it here (creating one variable costs about 1 ms), so one
pair takes about 10 minutes on a 2-core machine and needs about 8 GiB of RAM
per process; --vars 20000 shows the same shares in about 2 minutes a pair.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.overhead import BARE_KEY, harness_seconds, run_bare, run_harness  # noqa: E402

PHASES = ["build", "init", "save", "restore_warm"]


def one_pair(size: str, n_vars: int, workdir: str, bare_first: bool, warm_up: bool = False) -> dict:
    """One bare process and one harness process (one repeat each, or two with `warm_up`)."""
    got, process_s = {}, {}
    repeats = 2 if warm_up else 1
    for who in (("bare", "harness") if bare_first else ("harness", "bare")):
        os.sync()  # the other side's checkpoint is flushed here, in neither side's time
        t0 = time.perf_counter()
        if who == "bare":
            got[who] = run_bare(size, n_vars, repeats, workdir, read=True, rebuild=warm_up,
                                timeout=7200 if warm_up else 3600)
        else:
            # warmup=False: no untimed round; its repeats are its rounds, as the bare script's
            got[who] = run_harness(size, n_vars, repeats, workdir, warmup=False)
        process_s[who] = time.perf_counter() - t0
    bare, harness = got["bare"], got["harness"]
    pair = {"bare_first": bare_first, "bare_process_s": process_s["bare"],
            "harness_process_s": process_s["harness"], "bare_peak_rss_bytes": bare.get("vm_hwm_bytes"),
            "harness_peak_rss_bytes": max(int(r.get("ru_maxrss_bytes") or 0) for r in harness["rows"]),
            "phases": {}}
    last = repeats - 1
    for phase in PHASES:
        k = last   # with --warm-up the second round of each side, else the first
        reported, wall = harness_seconds(harness, phase)
        cpu = [r["cpu_seconds"] for r in harness["rows"] if r["phase"] == phase]
        pair["phases"][phase] = {
            "bare_s": bare[BARE_KEY[phase]][k], "bare_cpu_s": bare[BARE_KEY[phase].replace("_s", "_cpu_s")][k],
            "reported_s": reported[k], "wall_s": wall[k], "reported_cpu_s": cpu[k]}
    pair["fingerprint_s"] = [e["wall_seconds"] for e in harness.get("oracle", [])
                             if e.get("step") == "fingerprint"][last]
    poisons = [e["wall_seconds"] for e in harness.get("oracle", [])
               if e.get("step") == "poison" and e.get("phase") == "restore_warm"]
    pair["poison_s"] = poisons[last] if poisons else None   # harness code before it poisoned in the phase
    pair["verify_s"] = harness_seconds(harness, "verify")[0][last]
    return pair


def summarize(pairs: list[dict]) -> list[dict]:
    """Per phase: medians over the pairs and the harness's shares of them."""
    out = []
    for phase in PHASES:
        med = {k: statistics.median(p["phases"][phase][k] for p in pairs)
               for k in ("bare_s", "bare_cpu_s", "reported_s", "wall_s", "reported_cpu_s")}
        out.append(dict(med, phase=phase,
                        reported_share=(med["reported_s"] - med["bare_s"]) / med["reported_s"],
                        cpu_share=(med["reported_cpu_s"] - med["bare_cpu_s"]) / med["reported_cpu_s"],
                        wall_share=(med["wall_s"] - med["bare_s"]) / med["wall_s"],
                        pair_wall_shares=[(p["phases"][phase]["wall_s"] - p["phases"][phase]["bare_s"])
                                          / p["phases"][phase]["wall_s"] for p in pairs]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vars", type=int, default=100_000)
    p.add_argument("--size", default="512MiB")
    p.add_argument("--pairs", type=int, default=3, help="process pairs, alternating which side goes first")
    p.add_argument("--warm-up", action="store_true",
                   help="run both sides' pipelines twice (the bare one with --rebuild) and compare the second")
    p.add_argument("--dir", default=None, help="where checkpoints are written [a temp dir]")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.pairs < 1 or a.vars < 1:
        p.error("--pairs and --vars must be at least 1")
    pairs = []
    with tempfile.TemporaryDirectory(prefix="vars100k-", dir=a.dir) as workdir:
        for k in range(a.pairs):
            pairs.append(one_pair(a.size, a.vars, workdir, bare_first=(k % 2 == 0), warm_up=a.warm_up))
            print(f"pair {k + 1}/{a.pairs} done", file=sys.stderr, flush=True)
    out = {"n_vars": a.vars, "size": a.size, "warm_up": a.warm_up, "pairs": pairs, "phases": summarize(pairs),
           "fingerprint_s": statistics.median(p["fingerprint_s"] for p in pairs),
           "verify_s": statistics.median(p["verify_s"] for p in pairs),
           "poison_s": (statistics.median(p["poison_s"] for p in pairs)
                        if all(p["poison_s"] is not None for p in pairs) else None),
           "bare_peak_rss_bytes": max(p["bare_peak_rss_bytes"] or 0 for p in pairs),
           "harness_peak_rss_bytes": max(p["harness_peak_rss_bytes"] for p in pairs)}
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{a.vars} variables, {a.size}, {a.pairs} process pair(s) (medians), "
          f"{'the second' if a.warm_up else 'the first'} round of each process; "
          f"bare process {statistics.median(p['bare_process_s'] for p in pairs):.0f} s, "
          f"harness process {statistics.median(p['harness_process_s'] for p in pairs):.0f} s")
    print(f"{'':<13} {'TF (bare)':>19} {'harness reported':>24} {'harness whole phase':>30}")
    print(f"{'phase':<13} {'wall s':>9} {'cpu s':>9} {'wall s':>9} {'share':>6} {'cpu s':>8} {'share':>6} "
          f"{'wall s':>9} {'share':>6}  per pair")
    for r in out["phases"]:
        per_pair = ", ".join(f"{s:.1%}" for s in r["pair_wall_shares"])
        print(f"{r['phase']:<13} {r['bare_s']:9.2f} {r['bare_cpu_s']:9.2f} {r['reported_s']:9.2f} "
              f"{r['reported_share']:6.1%} {r['reported_cpu_s']:8.2f} {r['cpu_share']:6.1%} "
              f"{r['wall_s']:9.2f} {r['wall_share']:6.1%}  {per_pair}")
    poison = f", poisoning before the warm restore {out['poison_s']:.2f} s" if out["poison_s"] is not None else ""
    print(f"the oracle (harness only, in no phase): fingerprints {out['fingerprint_s']:.2f} s, "
          f"verify {out['verify_s']:.2f} s{poison}")
    gib = 2**30
    print(f"peak RSS: bare {out['bare_peak_rss_bytes'] / gib:.2f} GiB, "
          f"harness worker {out['harness_peak_rss_bytes'] / gib:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
