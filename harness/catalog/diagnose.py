"""`ckpt-harness diagnose CKPT [--against TARGET]`: integrity check of a
checkpoint, and a comparison with the model that is supposed to load it.

Exit codes: 0 restorable as is, 1 problems found, 2 bad input (UsageError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import HarnessError
from . import integrity, reader, targets
from .compare import Comparison, PrefixMapping, compare
from ..judge.core import error_summary, name_list

_LIST_LIMIT = 12
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


@dataclass
class Report:
    ckpt_text: str
    integrity: integrity.Integrity | None = None
    target: targets.Target | None = None
    comparison: Comparison | None = None
    internal_error: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.internal_error or (self.integrity and self.integrity.problems):
            return 1
        if self.comparison is not None and not self.comparison.restorable:
            return 1
        if self.target is not None and self.comparison is None:
            return 1  # nothing could be compared: the checkpoint is unreadable
        return 0

    def render(self) -> str:
        return "\n".join(_render(self))


# --- code the user can paste --------------------------------------------------------

def _tf1_restore_code(m: PrefixMapping, prefix: str) -> list[str]:
    cp, tp = m.ckpt_prefix, m.target_prefix
    if tp:
        rename = [f'    if name.startswith("{tp}/"):',
                  f'        name = {(cp + "/")!r} + name[len("{tp}/"):]' if cp else
                  f'        name = name[len("{tp}/"):]']
    else:
        rename = [f'    name = "{cp}/" + name']
    lines = ["# TF1: map the graph's names to the checkpoint's in the Saver",
             "var_list = {}",
             "for v in tf.compat.v1.global_variables():",
             "    name = v.op.name",
             *rename,
             "    var_list[name] = v",
             f"tf.compat.v1.train.Saver(var_list=var_list).restore(sess, {prefix!r})"]
    if tp:
        lines += ["# or, while building the graph (before running the initializer):",
                  f"tf.compat.v1.train.init_from_checkpoint({prefix!r}, {{{(cp + '/') if cp else '/'!r}: {tp + '/'!r}}})"]
    return lines


def _attribute_chain(path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    return "".join(f".{p}" for p in parts) if all(_IDENTIFIER.match(p) for p in parts) else None


def _tf2_restore_code(m: PrefixMapping, prefix: str) -> list[str]:
    cp, tp = m.ckpt_prefix, m.target_prefix
    if tp:
        chain = _attribute_chain(tp)
        obj = f"model{chain}" if chain else f"<the object at {tp!r} in your model>"
    else:
        obj = "model"
    parts = [p for p in cp.split("/") if p]
    if parts and all(_IDENTIFIER.match(p) for p in parts):
        expr = obj
        for p in reversed(parts[1:]):
            expr = f"tf.train.Checkpoint({p}={expr})"
        root = f"tf.train.Checkpoint({parts[0]}={expr})"
    elif parts:
        return [f"# TF2: nest your object under {cp!r} (tf.train.Checkpoint / tf.Module attributes) and read"]
    else:
        root = f"tf.train.Checkpoint(root={obj})"
    return ["# TF2: attach your object where the checkpoint has it, then read",
            "# (model = the object your model-building code returns)",
            f"status = {root}.read({prefix!r})",
            "status.assert_existing_objects_matched()"]


# --- rendering ---------------------------------------------------------------------------

def _render(report: Report) -> list[str]:
    out = [f"checkpoint: {report.integrity.location.prefix or report.ckpt_text}" if report.integrity
           else f"checkpoint: {report.ckpt_text}"]
    if report.integrity:
        for f in report.integrity.findings:
            out.append(f"  {f.level:<8} {f.text}")
    if report.target is not None:
        t = report.target
        n_opt = sum(v.optimizer for v in t.variables.values())
        out.append(f"against: {t.description}: {len(t.variables)} variables"
                   + (f" ({n_opt} optimizer state)" if n_opt else ""))
        c = report.comparison
        if c is None:
            out.append("  problem  nothing to compare: the checkpoint's index cannot be read")
        else:
            out += _render_comparison(c, report.integrity.location.prefix)
    if report.internal_error:
        out.append(f"  problem  diagnose could not finish: {report.internal_error}")
    out.append(_verdict(report))
    return out


def _render_comparison(c: Comparison, prefix: str) -> list[str]:
    out = []
    if c.cross_format:
        out.append(f"  note     {c.cross_format}")
    total = c.matched + len(c.missing) + len(c.missing_slots)
    out.append(f"  {'ok' if c.restorable else 'problem':<8} {c.matched} of {total} target variables "
               f"found in the checkpoint")
    explained_t = {t for _, t in c.prefix.pairs} if c.prefix else set()
    explained_c = {k for k, _ in c.prefix.pairs} if c.prefix else set()
    missing = [n for n in c.missing if n not in explained_t]
    slots = [n for n in c.missing_slots if n not in explained_t]
    if explained_t:
        out.append(f"  problem  {len(explained_t)} target variables are in the checkpoint under another scope "
                   f"prefix (see below)")
    if missing:
        out.append(f"  problem  missing (the target expects them, the checkpoint lacks them): "
                   f"{name_list(missing, _LIST_LIMIT)}")
    if slots:
        out.append(f"  problem  missing optimizer slots/state: {name_list(slots, _LIST_LIMIT)}")
        out.append("           the checkpoint was saved without this optimizer's state (another optimizer, "
                   "or before its first step): restore the model variables only and let the optimizer start fresh")
    for name, have, want in c.shape_mismatch[:_LIST_LIMIT]:
        out.append(f"  problem  shape mismatch: {name}: checkpoint {list(have)}, target {list(want)}")
    for name, have, want in c.dtype_mismatch[:_LIST_LIMIT]:
        out.append(f"  problem  dtype mismatch: {name}: checkpoint {have}, target {want}")
    unexpected = [n for n in c.unexpected if n not in explained_c]
    if unexpected:
        out.append(f"  note     unexpected (in the checkpoint, not in the target): "
                   f"{name_list(unexpected, _LIST_LIMIT)}")
        out.append("           a TF1 Saver ignores them; TF2 read() needs status.expect_partial() to say so")
    if c.prefix:
        m = c.prefix
        cp = (m.ckpt_prefix + "/") if m.ckpt_prefix else "(no prefix)"
        tp = (m.target_prefix + "/") if m.target_prefix else "(no prefix)"
        out.append(f"  scope    the names differ by a consistent prefix: checkpoint {cp} = target {tp} "
                   f"({len(m.pairs)} of {m.of_missing} missing names explained)")
        for ckpt_name, target_name in m.pairs[:_LIST_LIMIT]:
            out.append(f"             {ckpt_name}  ->  {target_name}")
        if len(m.pairs) > _LIST_LIMIT:
            out.append(f"             ... (+{len(m.pairs) - _LIST_LIMIT} more)")
        out.append("           restore with:")
        code = _tf2_restore_code(m, prefix) if c.object_based and not c.cross_format else _tf1_restore_code(m, prefix)
        out += [f"             {line}" for line in code]
    for ckpt_name, target_name in c.renames[:_LIST_LIMIT]:
        out.append(f"  hint     {target_name} may be the renamed {ckpt_name} (same shape and dtype)")
    return out


def _verdict(report: Report) -> str:
    if report.internal_error:
        return "verdict: could not finish the diagnosis"
    problems = report.integrity.problems if report.integrity else []
    c = report.comparison
    damage = [f for f in problems if f.damage]
    if damage:
        return f"verdict: NOT restorable as is: {len(damage)} integrity problem(s)"
    if problems and (c is None or c.restorable):
        return (f"verdict: the checkpoint restores, but {len(problems)} problem(s) found "
                f"(leftovers of an interrupted save)")
    if report.target is not None and c is None:
        return "verdict: NOT restorable as is: the checkpoint cannot be read"
    if c is not None and not c.restorable:
        parts = [f"{len(c.missing)} missing" if c.missing else "",
                 f"{len(c.missing_slots)} missing optimizer entries" if c.missing_slots else "",
                 f"{len(c.shape_mismatch)} shape mismatch(es)" if c.shape_mismatch else "",
                 f"{len(c.dtype_mismatch)} dtype mismatch(es)" if c.dtype_mismatch else ""]
        hint = " (a scope prefix explains the names; see the restore code above)" if c.prefix else ""
        return "verdict: NOT restorable as is: " + ", ".join(p for p in parts if p) + hint
    if c is not None and c.unexpected:
        return f"verdict: restorable as is ({len(c.unexpected)} checkpoint entries will go unused)"
    return "verdict: restorable as is" if c is not None else "verdict: the checkpoint is intact"


# --- the command ------------------------------------------------------------------------

def diagnose(ckpt_text: str, against: str | None = None) -> Report:
    """Bad input raises UsageError (exit 2); everything else ends up in the report."""
    location = reader.locate(ckpt_text)      # UsageError on bad input
    target = targets.load(against) if against else None
    report = Report(ckpt_text, target=target)
    try:
        report.integrity = integrity.check(location)
        info = report.integrity.info
        if target is not None and info is not None:
            ckpt_vars = targets.from_listing(info)
            report.comparison = compare(ckpt_vars, info.object_based, target.variables, target.object_based)
    except HarnessError:
        raise
    except Exception as e:  # never a traceback: whatever TF throws becomes a line of the report
        report.internal_error = error_summary(e)
    return report
