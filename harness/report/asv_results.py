"""Read asv 0.6 result files into one long pandas table.

An asv results tree looks like RESULTS_DIR/<machine>/machine.json plus one
<commit>-<env>.json per benchmarked commit and environment, and
RESULTS_DIR/benchmarks.json describing every benchmark (params, unit). This
module parses those files itself (asv need not be installed) and returns one
row per benchmark x parameter combination x result file.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..results import check_version

# distributions whose pinned version names the TensorFlow of an environment
TF_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tensorflow-gpu", "tf-nightly", "tf-nightly-cpu")

LONG_COLUMNS = ["machine", "commit", "date", "env_name", "tf_version", "benchmark",
                "params", "unit", "value"]

if TYPE_CHECKING:
    import pandas

_REQUIRED_KEYS = {"commit_hash", "env_name", "results", "result_columns"}
# what marks a JSON file under a machine dir as an asv result file, of any version
_RESULT_FILE_KEYS = {"commit_hash", "results"}

# asv's own "version" of the files read here (asv.results.Results.api_version and
# asv.benchmarks.Benchmarks.api_version in asv 0.5/0.6). Version 1 result files keep one dict
# per benchmark instead of the `result_columns` rows parsed here; asv itself refuses to read them
# until `asv update` rewrites them.
ASV_RESULT_VERSIONS = (2,)
ASV_BENCHMARKS_VERSIONS = (2,)
_ASV_HINT = ("`asv update` rewrites older asv files; newer ones need a ckpt-harness that knows "
             "their layout")


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path}: not readable as JSON ({type(e).__name__})") from None


def tf_version_of(result: dict) -> str:
    """The TensorFlow version pinned in a result file's environment."""
    for source in (result.get("requirements") or {}, result.get("params") or {}):
        for dist in TF_DISTRIBUTIONS:
            for key in (dist, f"pip+{dist}"):
                version = source.get(key)
                if version:
                    return str(version)
    # e.g. an `existing` environment (--python=same): no matrix, no pin
    return f"unpinned ({result.get('env_name', '?')})"


def _param_label(names: list[str], values: tuple) -> str:
    return ", ".join(f"{n}={_unrepr(v)}" for n, v in zip(names, values))


def _unrepr(text: str) -> str:
    """asv stores parameter values as repr() strings: show 'a' as a."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return str(text)
    return str(value)


def _rows_of_file(machine: str, data: dict, meta: dict) -> list[dict]:
    columns = data["result_columns"]
    try:
        i_result, i_params = columns.index("result"), columns.index("params")
    except ValueError:
        raise UsageError("asv result file without 'result'/'params' columns") from None
    tf_version = tf_version_of(data)
    rows = []
    for name, row in data["results"].items():
        result = row[i_result] if len(row) > i_result else None
        params = row[i_params] if len(row) > i_params else []
        bench_meta = meta.get(name, {})
        names = bench_meta.get("param_names") or [f"p{i}" for i in range(len(params or []))]
        combos = list(itertools.product(*params)) if params else [()]
        values = result if isinstance(result, list) else [result] * len(combos)
        for combo, value in zip(combos, values):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                value = math.nan  # failed (None) or skipped (NaN) in asv's terms
            rows.append({
                "machine": machine,
                "commit": data["commit_hash"],
                "date": data.get("date"),
                "env_name": data["env_name"],
                "tf_version": tf_version,
                "benchmark": name,
                "params": _param_label(names, combo),
                "unit": bench_meta.get("unit", ""),
                "value": float(value),
            })
    return rows


def load_results(results_dir) -> "pandas.DataFrame":
    """All results under an asv results dir as a long DataFrame (LONG_COLUMNS).

    Raises UsageError for a missing dir, a dir without asv result files, or an
    asv result file that cannot be parsed.
    """
    import pandas as pd

    root = Path(results_dir)
    if not root.is_dir():
        raise UsageError(f"asv results dir {root} does not exist")
    meta_path = root / "benchmarks.json"
    meta = _load_json(meta_path) if meta_path.is_file() else {}
    if not isinstance(meta, dict):
        meta = {}
    elif meta:
        check_version(meta.get("version"), ASV_BENCHMARKS_VERSIONS, "asv file version", meta_path, _ASV_HINT)

    rows: list[dict] = []
    n_files = 0
    for machine_json in sorted(root.glob("*/machine.json")):
        machine = machine_json.parent.name
        for path in sorted(machine_json.parent.glob("*.json")):
            if path.name == "machine.json":
                continue
            data = _load_json(path)
            if not isinstance(data, dict) or not _RESULT_FILE_KEYS <= data.keys():
                continue  # not an asv result file (e.g. something a user put there)
            check_version(data.get("version"), ASV_RESULT_VERSIONS, "asv file version", path, _ASV_HINT)
            if not _REQUIRED_KEYS <= data.keys():
                missing = ", ".join(sorted(_REQUIRED_KEYS - data.keys()))
                raise UsageError(f"{path}: malformed asv result file (no {missing})")
            n_files += 1
            try:
                rows.extend(_rows_of_file(machine, data, meta))
            except (TypeError, ValueError, IndexError, AttributeError) as e:
                raise UsageError(f"{path}: malformed asv result file ({e})") from None
    if n_files == 0:
        raise UsageError(f"no asv result files in {root} "
                         "(expected <machine>/machine.json and <machine>/<commit>-<env>.json)")
    return pd.DataFrame(rows, columns=LONG_COLUMNS)
