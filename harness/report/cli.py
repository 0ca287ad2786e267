"""`compare-tf` and `report` commands (argument handling only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ResourceError, UsageError
from ..results import atomic_write_csv, atomic_write_text

DEFAULT_ASV_RESULTS = Path("results/asv")


def _write(writer, path: Path, *payload) -> None:
    try:
        writer(path, *payload)
    except OSError as e:
        raise ResourceError(f"cannot write {path}: {e.strerror or e}") from None


def compare_tf_main(args) -> int:
    from .asv_results import load_results
    from .compare_tf import compare_table, format_table

    results_dir = Path(args.results_dir) if args.results_dir else DEFAULT_ASV_RESULTS
    long = load_results(results_dir)
    table, versions, baseline = compare_table(long, args.baseline)
    print(format_table(table, versions, baseline))
    out = Path(args.out) if args.out else results_dir / "compare-tf.csv"
    columns = list(table.columns)
    rows = [{k: ("" if v != v else v) for k, v in rec.items()} for rec in table.to_dict("records")]
    _write(atomic_write_csv, out, rows, columns)
    print(f"\nwrote {out}")
    return 0


def report_main(args) -> int:
    from .rundata import load_runs, newest_run_dirs

    dirs = [Path(d) for d in args.run_dirs] or newest_run_dirs()
    if not dirs:
        raise UsageError("no RUN_DIR given and no run found under results/runs or results/crash")
    data = load_runs(dirs)
    if importlib.util.find_spec("matplotlib") is None:  # only the report needs it
        raise ResourceError("the report needs matplotlib: pip install 'ckpt-harness[report]'")
    from .html import render

    out = Path(args.out) if args.out else dirs[0] / "report.html"
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name")
    _write(atomic_write_text, out, render(data))
    print(f"wrote {out}")
    return 0
