#!/usr/bin/env python3
"""docs/crash.md's per-environment tables, from the committed crash matrix.

    python scripts/crash_matrix_docs.py [results/crash/matrix.csv]

One table per environment of matrix.csv (scripts/crash_matrix.py): per target the
counts of each mode as new/rollback/detected/lost (any other outcome that occurs
appended, `+2 silent`), the largest orphan, the worst outcome over the modes and
the replay command of that worst case (the first mode, in kill, trace/process,
trace/power order, where it occurs). Paste the output into the "Safety matrix"
section, so the document shows exactly what the committed matrix holds.
"""

from __future__ import annotations

import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.faults.apis import CRASH_APIS  # noqa: E402
from harness.outcomes import Outcome, worst  # noqa: E402
from harness.units import format_bytes  # noqa: E402

MODES = (("kill", "process"), ("trace", "process"), ("trace", "power"))
MAIN = ("new", "rollback", "detected", "lost")
FLAVOURS = {"keras3": "Keras", "tf_keras": "tf-keras"}


def _counts(row: dict, extra: list[str]) -> str:
    if row.get("status") != "ran":
        return "not run"
    text = "/".join(str(int(row.get(k) or 0)) for k in MAIN)
    return text + "".join(f" +{int(row[k])} {k}" for k in extra if int(row.get(k) or 0))


def _order(target: str) -> tuple[int, int]:
    """The CLI's order of targets (CRASH_APIS), a variant (`keras-backup-double`) after its base."""
    at = {api: i for i, api in enumerate(CRASH_APIS)}
    base = next((a for a in CRASH_APIS if target == a or target.startswith(a + "-")), target)
    return at.get(base, len(at)), at.get(target, len(at))


def tables(rows: list[dict]) -> str:
    extra = [o.value for o in Outcome if o.value in rows[0] and o.value not in MAIN]
    out = []
    for env in dict.fromkeys(r["env"] for r in rows):
        mine = [r for r in rows if r["env"] == env]
        head = mine[0]
        out.append(f"**TensorFlow {head['tf_version']}, {FLAVOURS.get(head['keras'], head['keras'])} "
                   f"{head['keras_version']}** (`{env}`, commit {head['commit']})\n")
        out.append("| target | kill | trace/process | trace/power | orphan max | worst | replay the worst case |")
        out.append("|---|---|---|---|---|---|---|")
        for target in sorted(dict.fromkeys(r["target"] for r in mine), key=_order):
            by_mode = {(r["mode"], r["model"]): r for r in mine if r["target"] == target}
            cells = [_counts(by_mode.get(m, {}), extra) for m in MODES]
            ran = [by_mode[m] for m in MODES if m in by_mode and by_mode[m]["status"] == "ran"]
            orphan = max((int(r["max_orphan_bytes"] or 0) for r in ran), default=0)
            bad = worst(Outcome(r["worst"]) for r in ran) if ran else None
            first = next((r for r in ran if bad is not None and r["worst"] == bad.value), None)
            replay = (f"`{first['replay']}` ({first['mode']}/{first['model']})"
                      if first is not None and first["replay"] else "")
            out.append(f"| `{target}` | {' | '.join(cells)} | {format_bytes(orphan)} | "
                       f"{bad.value if bad is not None else ''} | {replay} |")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    path = argv[0] if argv else "results/crash/matrix.csv"
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    except OSError as e:
        print(f"crash_matrix_docs: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 2
    if not rows:
        print(f"crash_matrix_docs: {path} has no rows", file=sys.stderr)
        return 2
    print(tables(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
