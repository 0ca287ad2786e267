"""`ckpt-harness catalog` and `ckpt-harness diagnose`: argument handling and
output only; the work is in causes.py and diagnose.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ResourceError

TABLE_COLUMNS = ["cause", "api", "variant", "observed", "outcome", "error_type", "fix_works"]


def catalog_main(args) -> int:
    from ..results import atomic_write_csv, new_run_id
    from .causes import COLUMNS, OBSERVED_ABORTED, run_catalog, source_commit
    from .table import format_table

    out_dir = Path(args.out or "results/catalog")
    run_id = new_run_id("catalog")
    target = out_dir / run_id / "catalog.csv"
    try:  # fail before the work, not after it
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResourceError(f"cannot create {target.parent}: {e.strerror or e}") from None

    start = time.perf_counter()
    commit = source_commit()
    rows = run_catalog(progress=lambda row: print(f"  {row['cause']:<24} {row['api']:<15} {row['variant']:<27} "
                                                  f"{row['outcome']}", file=sys.stderr), commit=commit)
    elapsed = time.perf_counter() - start
    tf_version = rows[0]["tf_version"] if rows else "?"
    print(f"failure catalog, TensorFlow {tf_version}, keras {rows[0].get('keras_version', '?') if rows else '?'}, "
          f"harness commit {commit or 'unknown (not a git checkout)'}: {len(rows)} scenarios in {elapsed:.1f} s")
    print(format_table(rows, TABLE_COLUMNS, max_col=32))
    silent = [r for r in rows if r["observed"] == "restored" and r["outcome"] not in ("complete",)]
    if silent:
        print(f"\nrestored without an error but not completely ({len(silent)}):")
        for r in silent:
            print(f"  {r['api']} {r['cause']}/{r['variant']}: {r['outcome']} -- {r['detail']}")
    try:
        atomic_write_csv(target, rows, COLUMNS)
    except OSError as e:
        raise ResourceError(f"cannot write {target}: {e.strerror or e}") from None
    print(f"\nwritten: {target}")
    aborted = [r for r in rows if r["observed"] == OBSERVED_ABORTED]
    for r in aborted:
        print(f"scenario aborted: {r['api']} {r['cause']}/{r['variant']}: {r['message']}", file=sys.stderr)
    return 1 if aborted else 0


def diagnose_main(args) -> int:
    from .causes import quiet_tensorflow
    from .diagnose import diagnose
    quiet_tensorflow()
    report = diagnose(args.ckpt, against=args.against)
    print(report.render())
    return report.exit_code
