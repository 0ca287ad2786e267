"""`compare-tf` and `report`: tables from asv results, the HTML report, bad input."""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import PHASE_COLUMNS, PHASES, ROOFLINE_PHASES, atomic_write_csv

ROOT = Path(__file__).resolve().parents[1]


# -- asv results in asv 0.6's on-disk format ---------------------------------------------
RESULT_COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
                  "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
                  "samples", "profile"]


def _write_asv_results(root: Path, values: dict[str, dict[str, list]], commit="abcdef12", date=1700000000000):
    """values: tf version -> benchmark -> flat result list over its params."""
    bench_meta = {
        "bench_phases.Save.time_save": {"param_names": ["api", "device"], "unit": "seconds",
                                        "params": [["'tf2-checkpoint'", "'tf1-saver'"], ["'cpu'"]]},
        "bench_rates.Throughput.track_save_gbps": {"param_names": [], "unit": "GB/s", "params": []},
    }
    (root / "benchmarks.json").write_text(json.dumps(dict(bench_meta, version=2)))
    machine = root / "box"
    machine.mkdir(parents=True, exist_ok=True)
    (machine / "machine.json").write_text(json.dumps({"machine": "box", "version": 1}))
    for tf, benches in values.items():
        env = f"virtualenv-py3.11-tensorflow-cpu{tf}"
        results = {name: [vals, bench_meta[name]["params"], "v1"] for name, vals in benches.items()}
        data = {"commit_hash": commit, "env_name": env, "date": date, "python": "3.11",
                "params": {"machine": "box", "python": "3.11", "tensorflow-cpu": tf},
                "requirements": {"tensorflow-cpu": tf}, "env_vars": {},
                "result_columns": RESULT_COLUMNS, "results": results, "durations": {}, "version": 2}
        (machine / f"{commit}-{env}.json").write_text(json.dumps(data))


def test_compare_tf_table_and_ratios(tmp_path, capsys):
    _write_asv_results(tmp_path, {
        "2.17.1": {"bench_phases.Save.time_save": [0.2, 0.4], "bench_rates.Throughput.track_save_gbps": [1.0]},
        "2.21.0": {"bench_phases.Save.time_save": [0.1, None], "bench_rates.Throughput.track_save_gbps": [1.5]},
        "2.9.0": {"bench_phases.Save.time_save": [0.4, 0.8], "bench_rates.Throughput.track_save_gbps": [2.0]},
    })
    assert main(["compare-tf", str(tmp_path), "--baseline", "2.17.1"]) == 0
    out = capsys.readouterr().out
    assert "tf 2.9.0" in out and out.index("tf 2.9.0") < out.index("tf 2.17.1") < out.index("tf 2.21.0")
    assert "x0.50" in out and "x2.00" in out  # 0.1/0.2 and 0.4/0.2
    with open(tmp_path / "compare-tf.csv") as f:
        rows = list(csv.DictReader(f))
    by = {(r["benchmark"], r["params"]): r for r in rows}
    save_tf2 = by[("bench_phases.Save.time_save", "api=tf2-checkpoint, device=cpu")]
    assert float(save_tf2["ratio_2.21.0"]) == pytest.approx(0.5)
    assert float(save_tf2["ratio_2.9.0"]) == pytest.approx(2.0)
    assert float(save_tf2["ratio_2.17.1"]) == pytest.approx(1.0)
    failed = by[("bench_phases.Save.time_save", "api=tf1-saver, device=cpu")]
    assert failed["2.21.0"] == ""  # a failed result stays empty, it is not a zero
    gbps = by[("bench_rates.Throughput.track_save_gbps", "")]
    assert gbps["unit"] == "GB/s" and float(gbps["ratio_2.21.0"]) == pytest.approx(1.5)


def test_compare_tf_default_baseline_is_oldest(tmp_path, capsys):
    _write_asv_results(tmp_path, {"2.19.1": {"bench_rates.Throughput.track_save_gbps": [2.0]},
                                  "2.17.1": {"bench_rates.Throughput.track_save_gbps": [1.0]}})
    out_csv = tmp_path / "out" / "t.csv"
    assert main(["compare-tf", str(tmp_path), "--out", str(out_csv)]) == 0
    assert "relative to TensorFlow 2.17.1" in capsys.readouterr().out
    row = next(csv.DictReader(open(out_csv)))
    assert float(row["ratio_2.19.1"]) == pytest.approx(2.0)


@pytest.mark.skipif(not (ROOT / "results" / "asv").is_dir(), reason="no committed asv results")
def test_compare_tf_reads_the_committed_asv_results(tmp_path, capsys):
    """Real asv output (results/asv, kept in git): at least two TensorFlow versions."""
    out_csv = tmp_path / "c.csv"
    assert main(["compare-tf", str(ROOT / "results" / "asv"), "--out", str(out_csv)]) == 0
    with open(out_csv) as f:
        header = next(csv.reader(f))
    versions = [c for c in header if re.fullmatch(r"\d+\.\d+\.\d+", c)]
    assert len(versions) >= 2, header
    assert "time_save" in capsys.readouterr().out


def _machine_dir_with(d: Path, text: str) -> Path:
    (d / "x").mkdir()
    (d / "x" / "machine.json").write_text("{}")
    (d / "x" / "r.json").write_text(text)
    return d


@pytest.mark.parametrize("setup, message", [
    (lambda d: d / "missing", "does not exist"),
    (lambda d: d, "no asv result files"),
    (lambda d: _machine_dir_with(d, '{"some": "other json"}'), "no asv result files"),
    (lambda d: _machine_dir_with(d, "not json at all"), "not readable as JSON"),
])
def test_compare_tf_bad_input_is_one_line(tmp_path, capsys, setup, message):
    target = setup(tmp_path)
    assert main(["compare-tf", str(target)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_compare_tf_unknown_baseline(tmp_path, capsys):
    _write_asv_results(tmp_path, {"2.17.1": {"bench_rates.Throughput.track_save_gbps": [1.0]}})
    assert main(["compare-tf", str(tmp_path), "--baseline", "1.15.0"]) == 2
    assert "have: 2.17.1" in capsys.readouterr().err


# -- the HTML report ------------------------------------------------------------------------
def _fixture_run(run_dir: Path, sizes=(2**20, 8 * 2**20), apis=("tf2-checkpoint", "tf1-saver")):
    """A phases.csv with the real column list; seconds grow with size, 2 repeats."""
    rows = []
    for api in apis:
        for size in sizes:
            for phase in PHASES + ROOFLINE_PHASES:
                for rep in range(2):
                    seconds = size / 1e9 * (1.5 + rep * 0.1)
                    rows.append({"run_id": run_dir.name, "scenario": f"{api}/cpu/{size}", "api": api,
                                 "device": "cpu", "n_vars": 16, "state_bytes": size, "phase": phase,
                                 "repeat": rep, "seconds": seconds,
                                 "outcome": "complete" if phase.startswith(("restore", "verify")) else ""})
    rows[-1]["outcome"] = "mismatch"
    rows[-1]["detail"] = "variable s0/v1 differs at element 3"
    atomic_write_csv(run_dir / "phases.csv", rows, PHASE_COLUMNS)
    (run_dir / "metadata.json").write_text(json.dumps({"format_version": 1, "tensorflow_version": "2.21.0"}))


def _fixture_crash(run_dir: Path):
    cols = ["run_id", "api", "mode", "model", "state_id", "fault", "outcome", "detail", "orphan_bytes", "case_dir"]
    outcomes = ["new", "rollback", "rollback", "detected", "silent"]
    rows = [{"run_id": "c1", "api": api, "mode": mode, "model": "process", "state_id": i, "fault": "kill",
             "outcome": o, "detail": f"state {i}", "orphan_bytes": 0, "case_dir": ""}
            for api in ("tf2-manager", "tf1-saver") for mode in ("kill", "trace")
            for i, o in enumerate(outcomes)]
    atomic_write_csv(run_dir / "crash.csv", rows, cols)


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_is_self_contained_with_plots(tmp_path, capsys):
    run, crash = tmp_path / "r1", tmp_path / "c1"
    run.mkdir(), crash.mkdir()
    _fixture_run(run)
    _fixture_crash(crash)
    assert main(["report", str(run), str(crash)]) == 0
    page = (run / "report.html").read_text()
    pngs = _pngs(page)
    assert len(pngs) == 3 and all(p.startswith(b"\x89PNG") for p in pngs)
    # nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "roofline" in page and "tf1-saver" in page and "silent" in page
    assert "variable s0/v1 differs at element 3" in page  # the failure shows with its detail
    assert "2.21.0" in page  # metadata summary


def test_report_out_option_and_crash_only(tmp_path):
    crash = tmp_path / "c1"
    crash.mkdir()
    _fixture_crash(crash)
    out = tmp_path / "elsewhere" / "crash.html"
    assert main(["report", str(crash), "--out", str(out)]) == 0
    page = out.read_text()
    assert len(_pngs(page)) == 1 and "Crash outcomes" in page and "Throughput" not in page


def test_report_shows_the_committed_crash_safety_matrix(tmp_path):
    """`report results/crash` renders the safety matrix: every environment a column, each cell the
    worst outcome with its counts, and the losing campaigns listed with their replay commands."""
    with open(ROOT / "results" / "crash" / "matrix.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = tmp_path / "matrix.html"
    assert main(["report", str(ROOT / "results" / "crash"), "--out", str(out)]) == 0
    page = out.read_text()
    assert "Crash safety matrix" in page and not re.search(r'(src|href)="(?!data:)', page)
    for env in {r["env"] for r in rows}:
        assert f"<th>{env}</th>" in page
    lost = [r for r in rows if r["worst"] == "lost"]
    assert lost, "the committed matrix has campaigns that lose the model"
    assert page.count('<span class="bad">lost</span>') >= len(lost)
    section = page[page.index("Worst cases that lose"):]
    for r in lost:
        assert html.escape(r["replay"]) in section


def _with_phases(d: Path, text: str) -> Path:
    (d / "phases.csv").write_text(text)
    return d


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "nope", "does not exist"),
    (lambda d: d, "none of phases.csv, crash.csv, matrix.csv"),
    (lambda d: _with_phases(d, "a,b\n1,2\n"), "missing columns"),
    (lambda d: _with_phases(d, ""), "not a readable CSV"),
    (lambda d: (d / "matrix.csv").write_text("env,target\nx,y\n") and d, "missing columns: mode"),
    (lambda d: _with_phases(d, ",".join(PHASE_COLUMNS) + "\n"), "no rows"),
])
def test_report_bad_input_is_one_line(tmp_path, capsys, make, message):
    assert main(["report", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_report_without_run_dirs_and_nothing_found(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 2
    assert "no RUN_DIR given" in capsys.readouterr().err


def test_report_bad_input_via_console_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One small real run of the harness (real TensorFlow) to report on."""
    out = tmp_path_factory.mktemp("runs")
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--api", "tf2-checkpoint", "--api", "tf1-saver",
                           "--size", "1MiB", "--vars", "8", "--repeat", "2", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [d for d in out.iterdir() if (d / "phases.csv").is_file()]
    return run_dir


def test_report_on_a_real_run(real_run):
    assert main(["report", str(real_run)]) == 0
    page = (real_run / "report.html").read_text()
    assert len(_pngs(page)) == 2  # throughput and phase breakdown; no crash rows
    for api in ("tf2-checkpoint", "tf1-saver"):
        assert api in page
    assert "Every verified restore was complete" in page
    meta = json.loads((real_run / "metadata.json").read_text())
    assert str(meta.get("format_version", "")) in page


def test_with_gbps_matches_bytes_over_seconds(tmp_path):
    from harness.report.plots import with_gbps
    from harness.report.rundata import load_runs

    _fixture_run(tmp_path)
    frame = with_gbps(load_runs([tmp_path]).phases)
    save = frame[frame["phase"] == "save"].iloc[0]
    assert save["gbps"] == pytest.approx(save["state_bytes"] / save["seconds"] / 1e9)
    assert math.isnan(frame[frame["phase"] == "build"].iloc[0]["gbps"])  # not an I/O phase
