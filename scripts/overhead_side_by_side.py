"""The save time ckpt-harness reports, next to a bare TensorFlow script, in separate processes.

  python scripts/overhead_side_by_side.py 64MiB 512MiB [--vars 64] [--rounds 3] [--repeats 5] [--bare-rebuild] [--json]

For every size, `rounds` times and in alternating order: one bare process
(scripts/bare_save.py: remove the previous save, os.sync(), time
Checkpoint.write alone; its first write is left out) and one harness process
(`python -m harness.overhead`: harness.phases.run_scenario, what the worker of
`ckpt-harness run --api tf2-checkpoint` runs), `repeats` saves each, same
variables, same values. Prints per size: n_vars, bare write median, the median
save the harness reports, their ratio, and the median wall time of the
harness's whole save phase (previous save removed, os.sync, telemetry, API
call) over the bare write, the ratio of the saves' process CPU seconds
(harness/bare; less moved by other processes than wall time), then the
reported/bare ratio of each round. Machine noise shows in the spread of those
per-round ratios; `ci95` is a 95 % interval of the ratio from resampling whole
rounds (harness.overhead.ratio_interval), so more rounds narrow it.

--bare-rebuild: the bare script builds a new model before every write (its
--rebuild), as the harness does every repeat, instead of saving one model
again and again. Which of the two is "the same state" moves the bare write
itself by a few per cent (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.overhead import compare_save  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sizes", nargs="+", help="state sizes, e.g. 64MiB 512MiB")
    p.add_argument("--vars", type=int, default=64)
    p.add_argument("--shape-mix", default="mixed", choices=["mixed", "few-large", "many-small"])
    p.add_argument("--rounds", type=int, default=3, help="bare/harness process pairs per size [3]")
    p.add_argument("--repeats", type=int, default=5, help="timed saves per process [5]")
    p.add_argument("--dir", default=None, help="where checkpoints are written [a temp dir]")
    p.add_argument("--bare-rebuild", action="store_true",
                   help="the bare script builds a new model before every write, as the harness does")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="overhead-", dir=a.dir) as workdir:
        results = [compare_save(s, a.vars, rounds=a.rounds, repeats=a.repeats, workdir=workdir,
                                shape_mix=a.shape_mix, bare_rebuild=a.bare_rebuild) for s in a.sizes]
    if a.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'size':>8} {'n_vars':>7} {'bare s':>9} {'reported s':>11} {'ratio':>6} "
          f"{'ci95':>13} {'phase wall s':>13} {'wall/bare':>9} {'cpu ratio':>9}  per-round ratios")
    for r in results:
        print(f"{r['size']:>8} {r['n_vars']:>7} {r['bare_median_s']:9.4f} {r['reported_median_s']:11.4f} "
              f"{r['reported_ratio']:6.3f} {r['reported_ratio_ci95'][0]:6.3f}-{r['reported_ratio_ci95'][1]:.3f} "
              f"{r['phase_wall_median_s']:13.4f} {r['phase_wall_ratio']:9.3f} "
              f"{r['cpu_ratio']:9.3f}  " + " ".join(f"{x:.3f}" for x in r["per_round_ratio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
