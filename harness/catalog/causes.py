"""The catalog: every registered scenario (cause x API x variant), run once each
in this process, turned into table rows.

Scenario modules register themselves with kit.scenario on import; this module
imports them, runs them in the article's cause order, and never lets one
scenario's surprise stop the others.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from ..judge.core import error_summary
from ..outcomes import Outcome, Verdict
from .kit import CAUSES, REGISTRY, Result, Scenario

API_ORDER = ("tf1-saver", "tf2-checkpoint", "keras-weights")

COLUMNS = ["cause", "variant", "api", "tf_version", "keras_version", "commit", "observed", "outcome", "error_type",
           "message", "fix", "fix_works", "fix_outcome", "fix_detail", "fix_accepts", "fix_model_vars",
           "fix_ckpt_values", "tf_check", "detail", "note", "seconds"]

OBSERVED_ABORTED = "scenario aborted"


def scenarios() -> list[Scenario]:
    from . import causes_keras, causes_tf1, causes_tf2  # noqa: F401  (registration)
    return sorted(REGISTRY, key=lambda s: (CAUSES.index(s.cause), API_ORDER.index(s.api), s.variant))


def quiet_tensorflow() -> None:
    """TF and Keras talk a lot at import and on partial restores; the table is the output."""
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def versions() -> tuple[str, str]:
    import tensorflow as tf

    from ..tfenv import keras_info
    return tf.__version__, keras_info()["keras_version"]   # tf-keras's under --keras 2


def source_commit(directory: str | os.PathLike | None = None) -> str:
    """Short hash of the commit checked out at `directory` (default: where the harness
    runs from), "-dirty" when tracked files differ from it; "" outside a git checkout.
    Reads only: --no-optional-locks keeps git from refreshing the index. (Not
    metadata.git_commit: that module needs psutil, and scripts/catalog_all_tf.sh runs
    the catalog in venvs that hold TensorFlow alone.)"""
    here = Path(directory) if directory is not None else Path(__file__).resolve().parent
    git = ["git", "--no-optional-locks", "-C", str(here)]
    try:
        head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return ""
        # results/ is left out: the tables being written there are not the code that makes them
        dirty = subprocess.run(git + ["diff", "--quiet", "HEAD", "--", ":(top)", ":(top,exclude)results"],
                               capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 1 else "")


def _fix_columns(result: Result) -> dict:
    fix = result.fix
    if fix is None:
        detail = ("no fix needed: the restore is complete" if result.verdict.outcome is Outcome.COMPLETE
                  else f"no fix tried, and the restore is {result.verdict.outcome}")
        return {"fix_works": result.fix_works, "fix_outcome": "", "fix_detail": detail, "fix_accepts": "",
                "fix_model_vars": "", "fix_ckpt_values": ""}
    return {"fix_works": result.fix_works, "fix_outcome": fix.strict.outcome.value, "fix_detail": fix.strict.detail,
            "fix_accepts": ", ".join(fix.accepts),
            "fix_model_vars": str(fix.model_vars) if fix.model_vars or fix.ckpt_values else "",
            "fix_ckpt_values": str(fix.ckpt_values) if fix.model_vars or fix.ckpt_values else ""}


def _without(text: str, work: Path) -> str:
    """`text` with the scratch directory removed from paths, as error_summary does."""
    for d in sorted({str(work), os.path.realpath(work)}, key=len, reverse=True):
        text = text.replace(d + "/", "").replace(d, ".")
    return text


def to_row(sc: Scenario, result: Result, seconds: float, work: Path | None = None, commit: str = "") -> dict:
    err = result.error
    tf_version, keras_version = versions()
    row = {
        "cause": sc.cause, "variant": sc.variant, "api": sc.api, "tf_version": tf_version,
        "keras_version": keras_version, "commit": commit,
        "observed": result.observed, "outcome": result.verdict.outcome.value,
        "error_type": type(err).__name__ if err else "",
        "message": error_summary(err, *([str(work)] if work else [])) if err else "",
        "fix": sc.fix, **_fix_columns(result),
        "tf_check": result.tf_check, "detail": result.verdict.detail, "note": result.note,
        "seconds": f"{seconds:.3f}",
    }
    if work is not None:  # temp paths differ per run; tables of two TF versions should diff cleanly
        for key in ("detail", "fix_detail", "tf_check", "note"):
            row[key] = _without(row[key], work)
    return row


def run_one(sc: Scenario, work: Path, commit: str = "") -> dict:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sc.func(work)
    except Exception as e:  # a scenario step that this TF version does differently
        row = to_row(sc, Result(OBSERVED_ABORTED, Verdict(Outcome.ERROR, error_summary(e, str(work))), error=e),
                     time.perf_counter() - start, work, commit)
        row["fix_detail"] = "the scenario aborted before its fix"  # fix_works: "no", the restore is an error
        return row
    return to_row(sc, result, time.perf_counter() - start, work, commit)


def run_catalog(progress: Callable[[dict], None] | None = None, commit: str | None = None) -> list[dict]:
    """Every scenario's row; `commit` (default: source_commit()) goes in each row."""
    quiet_tensorflow()
    commit = source_commit() if commit is None else commit
    rows = []
    with tempfile.TemporaryDirectory(prefix="ckpt-catalog-") as tmp:
        for sc in scenarios():
            row = run_one(sc, Path(tmp), commit)
            rows.append(row)
            if progress:
                progress(row)
    return rows
