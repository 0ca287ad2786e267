"""The completeness oracle: after a restore, is the state exactly what was saved?

Checks, all streaming (one variable in memory at a time):
  * keys: the names the model expects vs the names the checkpoint holds
  * values: each live variable's fingerprint vs the manifest written at save time
  * TF1: report_uninitialized_variables is empty
The result is one Verdict from harness.outcomes, the worst problem found first
in the detail, with counts of the rest.
"""

from __future__ import annotations

from ..outcomes import Outcome, Verdict
from .manifest import Manifest, fingerprint

_SHOW = 3  # names quoted per problem in a detail line


def name_list(items) -> str:
    """A few names, sorted, and how many more: for one-line details."""
    items = sorted(items)
    more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def live_fingerprints(adapter, only=None) -> dict[str, str]:
    """Fingerprint of every live variable (streaming)."""
    return {name: fingerprint(v) for name, v in adapter.iter_values() if only is None or name in only}


def key_problems(adapter, manifest: Manifest, ckpt_path: str | None) -> tuple[set, set]:
    """(missing, unexpected) logical names, from the checkpoint's keys when given, else the manifest."""
    expected = set(adapter.expected_names())
    held = set(adapter.checkpoint_names(ckpt_path)) if ckpt_path else set(manifest.entries)
    missing = (expected - held) | (expected - set(manifest.entries))
    unexpected = held - expected
    return missing, unexpected


def compare(adapter, manifest: Manifest, ckpt_path: str | None = None) -> Verdict:
    """Judge the adapter's live state against `manifest` (and the keys at `ckpt_path`)."""
    missing, unexpected = key_problems(adapter, manifest, ckpt_path)
    uninit = adapter.uninitialized()
    problems = []  # (outcome, detail), any order; the worst is reported first
    if missing:
        problems.append((Outcome.MISSING, f"{len(missing)} expected name(s) not in the checkpoint: {name_list(missing)}"))
    if unexpected:
        problems.append((Outcome.UNEXPECTED, f"{len(unexpected)} checkpoint name(s) the model lacks: {name_list(unexpected)}"))
    if uninit:
        problems.append((Outcome.UNINITIALIZED, f"{len(uninit)} variable(s) uninitialized after restore: {name_list(uninit)}"))
    else:
        live = live_fingerprints(adapter)
        differ = [n for n, e in manifest.entries.items() if n in live and live[n] != e.digest]
        if differ:
            problems.append((Outcome.MISMATCH, f"{len(differ)} of {len(manifest.entries)} variable(s) differ "
                                               f"from the save: {name_list(differ)}"))
    if not problems:
        return Verdict(Outcome.COMPLETE, f"{len(manifest.entries)} variables bit-identical")
    problems.sort(key=lambda p: p[0].severity, reverse=True)
    return Verdict(problems[0][0], "; ".join(d for _, d in problems))


def error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), "")
    return f"{type(exc).__name__}: {first}"


def restore_and_verify(adapter, ckpt_path: str, manifest: Manifest, poison: bool = True) -> Verdict:
    """Poison the live state, restore `ckpt_path`, and judge the result."""
    if poison:
        adapter.poison()
    try:
        adapter.restore(ckpt_path)
    except Exception as e:  # any restore failure is a verdict, not a crash of the harness
        detail = error_line(e)
        try:
            missing, unexpected = key_problems(adapter, manifest, ckpt_path)
            if missing:
                detail += f"; missing from the checkpoint: {name_list(missing)}"
            if unexpected:
                detail += f"; not in the model: {name_list(unexpected)}"
        except Exception:
            pass  # an unreadable checkpoint: the restore error already says so
        return Verdict(Outcome.ERROR, detail)
    return compare(adapter, manifest, ckpt_path)
