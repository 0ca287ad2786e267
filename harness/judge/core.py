"""The one judge: is a restored state exactly what was saved?

Pure logic over fingerprints (no TensorFlow), used by `run` (judge/restore.py),
the crash checker (faults/checker.py) and the failure catalog (catalog/kit.py):

    judge(expected, live, held_keys=..., uninitialized=..., ignored=...) -> Verdict

`expected` maps each name the restore must give back to the fingerprint of its
saved value; `live` maps each variable the model holds after the restore to the
fingerprint of its value now. Names are whatever the caller uses consistently
(the harness's logical variable names, or the catalog's readable names).

Also here: `name_list` and `error_summary`, the one way any verdict quotes
names and TensorFlow errors in its one-line detail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from ..outcomes import Outcome, Verdict, worst

SHOW = 3  # names quoted per problem in a detail line


def name_list(items: Iterable[str], show: int = SHOW) -> str:
    """A few names, sorted, and how many more: for one-line details."""
    items = sorted(items)
    more = f" (+{len(items) - show} more)" if len(items) > show else ""
    return ", ".join(items[:show]) + more


def judge(expected: Mapping[str, str], live: Mapping[str, str], *,
          held_keys: Iterable[str] | None = None, uninitialized: Iterable[str] = (),
          ignored: Iterable[str] = (), wrong_shape: Iterable[str] = ()) -> Verdict:
    """Verdict of one restore.

    expected       name -> fingerprint of the value the restore must give back
    live           name -> fingerprint of each model variable after the restore
    held_keys      names the checkpoint holds, when the caller read them (default: expected's)
    uninitialized  model variables with no value at all (TF1)
    ignored        model names not judged: new on purpose (a fix initialises them) or
                   deliberately left out of the restore
    wrong_shape    model variables whose value no longer has the variable's declared shape
                   (TF1's Saver assigns a checkpoint value of another shape without complaint)

    Problems, each with its names: missing (a model variable the checkpoint or `expected`
    lacks), unexpected (a checkpoint key the model lacks), uninitialized, mismatch (a value
    whose fingerprint differs, or whose shape is wrong). The outcome is the worst present,
    and the detail lists every problem, worst first.
    """
    ignored = set(ignored)
    uninit = set(uninitialized) - ignored
    model = (set(live) | uninit) - ignored
    held = set(expected) if held_keys is None else set(held_keys)
    judged = held & set(expected)
    missing = (model - uninit) - judged
    unexpected = held - model - ignored
    differ = {n for n in (model - uninit) & judged if live[n] != expected[n]}
    reshaped = (set(wrong_shape) & model) - differ
    found = [
        (Outcome.MISMATCH, differ, f"{len(differ)} of {len(judged & model)} variable(s) differ from the save"),
        (Outcome.MISMATCH, reshaped, f"{len(reshaped)} variable(s) hold a value of another shape than declared"),
        (Outcome.MISSING, missing, f"{len(missing)} model variable(s) not in the checkpoint"),
        (Outcome.UNINITIALIZED, uninit, f"{len(uninit)} variable(s) uninitialized after restore"),
        (Outcome.UNEXPECTED, unexpected, f"{len(unexpected)} checkpoint key(s) the model lacks"),
    ]
    found = [f for f in found if f[1]]
    if not found:
        return Verdict(Outcome.COMPLETE, f"{len(model)} variables bit-identical")
    found.sort(key=lambda f: f[0].severity, reverse=True)  # stable: ties keep the order above
    outcome = worst(o for o, _, _ in found)
    return Verdict(outcome, "; ".join(f"{o}: {text}: {name_list(names)}" for o, names, text in found))


# -- TensorFlow's errors in one line ---------------------------------------------------
# lines of TF's error text that say nothing about the cause
_NOISE = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Traceback",
          "Original stack trace", "Original error", "Caused by op")


def _informative_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(_NOISE)]
    if not useful:
        return lines[0] if lines else ""
    line = useful[0]
    if line.endswith(":") and len(useful) > 1:  # a line that announces the next one keeps it
        line = f"{line} {useful[1]}"
    # TF1's generic "Restoring from checkpoint failed" is followed by the line naming the key
    key = next((ln for ln in useful[1:] if ln.startswith("Key ") and "not found in checkpoint" in ln), None)
    if key:
        line = f"{key} ({line.split('. ')[0]})"
    return line


def error_summary(exc: BaseException, *dirs: str, limit: int = 300) -> str:
    """'Type: the informative line' of an exception, with the given scratch directories
    removed from paths (they differ per run) and TF's function-node prefix dropped."""
    line = _informative_line(exc)
    for d in sorted({p for d in dirs if d for p in (d, os.path.realpath(d))}, key=len, reverse=True):
        line = line.replace(d + "/", "").replace(d, ".")
    line = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", line)
    return f"{type(exc).__name__}: {line}"[:limit]
