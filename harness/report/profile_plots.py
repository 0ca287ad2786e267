"""The report's part for `ckpt-harness profile` dirs: per API, time against state size and
against variable count, measured points with the fitted cost model drawn through them, and
the fitted terms as a table. Self-contained HTML pieces (no import of html.py, which uses this)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ..profile.fileformat import is_profile_dir, read_profile
from .plots import _png, _pyplot

OPS = [("save", "save (buffered)"), ("save_durable", "save, durable"), ("restore_cold", "restore, cold")]
_FIT_SHOWN = [("op", "op", None), ("fixed_seconds", "fixed ms", 1e3), ("per_var_seconds", "µs / variable", 1e6),
              ("gbps_asymptote", "GB/s asymptote", 1), ("roofline_gbps", "roofline GB/s", 1),
              ("roofline_fraction", "of roofline", 1), ("r2", "R²", 1),
              ("median_abs_residual_pct", "median |residual| %", 1), ("dominant_64MiB", "dominant at 64 MiB", None),
              ("dominant_1GiB", "dominant at 1 GiB", None), ("n_excluded", "excluded points", None),
              ("note", "note", None)]


def _f(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x else None


def _model(fit: dict):
    terms = [_f(fit.get(k)) for k in ("fixed_seconds", "per_var_seconds", "per_byte_seconds")]
    if any(t is None for t in terms):
        return None
    return lambda n, b: terms[0] + terms[1] * n + terms[2] * b


def api_figure(api: str, points: list[dict], fits: list[dict]) -> bytes | None:
    """One row per operation: seconds against bytes (a line per variable count) and against
    variables (a line per size); circles are included points, red crosses excluded ones."""
    import numpy as np

    ops = [(op, title) for op, title in OPS if any(p["op"] == op and p["api"] == api for p in points)]
    if not ops:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(ops), 2, figsize=(11, 3.4 * len(ops)), squeeze=False)
    for row, (op, title) in enumerate(ops):
        pts = [p for p in points if p["api"] == api and p["op"] == op and _f(p["seconds"])]
        fit = next((f for f in fits if f["api"] == api and f["op"] == op), {})
        model = _model(fit)
        for col, (x_key, line_key, xlabel) in enumerate((("state_bytes", "n_vars", "state size (MiB)"),
                                                         ("n_vars", "nominal_bytes", "variables"))):
            ax = axes[row][col]
            groups = sorted({int(p[line_key]) for p in pts})
            colors = plt.cm.viridis(np.linspace(0, 0.85, max(1, len(groups))))
            for g, color in zip(groups, colors):
                mine = [p for p in pts if int(p[line_key]) == g]
                label = f"{g} vars" if line_key == "n_vars" else f"{g / 2**20:g} MiB"
                scale = 2**20 if x_key == "state_bytes" else 1
                inc = [p for p in mine if str(p["included"]) == "1"]
                exc = [p for p in mine if str(p["included"]) != "1"]
                ax.scatter([int(p[x_key]) / scale for p in inc], [float(p["seconds"]) for p in inc],
                           color=color, s=18, label=label)
                if exc:
                    ax.scatter([int(p[x_key]) / scale for p in exc], [float(p["seconds"]) for p in exc],
                               color="#c62828", marker="x", s=30)
                if model is not None:
                    xs = np.geomspace(min(int(p[x_key]) for p in pts), max(int(p[x_key]) for p in pts), 50)
                    ys = model(g, xs) if x_key == "state_bytes" else model(xs, g)
                    ax.plot(xs / scale, ys, color=color, lw=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("seconds")
            ax.set_title(f"{api}: {title}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            if groups:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _cell(value, scale) -> str:
    x = _f(value) if scale is not None else None
    if scale is None or x is None:
        return html.escape("" if value is None else str(value))
    return f"{x * scale:.3g}"


def section(dirs, metadata: dict[str, dict]) -> str | None:
    """HTML for every profile dir among `dirs`, or None when there is none."""
    parts = []
    for d in map(Path, dirs):
        if not is_profile_dir(d):
            continue
        points, fits = read_profile(d, metadata.get(d.name))
        parts.append(f"<h3>{html.escape(d.name)}</h3>")
        head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in _FIT_SHOWN)
        for api in dict.fromkeys(p["api"] for p in points):
            rows = "".join("<tr>" + "".join(f"<td>{_cell(f.get(k), s)}</td>" for k, _, s in _FIT_SHOWN) + "</tr>"
                           for f in fits if f["api"] == api)
            parts.append(f"<h4>{html.escape(api)}</h4><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            png = api_figure(api, points, fits)
            if png is not None:
                data = base64.b64encode(png).decode("ascii")
                parts.append(f'<p><img alt="{html.escape(api)}: time against size and variables" '
                             f'src="data:image/png;base64,{data}"></p>')
    return "".join(parts) or None
