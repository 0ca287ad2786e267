"""The one outcome vocabulary of the project.

Every verdict anywhere (the oracle after a restore, a crash state, a catalog
row, a replayed case) is an `Outcome` plus a one-line detail. Outcomes are
ordered from best to worst so that the worst of several can be taken with max().

Single-restore outcomes (the oracle, issue 2):
    complete       every expected variable present and bit-identical
    uninitialized  TF1: variables left uninitialized after restore
    mismatch       a variable restored with values that differ from the save
    unexpected     the checkpoint holds keys the model does not have
    missing        the model expects a variable/slot the checkpoint lacks
    error          restore raised (the detail carries the TF error line)

Crash-state outcomes (a crash during save k, after saves 1..k-1 completed):
    new        the latest checkpoint restores save k exactly
    rollback   it restores save k-1 (or an earlier completed save) exactly
    detected   the latest fails with a clear error but an older one is intact
    lost       no intact checkpoint can be restored although one completed
    silent     restore succeeded but the values equal no completed save
    crash      the restoring process died
    hang       the restore exceeded its timeout
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(str, enum.Enum):
    # single-restore verdicts
    COMPLETE = "complete"
    UNINITIALIZED = "uninitialized"
    UNEXPECTED = "unexpected"
    MISMATCH = "mismatch"
    MISSING = "missing"
    ERROR = "error"
    # crash-state verdicts
    NEW = "new"
    ROLLBACK = "rollback"
    DETECTED = "detected"
    LOST = "lost"
    SILENT = "silent"
    CRASH = "crash"
    HANG = "hang"

    def __str__(self) -> str:  # so f-strings and CSVs show the plain word
        return self.value

    @property
    def is_failure(self) -> bool:
        return self not in _OK

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_OK = {Outcome.COMPLETE, Outcome.NEW, Outcome.ROLLBACK}

# worst last, within each family; crash family above single-restore family
_SEVERITY = {
    Outcome.COMPLETE: 0,
    Outcome.UNINITIALIZED: 1,
    Outcome.UNEXPECTED: 2,
    Outcome.MISMATCH: 3,
    Outcome.MISSING: 4,
    Outcome.ERROR: 5,
    Outcome.NEW: 0,
    Outcome.ROLLBACK: 1,
    Outcome.DETECTED: 2,
    Outcome.LOST: 3,
    Outcome.CRASH: 4,
    Outcome.HANG: 5,
    Outcome.SILENT: 6,
}

SINGLE_RESTORE = (Outcome.COMPLETE, Outcome.UNINITIALIZED, Outcome.UNEXPECTED,
                  Outcome.MISMATCH, Outcome.MISSING, Outcome.ERROR)
CRASH_STATE = (Outcome.NEW, Outcome.ROLLBACK, Outcome.DETECTED, Outcome.LOST,
               Outcome.SILENT, Outcome.CRASH, Outcome.HANG)


@dataclass(frozen=True)
class Verdict:
    """An outcome and a one-line explanation of it."""

    outcome: Outcome
    detail: str = ""

    def __post_init__(self):
        # details end up in CSV cells and terminal tables: keep them one line
        object.__setattr__(self, "detail", " ".join(str(self.detail).split())[:500])

    @property
    def ok(self) -> bool:
        return not self.outcome.is_failure

    def as_dict(self) -> dict:
        return {"outcome": self.outcome.value, "detail": self.detail}

