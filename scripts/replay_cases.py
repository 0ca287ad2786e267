#!/usr/bin/env python3
"""Replay every kept crash case and say whether each still judges as recorded.

    python scripts/replay_cases.py [--cases DIR] [CASE_DIR ...]

For each case folder (default: every DIR/ENV/CASE under results/crash/cases) this runs
`ckpt-harness replay CASE` with the TensorFlow and Keras the case was recorded with: the
folder ENV is `tf-VERSION-keras3` or `tf-VERSION-tf_keras` (scripts/crash_matrix.py), and the
case's own target says which Keras. The Python is this one when its TensorFlow is VERSION,
else $VENV_DIR/tf-VERSION/bin/python (default VENV_DIR /tmp/ckpt-record-venvs, where
crash_matrix.py and record_all.sh leave them). The harness comes from this checkout.

Prints one line per case and a count of each status:
    same       outcome and detail as recorded
    detail     the outcome as recorded, another detail (a cause that moved: worth a look)
    DIFFERENT  another outcome: the committed case no longer says what the code does
    ERROR      the replay could not run (no such Python, a bad case folder)
Exit 1 when any case is DIFFERENT or ERROR.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ENV = re.compile(r"^tf-(\d+\.\d+\.\d+)-(keras3|tf_keras)$")
_STATUS = re.compile(r"^replayed .*: (\w+) \((same as recorded|same outcome as recorded, another detail|"
                     r"DIFFERENT from the recorded \w+)\)$", re.M)


def tf_version(python: str) -> str:
    code = ("import importlib.metadata as m\nfor n in ('tensorflow-cpu', 'tensorflow'):\n"
            "    try:\n        print(m.version(n)); break\n    except m.PackageNotFoundError:\n        pass")
    try:
        return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def python_for(version: str, venv_dir: str, own: str) -> str | None:
    if own == version:
        return sys.executable
    py = os.path.join(venv_dir, f"tf-{version}", "bin", "python")
    return py if os.access(py, os.X_OK) else None


def replay_one(python: str, case: str, timeout: float) -> tuple[str, str]:
    """(status, the replay's output)."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)   # replay selects the case's own Keras
    try:
        r = subprocess.run([python, "-m", "harness", "replay", case], capture_output=True, text=True,
                           env=env, cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "ERROR", f"no answer in {timeout:.0f} s"
    m = _STATUS.search(r.stdout)
    if r.returncode not in (0, 1) or not m:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return "ERROR", f"exit {r.returncode}: {tail}"
    kind = m.group(2)
    status = "same" if kind == "same as recorded" else "detail" if kind.startswith("same outcome") else "DIFFERENT"
    return status, r.stdout.strip()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("cases", nargs="*", help="case folders (default: every one under --cases)")
    p.add_argument("--cases-dir", default=os.path.join(REPO, "results", "crash", "cases"))
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per replay")
    args = p.parse_args(argv)
    cases = args.cases or sorted(glob.glob(os.path.join(args.cases_dir, "*", "*", "")))
    if not cases:
        print(f"replay_cases: no case folders under {args.cases_dir}", file=sys.stderr)
        return 2
    venv_dir = os.environ.get("VENV_DIR") or "/tmp/ckpt-record-venvs"
    own = tf_version(sys.executable)
    counts: dict[str, int] = {}
    for case in cases:
        case = case.rstrip("/")
        env = os.path.basename(os.path.dirname(case))
        m = _ENV.match(env)
        python = python_for(m.group(1), venv_dir, own) if m else None
        if not m:
            status, out = "ERROR", f"{env}: not a tf-VERSION-keras3 / tf-VERSION-tf_keras folder"
        elif python is None:
            status, out = "ERROR", f"no Python with tensorflow-cpu {m.group(1)} (this one has {own or 'none'}; " \
                                   f"none in {venv_dir})"
        else:
            status, out = replay_one(python, case, args.timeout)
        counts[status] = counts.get(status, 0) + 1
        print(f"{status:9s} {os.path.relpath(case, REPO)}", flush=True)
        if status != "same":
            for line in out.splitlines()[1:] if status != "ERROR" else [out]:
                print(f"          {line.strip()}", flush=True)
    print("replay_cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" of {len(cases)} cases")
    return 1 if counts.get("DIFFERENT") or counts.get("ERROR") else 0


if __name__ == "__main__":
    sys.exit(main())
