"""Load the results of `run` and `crash` directories for the HTML report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..outcomes import Outcome
from ..results import PHASE_COLUMNS, READABLE_FORMAT_VERSIONS, ROOFLINE_FOR, check_version

PHASES_FILE = "phases.csv"
CRASH_FILE = "crash.csv"
MATRIX_FILE = "matrix.csv"  # the crash safety matrix of scripts/crash_matrix.py (results/crash/)
METADATA_FILE = "metadata.json"

# the columns the report reads; the files may have more
PHASE_NEEDED = ["run_id", "scenario", "api", "device", "n_vars", "state_bytes", "phase",
                "repeat", "seconds", "gbps", "roofline_fraction", "outcome"]
CRASH_NEEDED = ["run_id", "api", "mode", "outcome"]
MATRIX_NEEDED = ["env", "target", "mode", "model", "status", "states", "worst", "replay", "commit"]

_NUMERIC_PHASE_COLUMNS = ["n_vars", "state_bytes", "repeat", "seconds", "gbps", "roofline_fraction",
                          "extra_seconds", "peak_rss_bytes", "gpu_peak_bytes"]


@dataclass
class RunData:
    """Everything the report shows, concatenated over the given run dirs."""

    dirs: list[Path]
    phases: "object | None" = None      # pandas DataFrame or None
    crash: "object | None" = None       # pandas DataFrame or None
    matrix: "object | None" = None      # pandas DataFrame (crash safety matrix) or None
    metadata: dict[str, dict] = field(default_factory=dict)  # run dir name -> metadata.json


def _read_csv(path: Path, needed: list[str]):
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: not a readable CSV ({type(e).__name__})") from None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: not a ckpt-harness results file (missing columns: {', '.join(missing)})")
    return frame


def _numeric(frame, columns):
    import pandas as pd

    for c in columns:
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c].replace("", None), errors="coerce")
    return frame


def _read_metadata(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise UsageError(f"{path}: not readable as JSON") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    check_version(data.get("format_version"), READABLE_FORMAT_VERSIONS, "format_version", path,
                  "see History in docs/results-format.md")
    return data


def failed_repeat_rows(frame):
    """Boolean Series: the save and restore rows of a repeat (run, scenario, repeat) whose restore
    or verify outcome is not `complete`.

    Format 2 leaves their gbps and roofline_fraction empty; format 1 filled them in. The report
    blanks them for both and never computes them back, so a restore that restored nothing is
    not drawn as a fast one.
    """
    outcome = frame["outcome"].astype(str)
    bad = (outcome != "") & (outcome != Outcome.COMPLETE.value)
    key = frame["run_id"].astype(str) + "\0" + frame["scenario"].astype(str) + "\0" + frame["repeat"].astype(str)
    return key.isin(set(key[bad])) & frame["phase"].isin(list(ROOFLINE_FOR))


def load_runs(dirs: list[str | Path]) -> RunData:
    """Read phases.csv, crash.csv, matrix.csv and metadata.json of each dir.

    A dir must hold at least one of phases.csv / crash.csv / matrix.csv; anything
    else is a UsageError with one line naming the problem.
    """
    import pandas as pd

    if not dirs:
        raise UsageError("no run dir given")
    paths = [Path(d) for d in dirs]
    phases, crashes, matrices, metadata = [], [], [], {}
    for d in paths:
        if not d.is_dir():
            raise UsageError(f"run dir {d} does not exist")
        # the version first: a file of an unknown format is refused before it is parsed as a known one
        # (a dir without metadata.json, e.g. copied results files alone, has no version to check)
        if (d / METADATA_FILE).is_file():
            metadata[d.name] = _read_metadata(d / METADATA_FILE)
        found = False
        if (d / PHASES_FILE).is_file():
            phases.append(_read_csv(d / PHASES_FILE, PHASE_NEEDED))
            found = True
        if (d / CRASH_FILE).is_file():
            crashes.append(_read_csv(d / CRASH_FILE, CRASH_NEEDED))
            found = True
        if (d / MATRIX_FILE).is_file():
            matrices.append(_read_csv(d / MATRIX_FILE, MATRIX_NEEDED))
            found = True
        if not found:
            raise UsageError(f"{d} holds none of {PHASES_FILE}, {CRASH_FILE}, {MATRIX_FILE} (not a results dir)")

    data = RunData(dirs=paths, metadata=metadata)
    if phases:
        frame = pd.concat(phases, ignore_index=True)
        for c in PHASE_COLUMNS:
            if c not in frame.columns:
                frame[c] = ""
        frame = _numeric(frame, _NUMERIC_PHASE_COLUMNS)
        failed = failed_repeat_rows(frame)
        frame.loc[failed, ["gbps", "roofline_fraction"]] = float("nan")
        data.phases = frame
    if crashes:
        frame = pd.concat(crashes, ignore_index=True)
        data.crash = _numeric(frame, ["orphan_bytes"])
    if matrices:
        data.matrix = pd.concat(matrices, ignore_index=True)
    if all(f is None or f.empty for f in (data.phases, data.crash, data.matrix)):
        raise UsageError(f"the results in {', '.join(map(str, paths))} have no rows")
    return data


def newest_run_dirs(roots=("results/runs", "results/crash")) -> list[Path]:
    """The newest run dir under each default results root (for `report` without args)."""
    found = []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        candidates = [d for d in root.iterdir()
                      if d.is_dir() and ((d / PHASES_FILE).is_file() or (d / CRASH_FILE).is_file())]
        if candidates:
            found.append(max(candidates, key=lambda d: d.name))  # run ids start with a UTC timestamp
    return found
