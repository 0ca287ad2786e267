"""The crash-state decision: new, rollback, detected, lost or silent.

Pure logic over the restore attempts the checker made (no TensorFlow here), so
the rules can be read and tested on their own. Crash and hang are decided by
the checker's client, which sees the restoring process die or time out.

Rules, for a crash during save k after saves 1..k-1 completed:
  * The API's own `latest` checkpoint is what a user restores.
  * It restores and equals save k         -> new
  * It restores and equals save j < k     -> rollback
  * It restores but equals no completed save (a value differs, a variable
    kept its poisoned value, ...)         -> silent
  * It fails to restore (a TF error, or `latest` itself raised):
      an older checkpoint on disk restores a completed save exactly -> detected
      none does                                                    -> lost
  * `latest` finds nothing although saves completed: a job restarts from
    scratch without an error -> lost (the detail names any intact checkpoint
    still on disk, recoverable by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..outcomes import Outcome, Verdict


@dataclass
class Attempt:
    """One restore of one checkpoint, as the checker saw it."""

    path: str                       # checkpoint prefix, relative to the state directory
    restored: bool                  # the restore call returned without raising
    error: str = ""                 # its error line when it raised
    generation: int | None = None   # the completed save whose values it equals exactly
    mismatch: str = ""              # when restored but equal to no save: what differs

    def to_dict(self) -> dict:
        return {"path": self.path, "restored": self.restored, "error": self.error,
                "generation": self.generation, "mismatch": self.mismatch}

    @classmethod
    def from_dict(cls, d: dict) -> "Attempt":
        return cls(d["path"], bool(d["restored"]), d.get("error", ""), d.get("generation"), d.get("mismatch", ""))

    def describe(self) -> str:
        if not self.restored:
            return f"{self.path}: {self.error}"
        if self.generation is not None:
            return f"{self.path} = save {self.generation}"
        return f"{self.path}: {self.mismatch}"


def decide(k: int, latest: Attempt | None, latest_error: str, older: list[Attempt]) -> Verdict:
    """Judge a state from its latest checkpoint's attempt and the older ones tried after it.

    `latest` is None when the API found no checkpoint (`latest_error` says why if
    looking raised); `older` holds attempts in the order tried (newest first).
    """
    intact = next((a for a in older if a.restored and a.generation is not None), None)
    if latest is not None and latest.restored:
        if latest.generation == k:
            return Verdict(Outcome.NEW, f"latest {latest.path} restores save {k} exactly")
        if latest.generation is not None:
            return Verdict(Outcome.ROLLBACK, f"latest {latest.path} restores save {latest.generation} "
                                             f"exactly (save {k} did not land)")
        return Verdict(Outcome.SILENT, f"latest {latest.path} restored without error but equals no "
                                       f"completed save: {latest.mismatch}")
    if latest is None and not latest_error:
        where = f"; {intact.path} (save {intact.generation}) is intact on disk but not found by the API" \
            if intact else "; no intact checkpoint on disk"
        return Verdict(Outcome.LOST, "the API finds no checkpoint to restore" + where)
    why = latest_error if latest is None else latest.describe()
    why = f"latest {why}" if latest is not None else f"finding the latest failed: {why}"
    if intact is not None:
        return Verdict(Outcome.DETECTED, f"{why}; fallback {intact.path} restores save {intact.generation}")
    tried = "; ".join(a.describe() for a in older[:2])
    return Verdict(Outcome.LOST, f"{why}; no older checkpoint restores a completed save"
                                 + (f" ({tried})" if tried else ""))
