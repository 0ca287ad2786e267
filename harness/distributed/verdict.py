"""The verdict of one distributed restore, from every task's digests (no TensorFlow).

Each unit (a task, or a replica of a task that holds several) is judged alone
against the manifest with the one judge (judge/core.py). Then the units are
compared with each other: when their verdicts or their digests differ, the
cluster's verdict is `diverged`, whatever each alone says: a unit that restored
an older save is `mismatch` on its own, and the chief beside it `complete`, but
what the run has lost is agreement. Units that agree share their verdict.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..judge.core import judge, name_list
from ..outcomes import Outcome, Verdict


def judge_unit(expected: Mapping[str, str], digests: Mapping[str, str] | None,
               error: str | None = None) -> Verdict:
    """One unit alone: its restore error, or its digests judged against `expected`."""
    if error:
        return Verdict(Outcome.ERROR, error)
    return judge(expected, digests or {})


def agree(verdicts: Mapping[str, Verdict], digests: Mapping[str, Mapping[str, str]]) -> Verdict:
    """The cluster's verdict over units that were each judged (`verdicts`) and fingerprinted
    (`digests`, unit -> variable -> fingerprint; a unit whose restore raised may have none)."""
    if not verdicts:
        raise ValueError("no unit to judge")
    outcomes = {v.outcome for v in verdicts.values()}
    states = {tuple(sorted(d.items())) for d in digests.values()}
    if len(outcomes) == 1 and len(states) <= 1:
        first = next(iter(verdicts.values()))
        return Verdict(first.outcome, f"{len(verdicts)} unit(s) agree: {first.detail}")
    groups: dict[tuple, list[str]] = {}
    for unit, v in verdicts.items():
        key = (v.outcome.value, tuple(sorted(digests.get(unit, {}).items())))
        groups.setdefault(key, []).append(unit)
    names = set().union(*(d.keys() for d in digests.values())) if digests else set()
    differ = {n for n in names if len({d.get(n) for d in digests.values()}) > 1}
    parts = [f"{name_list(units)} {outcome}" for (outcome, _), units in
             sorted(groups.items(), key=lambda kv: Outcome(kv[0][0]).severity)]
    detail = f"{len(groups)} different restored states: " + "; ".join(parts)
    if differ:
        detail += f"; {len(differ)} variable(s) differ between units: {name_list(differ)}"
    return Verdict(Outcome.DIVERGED, detail)


def judge_round(expected: Mapping[str, str], results: Mapping[str, dict]) -> tuple[dict[str, Verdict], Verdict]:
    """`results`: task -> its round message ({"digests": unit -> digests, "error": ...}).
    Returns (each task's verdict over its own units, the cluster's verdict over all units)."""
    per_task: dict[str, Verdict] = {}
    all_verdicts: dict[str, Verdict] = {}
    all_digests: dict[str, Mapping[str, str]] = {}
    for task, res in results.items():
        units = res.get("digests") or {task: {}}
        verdicts = {u: judge_unit(expected, d, res.get("error")) for u, d in units.items()}
        per_task[task] = agree(verdicts, units) if len(units) > 1 else verdicts[next(iter(units))]
        all_verdicts.update(verdicts)
        all_digests.update(units)
    return per_task, agree(all_verdicts, all_digests)
