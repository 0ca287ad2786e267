"""Case folders: a failing crash state, self-describing and replayable.

    <run>/cases/<api>/<mode>-<NNNN>/
        state/          the checkpoint directory exactly as the crash left it
        manifests/      gen-1.json .. gen-k.json: the values of every save
        case.json       API, TF version, mode/model, the operations applied,
                        outcome and detail, and what replay needs

Kept small on purpose: identical states share one folder; a state whose
failure reads the same as one already kept (same api, outcome, fault kind and
detail, numbers and the power-model crash point aside) points to that folder as `similar_case` instead of
getting its own; and at most `cap` folders are kept per (api, outcome, fault
kind). States without a folder are still rows in crash.csv, and the run says
how many there are.

`replay(case_dir)` copies state/ into a fresh directory and runs the oracle
on it again (harness/faults/checker.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time

from .. import __version__
from ..errors import UsageError
from ..outcomes import Outcome, Verdict
from .apis import candidate_digests
from .state import BlobStore, CrashState, DirImage
from .target import CrashTarget, manifest_name

CASE_FORMAT = 1                 # written as "case_format" in case.json
READABLE_CASE_FORMATS = (1,)
DEFAULT_CAP = 5
# "power loss after op 21: rename a -> b; " - where a power-model state was cut, not what it lost
_CRASH_POINT = re.compile(r"^power loss after op \d+: [^;]*; ")


def _shape(text: str) -> str:
    """A line with its numbers blanked: two failures that differ only in offsets read the same."""
    return re.sub(r"\d+", "#", text)


class CaseKeeper:
    def __init__(self, run_dir: str, cap: int = DEFAULT_CAP, blobs: BlobStore | None = None):
        self.run_dir, self.cap = run_dir, cap
        self.blobs = blobs   # the checker's blobs: a kept case links the one it was judged from
        self.by_digest: dict[tuple, str] = {}   # (api, state digest) -> folder
        self.by_signature: dict[tuple, str] = {}
        self.per_kind: dict[tuple, int] = {}
        self.capped = 0      # failing states over the cap
        self.similar = 0     # failing states that read like a kept one
        self.kept = 0

    def keep(self, state: CrashState, verdict: Verdict, target: CrashTarget, digest: str, *,
             mode: str, model: str, manifest_dir: str, run_id: str, tf_version: str) -> tuple[str, str]:
        """(case folder, similar case), relative to the run dir, for a failing state.

        The folder is '' when the state reads like a kept one (then the second item names it)
        or when its kind is over the cap (both '')."""
        # the same bytes can be another target's state (a ModelCheckpoint file is a save_weights
        # file): a folder is one target's, since its case.json and manifests say which
        same = (target.api, digest)
        if same in self.by_digest:
            return self.by_digest[same], ""
        key = (target.api, verdict.outcome.value, state.fault_kind)
        signature = key + (_shape(_CRASH_POINT.sub("", state.fault)), _shape(verdict.detail))
        if signature in self.by_signature:
            self.similar += 1
            return "", self.by_signature[signature]
        if self.per_kind.get(key, 0) >= self.cap:
            self.capped += 1
            return "", ""
        self.per_kind[key] = self.per_kind.get(key, 0) + 1
        self.kept += 1
        rel = os.path.join("cases", target.api, f"{mode}-{self.kept:04d}")
        path = os.path.join(self.run_dir, rel)
        # large files: links, not copies (to the recording, or to the blob the checker just read)
        state.image.materialize(os.path.join(path, "state"), link=True, blobs=self.blobs)
        os.makedirs(os.path.join(path, "manifests"), exist_ok=True)
        for g in range(1, target.k + 1):
            shutil.copy2(os.path.join(manifest_dir, manifest_name(g)), os.path.join(path, "manifests"))
        write_case_json(path, {
            "case_format": CASE_FORMAT,
            "run_id": run_id,
            "state_id": state.state_id,
            "api": target.api,
            "tensorflow_version": tf_version,
            "harness_version": __version__,
            "mode": mode,
            "model": model,
            "fault": state.fault,
            "fault_kind": state.fault_kind,
            "operations": state.ops_dicts(),
            "note": state.note,
            "meta": state.meta,
            "outcome": verdict.outcome.value,
            "detail": verdict.detail,
            "orphan_bytes": state.image.orphan_bytes(),
            "files": state.image.listing(),
            "target": target.to_dict(),
            "crashed_save": target.k,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "replay": f"ckpt-harness replay {rel}",
        })
        self.by_digest[same] = rel
        self.by_signature[signature] = rel
        return rel, ""


def write_case_json(path: str, case: dict) -> None:
    from ..results import atomic_write_json
    atomic_write_json(os.path.join(path, "case.json"), case)


def load_case(case_dir: str) -> dict:
    """case.json of a case folder, checked enough to replay; UsageError otherwise.

    The case's version (`case_format`) and those of its manifests (`manifest_version`) are
    checked here, in the calling process, so that an unknown one is refused with one line
    instead of surfacing as a restore verdict from the checking process."""
    from ..judge.manifest import Manifest
    from ..results import check_version

    if not os.path.isdir(case_dir):
        raise UsageError(f"{case_dir} is not a directory")
    path = os.path.join(case_dir, "case.json")
    try:
        with open(path) as f:
            case = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{case_dir} is not a crash case (no case.json)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{path} is not a valid case file: {e}") from None
    if not isinstance(case, dict):
        raise UsageError(f"{path} is not a valid case file: not a JSON object")
    check_version(case.get("case_format"), READABLE_CASE_FORMATS, "case_format", path)
    try:
        target = CrashTarget.from_dict(case["target"])
        Outcome(case["outcome"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"{path} is not a valid case file: {e}") from None
    if not os.path.isdir(os.path.join(case_dir, "state")):
        raise UsageError(f"{case_dir} has no state/ folder")
    for g in range(1, target.k + 1):
        manifest = os.path.join(case_dir, "manifests", manifest_name(g))
        if not os.path.isfile(manifest):
            raise UsageError(f"{case_dir} lacks manifests/{manifest_name(g)}")
        Manifest.load(manifest)  # readable, and of a version this code knows
    return case


def replay(case_dir: str, timeout: float = 120.0, checker=None) -> tuple[Verdict, dict]:
    """Re-run the oracle on a copy of the case's state in a fresh directory: (verdict, case).

    A started `checker` may be passed in (and stays open); otherwise one is started here."""
    from .checker import Checker

    case = load_case(case_dir)
    target = CrashTarget.from_dict(case["target"])
    work = tempfile.mkdtemp(prefix="ckpt-replay-")
    try:
        image = DirImage.load(os.path.join(case_dir, "state"))
        state_dir = os.path.join(work, "state")
        image.materialize(state_dir)   # a copy: the case folder is never touched
        own = checker is None
        if own:
            checker = Checker(os.path.join(work, "checker.log"), timeout=timeout)
        try:
            verdict, _ = checker.check(target, state_dir, os.path.join(case_dir, "manifests"),
                                       candidate_digests(target.api, image))
        finally:
            if own:
                checker.close()
        return verdict, case
    finally:
        shutil.rmtree(work, ignore_errors=True)
