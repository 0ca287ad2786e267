"""The judge applied to a live model: after a restore, is the state exactly what was saved?

Everything streams (one variable in memory at a time): the live variables are
fingerprinted one by one and handed, with the manifest's fingerprints, the
checkpoint's keys and TF1's uninitialized variables, to the one judge
(core.judge).
"""

from __future__ import annotations

from ..outcomes import Outcome, Verdict
from .core import error_summary, judge, name_list
from .manifest import Manifest, fingerprint


def live_fingerprints(adapter, skip=()) -> dict[str, str]:
    """Fingerprint of every live variable but `skip` (streaming)."""
    return {name: fingerprint(v) for name, v in adapter.iter_values(skip=skip)}


def expected_digests(manifest: Manifest) -> dict[str, str]:
    return {name: e.digest for name, e in manifest.entries.items()}


def compare(adapter, manifest: Manifest, ckpt_path: str | None = None) -> Verdict:
    """Judge the adapter's live state against `manifest` (and the keys held at `ckpt_path`)."""
    held = adapter.checkpoint_names(ckpt_path) if ckpt_path else None
    uninit = adapter.uninitialized()
    # an uninitialized TF1 variable cannot be read: fingerprint only the others
    live = live_fingerprints(adapter, skip=set(uninit))
    # the model's names are the adapter's, also for a variable it cannot read back
    for name in adapter.expected_names():
        if name not in live and name not in uninit:
            live[name] = ""  # a model variable with no readable value: differs from any save
    return judge(expected_digests(manifest), live, held_keys=held, uninitialized=uninit)


def restore_and_verify(adapter, ckpt_path: str, manifest: Manifest, poison: bool = True) -> Verdict:
    """Poison the live state, restore `ckpt_path`, and judge the result."""
    if poison:
        adapter.poison()
    try:
        adapter.restore(ckpt_path)
    except Exception as e:  # any restore failure is a verdict, not a crash of the harness
        return error_verdict(e, adapter, manifest, ckpt_path)
    return compare(adapter, manifest, ckpt_path)


def error_verdict(exc: BaseException, adapter=None, manifest: Manifest | None = None,
                  ckpt_path: str | None = None) -> Verdict:
    """`error`, with the TF error line and, when the checkpoint's keys can be read, what is
    missing from it or extra in it (the usual reason a restore raises)."""
    detail = error_summary(exc)
    if adapter is not None and manifest is not None and ckpt_path:
        try:
            model = set(adapter.expected_names())
            held = set(adapter.checkpoint_names(ckpt_path))
            if model - held:
                detail += f"; missing from the checkpoint: {name_list(model - held)}"
            if held - model:
                detail += f"; not in the model: {name_list(held - model)}"
        except Exception:
            pass  # an unreadable checkpoint: the restore error already says so
    return Verdict(Outcome.ERROR, detail)
