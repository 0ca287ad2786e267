"""Plain-text tables for the terminal (no dependency, fixed-width columns)."""

from __future__ import annotations

import shutil


def format_table(rows: list[dict], columns: list[str], *, max_col: int = 40) -> str:
    """Left-aligned columns, cells clipped to `max_col` characters."""
    def cell(row, col):
        text = str(row.get(col, ""))
        return text if len(text) <= max_col else text[:max_col - 1] + "…"

    widths = {c: max([len(c)] + [len(cell(r, c)) for r in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip(),
             "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(cell(r, c).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)


def terminal_width(default: int = 120) -> int:
    return shutil.get_terminal_size((default, 24)).columns
