"""Every reader checks the version of what it reads and refuses one it does not know.

`report` (metadata.json `format_version` of run and crash dirs: 1 and 2), `compare-tf` (asv's
own "version" of result files and benchmarks.json: 2), `replay` (case.json `case_format`: 1, and
the `manifest_version` of the case's manifests: 1). A refusal is one line on stderr and exit 2,
never a traceback; the files the harness writes today are read.

The crash case and its run dir come from one real `ckpt-harness crash --mode mutate` run
(real TensorFlow, a few seconds); the asv files are the committed ones in results/asv.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.results import FORMAT_VERSION, PHASE_COLUMNS, PHASES, ROOFLINE_PHASES, atomic_write_csv

ROOT = Path(__file__).resolve().parents[1]
ASV_RESULTS = ROOT / "results" / "asv"


def _refused(proc, *needles):
    """Exit 2, one line on stderr naming what was refused, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def _edit_json(path: Path, **changes) -> None:
    """Set (or, with value ..., remove) top-level keys of a JSON file."""
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


# -- the shared helper --------------------------------------------------------------------
def test_check_version_returns_an_accepted_version():
    from harness.results import check_version

    assert check_version(2, (1, 2), "format_version", "x/metadata.json") == 2


@pytest.mark.parametrize("found, words", [
    (3, ["unknown format_version 3", "newer"]),
    (0, ["unknown format_version 0"]),
    (None, ["no format_version"]),
    ("2", ["'2' is not an integer"]),
    (True, ["True is not an integer"]),   # a bool is an int in Python; not a version
    (2.0, ["2.0 is not an integer"]),
])
def test_check_version_refuses_with_the_path_and_what_it_reads(found, words):
    from harness.results import check_version

    with pytest.raises(UsageError) as info:
        check_version(found, (1, 2), "format_version", "x/metadata.json", "see the History")
    message = str(info.value)
    assert message.startswith("x/metadata.json: ") and "reads format_version 1, 2" in message
    assert "\n" not in message and message.endswith("see the History")
    for word in words:
        assert word in message


# -- a real crash run: its run dir (report) and its case folders (replay) ------------------
@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("crash")
    proc = subprocess.run([sys.executable, "-m", "harness", "crash", "--mode", "mutate", "--trials", "2",
                           "--size", "256KiB", "--vars", "8", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [d for d in out.iterdir() if (d / "crash.csv").is_file()]
    assert json.loads((run_dir / "metadata.json").read_text())["format_version"] == FORMAT_VERSION
    return run_dir


@pytest.fixture
def case(crash_dir, tmp_path):
    """A copy of one case folder of the real run (tests edit it)."""
    src = sorted((crash_dir / "cases").glob("*/*"))[0]
    assert json.loads((src / "case.json").read_text())["case_format"] == 1
    dst = tmp_path / "case"
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def run_copy(crash_dir, tmp_path):
    dst = tmp_path / crash_dir.name
    dst.mkdir()
    for name in ("crash.csv", "metadata.json"):
        shutil.copy(crash_dir / name, dst / name)
    return dst


# -- report -----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
def test_report_reads_format_versions_1_and_2(run_copy, tmp_path, cli, version):
    _edit_json(run_copy / "metadata.json", format_version=version)
    out = tmp_path / "r.html"
    proc = cli("report", str(run_copy), "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Crash outcomes" in out.read_text()


@pytest.mark.parametrize("version, words", [
    (3, ["unknown format_version 3"]),
    (..., ["no format_version"]),
    ("2", ["'2' is not an integer"]),
])
def test_report_refuses_an_unknown_format_version(run_copy, tmp_path, cli, version, words):
    _edit_json(run_copy / "metadata.json", format_version=version)
    out = tmp_path / "r.html"
    proc = cli("report", str(run_copy), "--out", str(out), timeout=120)
    _refused(proc, str(run_copy / "metadata.json"), *words)
    assert not out.exists()


def test_report_refuses_when_any_of_several_dirs_is_unknown(run_copy, crash_dir, cli):
    _edit_json(run_copy / "metadata.json", format_version=99)
    proc = cli("report", str(crash_dir), str(run_copy), "--out", str(run_copy / "r.html"), timeout=120)
    _refused(proc, str(run_copy / "metadata.json"), "unknown format_version 99")


def _phases_v1_with_a_failed_repeat(run_dir: Path, version: int) -> None:
    """phases.csv as format 1 wrote it: gbps filled in even for the repeat whose restore failed."""
    size = 1 << 20
    rows = []
    for rep in range(2):
        for phase in PHASES + ROOFLINE_PHASES:
            seconds = 0.01 if phase.startswith("raw") else 0.02
            row = {"run_id": run_dir.name, "scenario": "s", "api": "tf2-checkpoint", "device": "cpu",
                   "n_vars": 4, "state_bytes": size, "phase": phase, "repeat": rep, "seconds": seconds}
            if phase != "build" and phase != "init" and phase != "verify":
                row["gbps"] = size / seconds / 1e9
            if phase.startswith("restore") or phase == "verify":
                row["outcome"] = "complete"
            rows.append(row)
    # repeat 1 restored nothing: fast, and judged missing
    for row in rows:
        if row["repeat"] == 1 and row["phase"] == "restore_cold":
            row.update(seconds=0.0001, gbps=size / 0.0001 / 1e9, outcome="missing", detail="4 variables missing")
    atomic_write_csv(run_dir / "phases.csv", rows, PHASE_COLUMNS)
    (run_dir / "metadata.json").write_text(json.dumps({"format_version": version}))


def test_report_reads_format_1_gbps_of_a_failed_repeat_as_format_2_leaves_it(tmp_path):
    """Format 1 gave the save and restore phases of a failed repeat a GB/s figure (a restore that
    restored nothing looks fast); format 2 leaves it empty. The report shows neither."""
    from harness.report.plots import with_gbps
    from harness.report.rundata import load_runs

    _phases_v1_with_a_failed_repeat(tmp_path, version=1)
    frame = with_gbps(load_runs([tmp_path]).phases)
    failed = frame[frame["repeat"] == 1].set_index("phase")
    good = frame[frame["repeat"] == 0].set_index("phase")
    for phase in ("save", "save_durable", "restore_warm", "restore_cold"):
        assert math.isnan(failed.loc[phase, "gbps"]), phase
        assert good.loc[phase, "gbps"] == pytest.approx((1 << 20) / 0.02 / 1e9)
    # the roofline of that repeat is a disk measurement, not the API's: it stays
    assert failed.loc["raw_read_cold", "gbps"] == pytest.approx((1 << 20) / 0.01 / 1e9)


# -- compare-tf -----------------------------------------------------------------------------
@pytest.fixture
def asv_copy(tmp_path):
    if not ASV_RESULTS.is_dir():
        pytest.skip("no committed asv results")
    dst = tmp_path / "asv"
    shutil.copytree(ASV_RESULTS, dst)
    return dst


def _a_result_file(asv_dir: Path) -> Path:
    return sorted(p for p in asv_dir.glob("*/*.json") if p.name != "machine.json")[0]


def test_compare_tf_reads_the_asv_files_of_today(asv_copy, cli):
    assert json.loads(_a_result_file(asv_copy).read_text())["version"] == 2
    proc = cli("compare-tf", str(asv_copy), "--out", str(asv_copy / "c.csv"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (asv_copy / "c.csv").is_file()


@pytest.mark.parametrize("version, words", [
    (3, ["unknown asv file version 3", "newer"]),
    (1, ["unknown asv file version 1", "asv update"]),
    (..., ["no asv file version"]),
])
def test_compare_tf_refuses_an_unknown_asv_result_version(asv_copy, cli, version, words):
    target = _a_result_file(asv_copy)
    _edit_json(target, version=version)
    proc = cli("compare-tf", str(asv_copy), "--out", str(asv_copy / "c.csv"), timeout=120)
    _refused(proc, str(target), *words)
    assert not (asv_copy / "c.csv").exists()


def test_compare_tf_refuses_an_unknown_benchmarks_json_version(asv_copy, cli):
    _edit_json(asv_copy / "benchmarks.json", version=3)
    proc = cli("compare-tf", str(asv_copy), "--out", str(asv_copy / "c.csv"), timeout=120)
    _refused(proc, str(asv_copy / "benchmarks.json"), "unknown asv file version 3")


# -- replay (case.json and the case's manifests) ---------------------------------------------
def test_replay_reads_a_case_of_today(case, cli):
    proc = cli("replay", str(case), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(same as recorded)" in proc.stdout and "recorded detail" not in proc.stdout


def test_replay_says_when_only_the_detail_differs(case, cli):
    """The outcome decides the exit code, but a cause that changed is shown, not hidden."""
    _edit_json(case / "case.json", detail="a cause this state does not have")
    proc = cli("replay", str(case), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(same outcome as recorded, another detail)" in proc.stdout, proc.stdout
    assert "recorded detail: a cause this state does not have" in proc.stdout, proc.stdout


@pytest.mark.parametrize("version, words", [
    (2, ["unknown case_format 2"]),
    (..., ["no case_format"]),
    ("1", ["'1' is not an integer"]),
])
def test_replay_refuses_an_unknown_case_format(case, cli, version, words):
    _edit_json(case / "case.json", case_format=version)
    proc = cli("replay", str(case), timeout=300)
    _refused(proc, str(case / "case.json"), *words)


def test_replay_refuses_a_manifest_of_an_unknown_version(case, cli):
    manifest = case / "manifests" / "gen-2.json"
    _edit_json(manifest, manifest_version=2)
    proc = cli("replay", str(case), timeout=300)
    _refused(proc, str(manifest), "unknown manifest_version 2")


def test_manifest_load_checks_its_version(case):
    from harness.judge.manifest import MANIFEST_VERSION, Manifest

    path = case / "manifests" / "gen-1.json"
    assert json.loads(path.read_text())["manifest_version"] == MANIFEST_VERSION
    assert Manifest.load(str(path)).entries
    _edit_json(path, manifest_version=...)
    with pytest.raises(UsageError, match="no manifest_version"):
        Manifest.load(str(path))


# -- what is not the object a reader expects, version or not ---------------------------------
def test_replay_refuses_a_case_json_that_is_not_an_object(case, cli):
    (case / "case.json").write_text("[1]")
    _refused(cli("replay", str(case), timeout=300), str(case / "case.json"), "not a JSON object")


def test_manifest_that_is_not_an_object_is_one_line(case):
    from harness.judge.manifest import Manifest

    path = case / "manifests" / "gen-1.json"
    path.write_text('"manifest"')
    with pytest.raises(UsageError, match="not a JSON object"):
        Manifest.load(str(path))


def test_compare_tf_refuses_a_version_2_result_file_without_its_columns(asv_copy, cli):
    target = _a_result_file(asv_copy)
    _edit_json(target, result_columns=...)
    proc = cli("compare-tf", str(asv_copy), "--out", str(asv_copy / "c.csv"), timeout=120)
    _refused(proc, str(target), "malformed asv result file (no result_columns)")
