"""Assemble the self-contained HTML report: tables plus base64-embedded PNGs.

Nothing is loaded from elsewhere (no scripts, fonts or stylesheets), so the
file can be mailed, archived as a CI artifact or opened offline.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math

from ..outcomes import Outcome
from ..results import PHASES, ROOFLINE_PHASES
from . import plots, profile_plots
from .rundata import RunData

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b71c1c; font-weight: bold; } .ok { color: #2e7d32; }
pre { font-size: .75em; background: #f7f7f7; padding: .5em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: .85em; }
"""

# (label, metadata.json key) of the environment summary; the full file follows collapsed
_SUMMARY_KEYS = [("kind", "kind"), ("TensorFlow", "tensorflow_version"), ("Python", "python_version"),
                 ("harness", "harness_version"), ("CPU", "cpu_model"), ("cores", "cpu_count"),
                 ("RAM", "ram_bytes"), ("GPUs", "gpus"), ("filesystem", "output_filesystem"),
                 ("git commit", "git_commit"), ("collected", "collected_at")]


def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _num(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}g}"


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="note">{_esc(alt)}: nothing to plot.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></p>'


def _is_failure(word) -> bool:
    """An outcome word that is a failure; an unknown non-empty word counts as one."""
    word = "" if word is None else str(word)
    try:
        return Outcome(word).is_failure
    except ValueError:
        return bool(word)


def _outcome_cell(word) -> str:
    word = "" if word is None else str(word)
    return f'<span class="{"bad" if _is_failure(word) else "ok"}">{_esc(word)}</span>' if word else ""


def _summary_value(key: str, value) -> str:
    if value is None or value == "" or value == []:
        return ""
    if key == "ram_bytes":
        return f"{float(value) / 2**30:.1f} GiB"
    if key == "gpus" and isinstance(value, list):
        return "; ".join(str(g.get("name", g)) if isinstance(g, dict) else str(g) for g in value)
    if key == "git_commit":
        return str(value)[:12] + ("-dirty" if str(value).endswith("-dirty") else "")
    return str(value)


def metadata_section(data: RunData) -> str:
    if not data.metadata:
        return '<p class="note">No metadata.json in the run dirs.</p>'
    rows = [[_esc(name)] + [_esc(_summary_value(key, meta.get(key))) for _, key in _SUMMARY_KEYS]
            for name, meta in data.metadata.items()]
    full = "".join(f"<h4>{_esc(name)}</h4><pre>{_esc(json.dumps(meta, indent=2, sort_keys=True, default=str))}</pre>"
                   for name, meta in data.metadata.items())
    return (_table(["run"] + [label for label, _ in _SUMMARY_KEYS], rows)
            + f"<details><summary>full metadata.json</summary>{full}</details>")


def phase_summary_section(phases) -> str:
    frame = plots.with_gbps(phases)
    order = {p: i for i, p in enumerate(PHASES + ROOFLINE_PHASES)}
    keys = ["api", "device", "state_bytes", "n_vars", "phase"]
    rows = []
    grouped = frame.groupby(keys, dropna=False, sort=False)
    for (api, device, size, n_vars, phase), g in sorted(
            grouped, key=lambda item: (item[0][0], item[0][1], item[0][2], item[0][3], order.get(item[0][4], 99))):
        outcomes = sorted({str(o) for o in g["outcome"] if str(o)})
        rows.append([
            _esc(api), _esc(device), _esc(plots._size_label(size)), _esc(int(n_vars) if n_vars == n_vars else ""),
            _esc(phase), str(len(g)), _num(g["seconds"].median()), _num(g["seconds"].min()),
            _num(g["seconds"].max()), _num(g["gbps"].median()), _num(g["roofline_fraction"].median(), 2),
            " ".join(_outcome_cell(o) for o in outcomes),
        ])
    return _table(["api", "device", "state", "vars", "phase", "n", "median s", "min s", "max s",
                   "median GB/s", "roofline fraction", "outcome"], rows, numeric={5, 6, 7, 8, 9, 10})


def failures_section(phases) -> str:
    bad = phases[phases["outcome"].astype(str).map(
        lambda w: bool(w) and (w not in {o.value for o in Outcome} or Outcome(w).is_failure))]
    if bad.empty:
        return '<p class="ok">Every verified restore was complete.</p>'
    rows = [[_esc(r["scenario"]), _esc(r["phase"]), _esc(r["repeat"]), _outcome_cell(r["outcome"]),
             _esc(r.get("detail", ""))] for _, r in bad.head(200).iterrows()]
    return _table(["scenario", "phase", "repeat", "outcome", "detail"], rows)


def crash_section(crash) -> str:
    crash = plots.distinct_states(crash)
    counts = crash.groupby(["api", "mode", "outcome"]).size().unstack("outcome", fill_value=0)
    words = plots.outcome_order(counts.columns)
    rows = [[_esc(api), _esc(mode)] + [str(int(counts.loc[(api, mode), w])) for w in words]
            for api, mode in counts.index]
    parts = [_table(["api", "mode"] + words, rows, numeric=set(range(2, 2 + len(words))))]
    bad = crash[crash["outcome"].map(lambda w: w not in {"new", "rollback", "complete"})]
    if not bad.empty:
        cols = [c for c in ["api", "mode", "model", "state_id", "fault", "outcome", "detail",
                            "orphan_bytes", "case_dir"] if c in crash.columns]
        rows = [[_outcome_cell(r[c]) if c == "outcome" else _esc(r[c]) for c in cols]
                for _, r in bad.head(200).iterrows()]
        parts.append("<h3>States that did not restore the new or the previous save</h3>")
        parts.append(_table(cols, rows))
        if len(bad) > 200:
            parts.append(f'<p class="note">{len(bad) - 200} more rows in crash.csv.</p>')
    return "".join(parts)


def matrix_section(matrix) -> str:
    """The crash safety matrix: one row per target x mode x model, one column per environment,
    each cell the worst outcome over the campaign's states with its outcome counts."""
    words = [o.value for o in Outcome if o.value in matrix.columns]
    envs = list(dict.fromkeys(matrix["env"]))
    keys = list(dict.fromkeys(zip(matrix["target"], matrix["mode"], matrix["model"])))
    cells = {(r["target"], r["mode"], r["model"], r["env"]): r for _, r in matrix.iterrows()}
    rows = []
    for key in keys:
        row = [_esc(k) for k in key]
        for env in envs:
            r = cells.get((*key, env))
            if r is None:
                row.append("")
            elif r["status"] != "ran":
                row.append(f'<span class="bad">{_esc(r["status"])}</span>')
            else:
                counts = ", ".join(f"{w} {r[w]}" for w in words if str(r[w]) not in ("", "0"))
                row.append(f'{_outcome_cell(r["worst"])}<br><span class="note">{_esc(counts)}</span>')
        rows.append(row)
    commits = ", ".join(sorted(set(matrix["commit"]) - {""})) or "unknown"
    parts = [f'<p class="note">Worst outcome of each campaign (harness/outcomes.py order) and the '
             f"number of distinct states with each outcome. Harness commit {_esc(commits)}.</p>",
             _table(["target", "mode", "model"] + envs, rows)]
    bad = matrix[matrix["worst"].map(_is_failure)]
    if not bad.empty:
        rows = [[_esc(r["env"]), _esc(r["target"]), _esc(r["mode"]), _esc(r["model"]),
                 _outcome_cell(r["worst"]), _esc(r.get("worst_fault", "")), _esc(r.get("worst_detail", "")),
                 f'<code>{_esc(r["replay"])}</code>'] for _, r in bad.iterrows()]
        parts += ["<h3>Worst cases that lose or corrupt the model, and how to replay them</h3>",
                  _table(["env", "target", "mode", "model", "worst", "fault", "detail", "replay"], rows)]
    return "".join(parts)


def render(data: RunData) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    body = ["<h1>ckpt-harness report</h1>",
            f'<p class="note">Generated {now} from: {", ".join(_esc(d) for d in data.dirs)}</p>',
            "<h2>Environment</h2>", metadata_section(data)]
    if data.phases is not None and not data.phases.empty:
        body += ["<h2>Throughput</h2>",
                 '<p class="note">Dashed black: the raw-disk roofline measured on the same directory '
                 "with the same byte count.</p>",
                 _img(plots.throughput_figure(data.phases), "throughput against state size"),
                 "<h2>Phase breakdown</h2>",
                 _img(plots.phase_breakdown_figure(data.phases), "phase breakdown"),
                 "<h2>Phase summary</h2>", phase_summary_section(data.phases),
                 "<h2>Verification</h2>", failures_section(data.phases)]
    profile = profile_plots.section(data.dirs, data.metadata)  # `ckpt-harness profile` dirs only
    if profile:
        body += ["<h2>Where the time goes (profile)</h2>",
                 '<p class="note">Cost model t = fixed + per_variable &times; n_vars + per_byte &times; bytes, '
                 "fitted robustly per API and operation; circles: measured points, lines: the fit, red crosses: "
                 "points left out (restore not complete).</p>", profile]
    if data.crash is not None and not data.crash.empty:
        body += ["<h2>Crash outcomes</h2>",
                 '<p class="note">Distinct crash states: a state recorded as a duplicate of an identical '
                 "one is counted once.</p>",
                 _img(plots.crash_outcomes_figure(data.crash), "crash outcomes"),
                 crash_section(data.crash)]
    if data.matrix is not None and not data.matrix.empty:
        body += ["<h2>Crash safety matrix</h2>", matrix_section(data.matrix)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>ckpt-harness report</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
