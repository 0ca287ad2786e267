"""The one outcome vocabulary of the project, with one total order.

Every verdict anywhere (the judge after a restore, a crash state, a catalog
row, a replayed case) is an `Outcome` plus a one-line detail.

Single-restore outcomes:
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

Distributed outcome (tf.distribute: several tasks or replicas restore one checkpoint):
    diverged   tasks (or replicas) disagree about the restored state: their verdicts or
               digests differ, although each alone may look complete

The order (`ORDER`, best first) is one total order over all of them, so the
worst of any mix is well defined. It ranks by what a user who trusts the
result loses, and loud before quiet: an outcome the user notices (extra keys,
an uninitialized-value error, a restore that raises, a process that dies or
hangs) is less severe than one that hands back wrong state without a word
(a variable silently left at its initial value, values that differ, a crash
state whose restore equals no save).

`diverged` sits between `mismatch` and `silent`: it is as quiet as a mismatch (no task
raises) and worse, since training goes on with replicas that hold different state; it
ranks below `silent` because every task's state may still equal some save.
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
    # distributed verdict
    DIVERGED = "diverged"

    def __str__(self) -> str:  # so f-strings and CSVs show the plain word
        return self.value

    @property
    def is_failure(self) -> bool:
        return self not in _OK

    @property
    def severity(self) -> int:
        """Position in ORDER: 0 is the best outcome; no two outcomes share one."""
        return _RANK[self]

    # Outcome is a str: without these, <, > and max() would compare the words alphabetically
    def __lt__(self, other):
        return self.severity < Outcome(other).severity

    def __le__(self, other):
        return self.severity <= Outcome(other).severity

    def __gt__(self, other):
        return self.severity > Outcome(other).severity

    def __ge__(self, other):
        return self.severity >= Outcome(other).severity

    __hash__ = str.__hash__


# best first; see the module docstring for why
ORDER = (
    Outcome.COMPLETE, Outcome.NEW, Outcome.ROLLBACK,
    Outcome.DETECTED, Outcome.UNEXPECTED, Outcome.UNINITIALIZED, Outcome.ERROR,
    Outcome.LOST, Outcome.CRASH, Outcome.HANG,
    Outcome.MISSING, Outcome.MISMATCH, Outcome.DIVERGED, Outcome.SILENT,
)
_RANK = {o: i for i, o in enumerate(ORDER)}
assert len(_RANK) == len(Outcome), "every outcome needs a place in ORDER"

_OK = {Outcome.COMPLETE, Outcome.NEW, Outcome.ROLLBACK}

SINGLE_RESTORE = (Outcome.COMPLETE, Outcome.UNINITIALIZED, Outcome.UNEXPECTED,
                  Outcome.MISMATCH, Outcome.MISSING, Outcome.ERROR)
CRASH_STATE = (Outcome.NEW, Outcome.ROLLBACK, Outcome.DETECTED, Outcome.LOST,
               Outcome.SILENT, Outcome.CRASH, Outcome.HANG)


def worst(outcomes) -> Outcome | None:
    """The most severe of `outcomes` (Outcome members or their words; empty words and None
    are skipped), or None when there is none. Unknown words raise ValueError."""
    found = [Outcome(o) for o in outcomes if o not in (None, "")]
    return max(found, key=_RANK.__getitem__) if found else None


@dataclass(frozen=True)
class Verdict:
    """An outcome and a one-line explanation of it."""

    outcome: Outcome
    detail: str = ""

    def __post_init__(self):
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        # details end up in CSV cells and terminal tables: keep them one line
        object.__setattr__(self, "detail", " ".join(str(self.detail).split())[:500])

    @property
    def ok(self) -> bool:
        return not self.outcome.is_failure

    def as_dict(self) -> dict:
        return {"outcome": self.outcome.value, "detail": self.detail}
