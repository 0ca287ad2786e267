"""The catalog's small oracle: compare a restored model with what was saved.

The catalog models are a handful of tiny variables, so the comparison is by
value over readable names (see reader.py): `reference` is what the checkpoint
was meant to hold, `restored` what the model holds after the restore. The
verdict uses the project's one vocabulary (harness/outcomes.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ..outcomes import Outcome, Verdict


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "OSU":
        return bool(np.all(a == b))
    return a.tobytes() == b.tobytes()


def _names(items: Iterable[str], limit: int = 4) -> str:
    items = sorted(items)
    more = f" (+{len(items) - limit})" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def judge(reference: Mapping[str, object], restored: Mapping[str, object], *,
          uninitialized: Iterable[str] = (), fresh: Iterable[str] = (),
          reshaped: Iterable[str] = ()) -> Verdict:
    """Verdict of one restore.

    uninitialized: model variables with no value at all (TF1).
    fresh: model variables that are new on purpose (the fix initialises them),
           so their absence from the checkpoint is not a fault.
    reshaped: model variables whose value no longer has the declared shape
           (TF1 Saver assigns a checkpoint value of another shape without complaint).
    """
    uninitialized = set(uninitialized)
    fresh = set(fresh)
    model_names = set(restored) | uninitialized
    missing = model_names - set(reference) - fresh - uninitialized
    unexpected = set(reference) - model_names
    mismatch = {n for n in set(restored) & set(reference) if n not in fresh and not _same(restored[n], reference[n])}
    reshaped = set(reshaped) - fresh
    findings = [
        (Outcome.UNINITIALIZED, uninitialized, "uninitialized"),
        (Outcome.UNEXPECTED, unexpected, "unexpected (in the checkpoint, not in the model)"),
        (Outcome.MISMATCH, mismatch, "mismatch (value differs from the save)"),
        (Outcome.MISMATCH, reshaped, "mismatch (value shape differs from the variable's declared shape)"),
        (Outcome.MISSING, missing, "missing (in the model, not in the checkpoint)"),
    ]
    present = [(o, names, label) for o, names, label in findings if names]
    if not present:
        return Verdict(Outcome.COMPLETE, f"{len(model_names)} variables restored bit-identical")
    worst = max(present, key=lambda f: f[0].severity)[0]
    detail = "; ".join(f"{label}: {_names(names)}" for _o, names, label in present)
    return Verdict(worst, detail)


def error_verdict(exc: BaseException) -> Verdict:
    return Verdict(Outcome.ERROR, f"{type(exc).__name__}: {first_line(exc)}")


# lines of TF's graph-mode error text that carry no information about the cause
_NOISE_PREFIXES = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Traceback",
                   "Original stack trace", "Caused by op")


def first_line(exc: BaseException) -> str:
    """First informative line of an exception message (TF wraps the cause in boilerplate).

    A line ending in ':' announces the next one, which is kept with it; TF1's
    generic "Restoring from checkpoint failed" gets the "Key ... not found" line
    that names the culprit.
    """
    text = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(_NOISE_PREFIXES)]
    if not useful:
        return lines[0][:300] if lines else ""
    line = useful[0]
    if line.endswith(":") and len(useful) > 1:
        line = f"{line} {useful[1]}"
    key = next((ln for ln in useful[1:] if ln.startswith("Key ") and "not found in checkpoint" in ln), None)
    if key:
        line = f"{key} ({line.split('. ')[0]})"
    return line[:300]
