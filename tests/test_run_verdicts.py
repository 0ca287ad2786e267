"""A run whose restore is not complete fails everywhere: exit code, status, no throughput.

The failures are planted in the real worker process through a sitecustomize module on
PYTHONPATH that patches the harness's own adapter (TensorFlow itself is untouched):
a restore that restores nothing, and a restore that changes one value.
"""

import csv
import json
import os
import textwrap

import pytest

from conftest import run_cli

PLANTS = {
    # Checkpoint.read never called: the live state stays poisoned
    "nothing": """
        def restore(self, path):
            pass
    """,
    # the real restore, then one element of one variable changed
    "one-value": """
        _real = TF2Checkpoint.restore
        def restore(self, path):
            _real(self, path)
            name, var = next(iter(self._all_state()))
            flat = tf.reshape(var, [-1])
            var.assign(tf.reshape(tf.tensor_scatter_nd_add(flat, [[0]], [1]), var.shape))
    """,
}


def _plant(tmp_path, body):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent("""
        import os
        if os.environ.get("CKPT_TEST_PLANT") == "1":
            import tensorflow as tf
            from harness.savers.tf2 import TF2Checkpoint
    """) + textwrap.indent(textwrap.dedent(body), "    ") + "    TF2Checkpoint.restore = restore\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), "CKPT_TEST_PLANT": "1"}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_incomplete_restore_fails_the_run(plant, tmp_path):
    out = tmp_path / "runs"
    p = run_cli("run", "--api", "tf2-checkpoint", "--size", "1MiB", "--vars", "8", "--repeat", "2",
                "--out", str(out), env=_plant(tmp_path, PLANTS[plant]))
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    failed = [ln for ln in p.stderr.splitlines() if ln.startswith("ckpt-harness: scenario failed:")]
    assert len(failed) == 1 and "mismatch" in failed[0], p.stderr[-2000:]
    (run_dir,) = [out / d for d in os.listdir(out)]
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "failed" and len(meta["failures"]) == 1
    rows = list(csv.DictReader(open(run_dir / "phases.csv")))
    restores = [r for r in rows if r["phase"].startswith("restore")]
    assert restores and all(r["outcome"] == "mismatch" for r in restores)
    # no throughput for anything of a repeat whose restore failed; the roofline keeps its own
    for r in rows:
        if r["phase"] in ("save", "save_durable", "restore_warm", "restore_cold"):
            assert r["gbps"] == "" and r["roofline_fraction"] == "", r
    assert all(r["gbps"] for r in rows if r["phase"].startswith("raw_"))


def test_same_plant_off_runs_complete(tmp_path):
    # the planting mechanism alone changes nothing: the run passes without it
    out = tmp_path / "runs"
    env = _plant(tmp_path, PLANTS["nothing"])
    env["CKPT_TEST_PLANT"] = "0"
    p = run_cli("run", "--api", "tf2-checkpoint", "--size", "1MiB", "--vars", "8", "--repeat", "1",
                "--out", str(out), env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    (run_dir,) = [out / d for d in os.listdir(out)]
    assert json.loads((run_dir / "metadata.json").read_text())["status"] == "complete"


def test_suspect_flag_above_roofline():
    from harness.phases import _fill_rates

    rows = [{"phase": "raw_read_warm", "repeat": 0, "seconds": 1.0},
            {"phase": "restore_warm", "repeat": 0, "seconds": 0.5, "outcome": "complete"},
            {"phase": "raw_write", "repeat": 0, "seconds": 1.0},
            {"phase": "save", "repeat": 0, "seconds": 1.1}]
    _fill_rates(rows, 10**9)
    assert rows[1]["suspect"] == "above-roofline:raw_read_warm" and rows[1]["roofline_fraction"] == 2.0
    assert "suspect" not in rows[3]
    from harness.summary import suspect_lines
    for r in rows:
        r["scenario"] = "s"
    (line,) = suspect_lines(rows)
    assert "restore_warm" in line and "200%" in line
