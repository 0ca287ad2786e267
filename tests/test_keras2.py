"""`--keras 2`: the harness under tf-keras (legacy Keras 2, TF_USE_LEGACY_KERAS=1).

A tiny keras-weights run completes with every restore complete and says Keras 2
in its metadata; a crash campaign's saving and checking processes really run
tf-keras (the target refuses to build otherwise); without tf_keras installed the
switch is one clear line.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



@pytest.fixture
def tf_keras():
    """tf-keras comes with the [test] extra; without it these tests skip (fail under CKPT_REQUIRE_ALL=1)."""
    require(importlib.util.find_spec("tf_keras") is not None, "tf-keras is not installed (extra [keras2])")


def _one_run(out):
    (run_dir,) = [os.path.join(out, d) for d in os.listdir(out)]
    return run_dir


def test_run_keras_weights_under_keras2(cli, tmp_path, tf_keras):
    r = cli("run", "--api", "keras-weights", "--keras", "2", "--size", "64KiB", "--vars", "4", "--repeat", "1",
            "--quiet", "--out", str(tmp_path), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = _one_run(tmp_path)
    with open(os.path.join(run_dir, "metadata.json")) as f:
        meta = json.load(f)
    assert meta["keras_flavour"] == "tf_keras" and meta["keras_version"].startswith("2."), meta
    with open(os.path.join(run_dir, "phases.csv")) as f:
        rows = [row for row in csv.DictReader(f) if row["phase"] in ("restore_warm", "restore_cold", "verify")]
    assert rows and {row["outcome"] for row in rows} == {"complete"}, rows


@pytest.mark.strace
def test_crash_processes_run_tf_keras(cli, tmp_path, tf_keras):
    guard = tmp_path / "keras2_fit.py"
    guard.write_text(textwrap.dedent(f"""
        import sys
        import tensorflow as tf
        sys.path.insert(0, {os.path.join(ROOT, "examples")!r})
        from keras_fit import KerasFit

        class OnlyKeras2(KerasFit):
            def build(self):   # runs in the saving trials and in the checker
                if not tf.keras.__name__.startswith("tf_keras"):
                    raise RuntimeError("expected tf-keras, got " + tf.keras.__name__)
                super().build()

        def target():
            return OnlyKeras2()
        """))
    out = tmp_path / "out"
    r = cli("crash", "--mode", "kill", "--target", f"{guard}:target", "--keras", "2", "--trials", "2",
            "--out", str(out), "--quiet", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = _one_run(out)
    with open(os.path.join(run_dir, "crash.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {row["outcome"] for row in rows} <= {"new", "rollback", "lost"}
    with open(os.path.join(run_dir, "metadata.json")) as f:
        assert json.load(f)["keras_flavour"] == "tf_keras"
    for row in rows:
        if row["case_dir"]:   # the case remembers its Keras, so replay judges it under the same one
            with open(os.path.join(run_dir, row["case_dir"], "case.json")) as f:
                assert json.load(f)["target"]["keras"] == "2"


def test_keras2_without_tf_keras_is_one_line(tmp_path):
    code = ("import sys; sys.modules['tf_keras'] = None\n"   # as if tf-keras were not installed
            "from harness.cli import main\n"
            f"sys.exit(main(['run', '--api', 'keras-weights', '--keras', '2', '--out', {str(tmp_path)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "--keras 2 needs tf-keras" in r.stderr, r.stderr
    assert not os.listdir(tmp_path)
