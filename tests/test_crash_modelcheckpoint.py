"""Crash targets keras-modelcheckpoint(-full, -best): a Keras ModelCheckpoint callback (one fixed file:
weights only, the whole model, or weights only with save_best_only) writing at epoch end, as `fit`
calls it, killed during save 3 at precise system calls.

The adapter's saves must really be the callback's (Keras 3's and tf-keras's own class), and a kill
must leave what the labels say: the only file truncated and half-written (lost), or complete (new).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import crash_children
from test_crash_targets import Reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = "keras-modelcheckpoint"


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    with crash_children(tmp_path_factory.mktemp("modelcheckpoint-logs"), checker_timeout=90) as kids:
        yield kids


_PROBE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from harness.savers import get_adapter
    from harness.specs import GraphSpec, layout, values

    spec = GraphSpec(n_vars=6, state_bytes=64 * 1024)
    a = get_adapter(sys.argv[2])(layout(spec), seed=spec.seed)
    a.build()
    d = sys.argv[1]
    inodes = []
    for g in (1, 2):
        a.init(g)
        path = a.save(d).path
        inodes.append(os.stat(path).st_ino)
    a.poison()
    a.restore(a.latest(d))
    got = dict(a.iter_values())
    same = all(np.array_equal(got[v.name], values(v, spec.seed, 2)) for v in a.variables)
    cb = a._callback
    print(json.dumps({"module": type(cb).__module__, "epochs": a._epoch, "file": os.path.basename(path),
                      "files": sorted(os.listdir(d)), "same_inode": inodes[0] == inodes[1],
                      "restores_save_2": same, "weights_only": cb.save_weights_only,
                      "best_only": cb.save_best_only}))
""")


# api, TF_USE_LEGACY_KERAS, the callback's module, the file, save_weights_only, save_best_only
_PROBES = [(API, "0", "keras.", "model.weights.h5", True, False),
           (API, "1", "tf_keras.", "model.weights.h5", True, False),
           (API + "-full", "0", "keras.", "model.keras", False, False),
           (API + "-best", "0", "keras.", "model.weights.h5", True, True)]


@pytest.mark.parametrize("api, legacy, module, file, weights_only, best_only", _PROBES)
def test_saves_are_the_callbacks_own(tmp_path, api, legacy, module, file, weights_only, best_only):
    """Under Keras 3 and tf-keras (TF_USE_LEGACY_KERAS=1) the file is written by that Keras's own
    ModelCheckpoint, epoch after epoch over the same file, and the last epoch restores exactly.
    With save_best_only, restoring save 2 (not save 1) shows the callback did not skip it."""
    if legacy == "1":
        pytest.importorskip("tf_keras")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": legacy, "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "ckpt"), api], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["module"].startswith(module), got
    assert got["weights_only"] is weights_only and got["best_only"] is best_only, got
    assert got["epochs"] == 2, got
    assert got["files"] == [file] and got["same_inode"], got   # rewritten in place
    assert got["restores_save_2"], got


@pytest.mark.strace
def test_kill_at_first_write_of_the_overwrite_is_lost_and_after_close_is_new(children, tmp_path):
    from harness.faults import kill

    ref = Reference(children, tmp_path, API)
    assert sorted(ref.rec.base.files) == ["model.weights.h5"] == sorted(ref.rec.final.files)

    # SIGKILL at the entry of the first write after the O_TRUNC open: the only file is empty
    verdict, state = ref.kill_at(ref.point("KILL", "before the first write of the in-place overwrite "
                                                   "of model.weights.h5"))
    assert "exit -9" in state.note, state.note
    assert state.image.files["model.weights.h5"] == b""
    assert verdict.outcome.value == "lost", verdict.detail
    assert "no older checkpoint" in verdict.detail, verdict.detail

    # SIGTERM as the file's close returns: every byte of save 3 is in place, then the process dies
    closes = [op for op in ref.rec.ops if op.call == "close" and op.path == "model.weights.h5"
              and op.tid == ref.rec.pid]
    assert closes, [op.describe() for op in ref.rec.ops]
    spec, follow = kill._exact(ref.rec.calls, closes[-1], "SIGTERM", ref.rec.pid)
    point = kill.KillPoint("event", "TERM", "after the close of model.weights.h5", spec, follow=follow)
    verdict, state = ref.kill_at(point)
    assert "exit -15" in state.note and "had finished" not in state.fault, (state.note, state.fault)
    assert len(state.image.files["model.weights.h5"]) == len(ref.rec.final.files["model.weights.h5"])
    assert verdict.outcome.value == "new", verdict.detail


@pytest.mark.strace
def test_full_model_killed_in_the_zip_writes_is_lost(children, tmp_path):
    """save_weights_only=False: the callback rewrites model.keras in place, as Model.save does, so a
    kill after its first write leaves a zip without a central directory and nothing older (lost)."""
    ref = Reference(children, tmp_path, API + "-full")
    assert sorted(ref.rec.base.files) == ["model.keras"] == sorted(ref.rec.final.files)
    verdict, state = ref.kill_at(ref.point("TERM", "after the first write of the in-place overwrite "
                                                   "of model.keras"))
    assert "exit -15" in state.note, state.note
    data = state.image.files["model.keras"]
    assert 0 < len(data) < len(ref.rec.final.files["model.keras"])
    assert verdict.outcome.value == "lost", verdict.detail
    assert "BadZipFile" in verdict.detail and "no older checkpoint" in verdict.detail, verdict.detail
