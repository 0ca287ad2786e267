"""The catalog: every registered scenario (cause x API x variant), run once each
in this process, turned into table rows.

Scenario modules register themselves with kit.scenario on import; this module
imports them, runs them in the article's cause order, and never lets one
scenario's surprise stop the others.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from ..outcomes import Outcome
from .judge import error_verdict, first_line
from .kit import CAUSES, REGISTRY, Result, Scenario

API_ORDER = ("tf1-saver", "tf2-checkpoint", "keras-weights")

COLUMNS = ["cause", "variant", "api", "tf_version", "keras_version", "observed", "outcome", "error_type", "message",
           "fix", "fix_works", "fix_outcome", "fix_detail", "tf_check", "detail", "note", "seconds"]

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
    import keras
    import tensorflow as tf
    return tf.__version__, keras.__version__


def to_row(sc: Scenario, result: Result, seconds: float, work: Path | None = None) -> dict:
    err = result.error
    fix = result.fix_verdict
    tf_version, keras_version = versions()
    row = {
        "cause": sc.cause, "variant": sc.variant, "api": sc.api, "tf_version": tf_version,
        "keras_version": keras_version,
        "observed": result.observed, "outcome": result.verdict.outcome.value,
        "error_type": type(err).__name__ if err else "",
        "message": first_line(err) if err else "",
        "fix": sc.fix,
        "fix_works": "" if fix is None else ("yes" if fix.outcome is Outcome.COMPLETE else "no"),
        "fix_outcome": "" if fix is None else fix.outcome.value,
        "fix_detail": "" if fix is None else fix.detail,
        "tf_check": result.tf_check, "detail": result.verdict.detail, "note": result.note,
        "seconds": f"{seconds:.3f}",
    }
    if work is not None:  # temp paths differ per run; tables of two TF versions should diff cleanly
        for key in ("message", "detail", "fix_detail", "tf_check", "note"):
            row[key] = row[key].replace(str(work), "<tmp>")
    return row


def run_one(sc: Scenario, work: Path) -> dict:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sc.func(work)
    except Exception as e:  # a scenario step that this TF version does differently
        row = to_row(sc, Result(OBSERVED_ABORTED, error_verdict(e), error=e), time.perf_counter() - start, work)
        row["fix_works"] = "no"
        return row
    return to_row(sc, result, time.perf_counter() - start, work)


def run_catalog(progress: Callable[[dict], None] | None = None) -> list[dict]:
    quiet_tensorflow()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ckpt-catalog-") as tmp:
        for sc in scenarios():
            row = run_one(sc, Path(tmp))
            rows.append(row)
            if progress:
                progress(row)
    return rows
