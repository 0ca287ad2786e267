#!/usr/bin/env python3
"""docs/distributed.md's matrix table, from the two committed task-fault matrices.

    python scripts/distributed_matrix_docs.py [FAIL_FAST_CSV] [TF_DEFAULTS_CSV]

Defaults: results/distributed/matrix.csv (fail-fast) and
results/distributed/tf-defaults/matrix.csv (TensorFlow's defaults), both written by
scripts/distributed_matrix.py. One line per cell (a trial): how each other task reacted,
the disk's verdict with the checkpoint a restart finds, the orphans, the restart's outcome,
each as `fail-fast / TF defaults` where the two differ in kind. Paste the output into the
section "The committed matrix", so the document shows what the committed files hold.
"""

from __future__ import annotations

import csv
import sys

KIB = 1024


def _load(path: str) -> dict[str, list[dict]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    cells: dict[str, list[dict]] = {}
    for r in rows:
        cells.setdefault(r["trial"], []).append(r)
    return cells


def _fault(r: dict) -> str:
    prefix = "" if r["strategy"].startswith("multi-worker") else f"{r['strategy']}: "
    return f"{prefix}{r['mode']} {r['fault_task']} at {r['point']}"


def _reaction(r: dict) -> str:
    if r["reaction"] == "error":
        return f"{r['task']} {r['reaction_detail'].split(':', 1)[0]} {float(r['notice_s']):.1f} s"
    if r["reaction"] == "hang":
        return f"{r['task']} hang"
    if r["reaction_detail"].startswith("kept serving"):
        return f"{r['task']} kept serving"
    return f"{r['task']} {r['reaction']}"


def _disk(r: dict) -> str:
    return f"{r['disk_outcome']} ({r['latest']})" if r["disk_outcome"] else "nothing saved"


def _orphans(r: dict) -> str:
    n = int(r["orphan_bytes"] or 0)
    return f"{n // KIB} KiB {r['orphans']}" if n else "0"


def table(fail_fast: dict, defaults: dict) -> str:
    out = ["| fault | other tasks, fail-fast | other tasks, TF defaults | disk (ff / TF defaults) "
           "| orphans (ff / TF defaults) | restart (ff / TF defaults) |",
           "|---|---|---|---|---|---|"]
    for trial, ff in fail_fast.items():
        tf = defaults.get(trial)
        first, other = ff[0], (tf or [{}])[0]
        if tf is not None and _fault(other) != _fault(first):
            raise SystemExit(f"distributed_matrix_docs: trial {trial} differs between the files: "
                             f"{_fault(first)} / {_fault(other)}")
        react_tf = ", ".join(_reaction(r) for r in tf) if tf else "not run"
        both = (lambda f: f"{f(first)} / {f(other) if tf else 'not run'}")
        out.append(f"| {_fault(first)} | {', '.join(_reaction(r) for r in ff)} | {react_tf} | {both(_disk)} "
                   f"| {both(_orphans)} | {both(lambda r: r['restart_outcome'])} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    paths = (argv + ["results/distributed/matrix.csv", "results/distributed/tf-defaults/matrix.csv"][len(argv):])[:2]
    try:
        ff, tf = (_load(p) for p in paths)
    except OSError as e:
        print(f"distributed_matrix_docs: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    print(table(ff, tf), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
