"""Compare what a checkpoint holds with what a target model expects.

Names are matched the way the restore would match them: TF2 object paths
against object paths, TF1 names against names, and across the two through the
`full_name` a TF2 checkpoint records for each variable (what a TF1 Saver
uses when it reads an object-based checkpoint). When the names differ by one
consistent scope prefix, `find_prefix` finds it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .targets import Var

# TF2 checkpoint bookkeeping no target owns
_IGNORED_CKPT_NAMES = {"save_counter"}


@dataclass
class PrefixMapping:
    ckpt_prefix: str               # "" = no prefix
    target_prefix: str
    pairs: list[tuple[str, str]]   # (checkpoint name, target name)
    of_missing: int                # how many missing names there were to explain


@dataclass
class Comparison:
    matched: int = 0
    missing: list[str] = field(default_factory=list)        # target variables the checkpoint lacks
    missing_slots: list[str] = field(default_factory=list)  # target optimizer state the checkpoint lacks
    unexpected: list[str] = field(default_factory=list)     # checkpoint entries the target lacks
    shape_mismatch: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    dtype_mismatch: list[tuple[str, str, str]] = field(default_factory=list)
    prefix: PrefixMapping | None = None
    renames: list[tuple[str, str]] = field(default_factory=list)  # (ckpt, target) look-alike pairs
    cross_format: str = ""         # set when one side is TF1-named and the other TF2 object-based
    object_based: bool = False     # the checkpoint's names are TF2 object paths

    @property
    def restorable(self) -> bool:
        return not (self.missing or self.missing_slots or self.shape_mismatch or self.dtype_mismatch)


def _split(name: str) -> list[str]:
    return [p for p in name.split("/") if p]


def _join(prefix: str, rest: str) -> str:
    return f"{prefix}/{rest}" if prefix and rest else prefix or rest


def _strip_prefix(name: str, prefix: str) -> str | None:
    if not prefix:
        return name
    return name[len(prefix) + 1:] if name.startswith(prefix + "/") else None


def find_prefix(missing: list[str], unexpected: list[str]) -> PrefixMapping | None:
    """The (checkpoint prefix, target prefix) pair that turns the most missing
    target names into unexpected checkpoint names; None if none explains at
    least half of them."""
    if not missing or not unexpected:
        return None
    by_leaf = defaultdict(list)
    for c in unexpected:
        by_leaf[_split(c)[-1] if _split(c) else c].append(c)
    votes: Counter = Counter()
    for t in missing[:500]:
        tparts = _split(t)
        for c in by_leaf.get(tparts[-1] if tparts else t, [])[:50]:
            cparts = _split(c)
            k = 0
            while k < min(len(tparts), len(cparts)) and tparts[-1 - k] == cparts[-1 - k]:
                k += 1
            votes["/".join(cparts[:len(cparts) - k]), "/".join(tparts[:len(tparts) - k])] += 1
    unexpected_set = set(unexpected)
    best = None
    for (cpre, tpre), _n in votes.most_common(5):
        if cpre == tpre:
            continue
        pairs = []
        for t in missing:
            rest = _strip_prefix(t, tpre)
            if rest is not None and _join(cpre, rest) in unexpected_set:
                pairs.append((_join(cpre, rest), t))
        if pairs and (best is None or len(pairs) > len(best.pairs)):
            best = PrefixMapping(cpre, tpre, pairs, len(missing))
    if best is None or 2 * len(best.pairs) < len(missing):
        return None
    return best


def _look_alikes(missing: list[str], unexpected: list[str], ckpt: dict[str, Var],
                 target: dict[str, Var]) -> list[tuple[str, str]]:
    """Missing/unexpected pairs with the same shape and dtype and no other candidate: likely renames."""
    def sig(v: Var):
        return (v.shape, v.dtype, v.optimizer)
    by_sig_ckpt = defaultdict(list)
    for c in unexpected:
        by_sig_ckpt[sig(ckpt[c])].append(c)
    by_sig_target = defaultdict(list)
    for t in missing:
        by_sig_target[sig(target[t])].append(t)
    return [(cs[0], by_sig_target[s][0]) for s, cs in by_sig_ckpt.items()
            if len(cs) == 1 and len(by_sig_target.get(s, [])) == 1 and s[0] is not None]


def _keyed(variables: dict[str, Var], by_full_name: bool) -> dict[str, Var]:
    if not by_full_name:
        return dict(variables)
    return {(v.full_name or v.name): v for v in variables.values()}


def compare(ckpt_vars: dict[str, Var], ckpt_object_based: bool,
            target_vars: dict[str, Var], target_object_based: bool) -> Comparison:
    result = Comparison(object_based=ckpt_object_based)
    if ckpt_object_based != target_object_based:
        # a TF1 Saver reads a TF2 checkpoint by full_name; TF2 reads a TF1 one by variable name
        ckpt = _keyed(ckpt_vars, ckpt_object_based)
        target = _keyed(target_vars, target_object_based)
        result.cross_format = ("checkpoint is object-based (TF2), target is name-based (TF1): matched on the "
                               "variable names the checkpoint records" if ckpt_object_based else
                               "checkpoint is name-based (TF1), target is object-based (TF2): matched on the "
                               "target's variable names, as TF2's name-based fallback does")
    else:
        ckpt, target = dict(ckpt_vars), dict(target_vars)
    for name in _IGNORED_CKPT_NAMES:
        if name not in target:
            ckpt.pop(name, None)

    for name, want in sorted(target.items()):
        have = ckpt.get(name)
        if have is None:
            (result.missing_slots if want.optimizer else result.missing).append(name)
            continue
        result.matched += 1
        if want.shape is not None and have.shape is not None and tuple(want.shape) != tuple(have.shape):
            result.shape_mismatch.append((name, tuple(have.shape), tuple(want.shape)))
        if want.dtype and have.dtype and want.dtype != have.dtype:
            result.dtype_mismatch.append((name, have.dtype, want.dtype))
    result.unexpected = sorted(set(ckpt) - set(target))

    all_missing = result.missing + result.missing_slots
    result.prefix = find_prefix(all_missing, result.unexpected)
    if result.prefix:
        for c, t in result.prefix.pairs:  # shapes must agree once the prefix is mapped
            have, want = ckpt[c], target[t]
            if want.shape is not None and have.shape is not None and tuple(want.shape) != tuple(have.shape):
                result.shape_mismatch.append((f"{t} (checkpoint {c})", tuple(have.shape), tuple(want.shape)))
    else:
        result.renames = _look_alikes(all_missing, result.unexpected, ckpt, target)
    return result
