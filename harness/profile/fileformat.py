"""The files of a profile run dir (docs/results-format.md, "profile"): columns, the version,
and the reader the report uses. phases.csv and metadata.json beside them are the ordinary
`run` files (results format 2); metadata.json also carries `profile_format`."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import UsageError
from ..results import check_version

PROFILE_FORMAT = 1
READABLE_PROFILE_FORMATS = (1,)

POINTS_FILE = "profile.csv"
FIT_FILE = "profile-fit.csv"
SYSCALLS_FILE = "profile-syscalls.csv"

POINT_COLUMNS = ["run_id", "api", "op", "n_vars", "state_bytes", "nominal_bytes", "repeat", "seconds", "outcome",
                 "included", "fitted_seconds", "residual_pct"]
FIT_COLUMNS = ["run_id", "api", "op", "n_points", "n_excluded", "fixed_seconds", "per_var_seconds",
               "per_byte_seconds", "gbps_asymptote", "roofline_phase", "roofline_gbps", "roofline_fraction",
               "r2", "median_abs_residual_pct", "max_abs_residual_pct", "clamped", "at_vars",
               "dominant_64MiB", "dominant_64MiB_share", "dominant_1GiB", "dominant_1GiB_share", "note"]
SYSCALL_COLUMNS = ["api", "n_vars", "state_bytes", "wall_seconds", "write_seconds", "fsync_seconds",
                   "open_rename_seconds", "read_seconds", "tf_compute_python_seconds", "overlap", "dominant",
                   "write_calls", "fsync_calls", "note"]


def _rows(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{path}: not a readable CSV ({type(e).__name__})") from None


def is_profile_dir(d: Path) -> bool:
    return (Path(d) / POINTS_FILE).is_file()


def read_profile(d: Path, metadata: dict | None) -> tuple[list[dict], list[dict]]:
    """(points, fits) of a profile dir; the version in metadata.json is checked first."""
    d = Path(d)
    if metadata is not None:
        check_version(metadata.get("profile_format"), READABLE_PROFILE_FORMATS, "profile_format",
                      d / "metadata.json", "see the profile section of docs/results-format.md")
    points = _rows(d / POINTS_FILE)
    fits = _rows(d / FIT_FILE) if (d / FIT_FILE).is_file() else []
    for name, rows, needed in ((POINTS_FILE, points, ["api", "op", "n_vars", "state_bytes", "seconds", "included"]),
                               (FIT_FILE, fits, ["api", "op", "fixed_seconds", "per_var_seconds", "per_byte_seconds"])):
        if rows and any(c not in rows[0] for c in needed):
            raise UsageError(f"{d / name}: not a ckpt-harness profile file (missing columns)")
    return points, fits
