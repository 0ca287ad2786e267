"""`ckpt-harness crash --target`: the user's own save code under the crash machinery.

Through the CLI with the path form, as a user runs it: the shipped examples
(a custom loop with CheckpointManager, a Keras fit with ModelCheckpoint) under
kill campaigns, a replayed case, and bad specs refused with one line. In
process: the checker's fallback to an older checkpoint and the fresh object
every restore gets. Real TensorFlow, real processes and signals.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import textwrap

import pytest

from harness.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUSTOM_LOOP = "examples/custom_loop.py:target"
KERAS_FIT = "examples/keras_fit.py:target"


def _campaign(cli, spec, out, trials, *extra):
    r = cli("crash", "--mode", "kill", "--target", spec, "--trials", str(trials), "--out", str(out),
            "--quiet", *extra, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    (run_dir,) = [os.path.join(out, d) for d in os.listdir(out)]
    with open(os.path.join(run_dir, "crash.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(run_dir, "metadata.json")) as f:
        meta = json.load(f)
    assert len(rows) == trials and {r["api"] for r in rows} == {"user"}
    assert not [d for d in os.listdir(run_dir) if d.startswith(".work-")]
    return run_dir, rows, meta


@pytest.mark.strace
def test_custom_loop_with_checkpoint_manager_never_loses_a_save(cli, tmp_path):
    _, rows, meta = _campaign(cli, CUSTOM_LOOP, tmp_path, 4)
    assert meta["target"] == os.path.join(ROOT, CUSTOM_LOOP)   # the file form is kept absolute
    # CheckpointManager renames complete files into place: a kill leaves save 3 or save 2
    assert {r["outcome"] for r in rows} <= {"new", "rollback"}, [(r["outcome"], r["fault"]) for r in rows]
    assert "kill-event" in {r["fault_kind"] for r in rows}   # a rename of the user's save was hit


@pytest.mark.strace
def test_keras_modelcheckpoint_overwrite_loses_the_only_file_and_replays(cli, tmp_path):
    run_dir, rows, _ = _campaign(cli, KERAS_FIT, tmp_path / "out", 4)
    assert {r["outcome"] for r in rows} <= {"new", "rollback", "lost"}
    # SIGKILL in the middle of overwriting model.weights.h5: the old weights are gone
    precise = [r for r in rows if r["fault"].startswith("SIGKILL before the write that passes")]
    assert precise and all(r["outcome"] == "lost" for r in precise), [(r["outcome"], r["fault"]) for r in rows]
    case = os.path.join(run_dir, precise[0]["case_dir"] or precise[0]["similar_case"])
    with open(os.path.join(case, "case.json")) as f:
        assert json.load(f)["target"]["user"] == os.path.join(ROOT, KERAS_FIT)
    # replay from elsewhere: the case carries the target
    r = cli("replay", case, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0 and "lost (same as recorded)" in r.stdout, r.stdout + r.stderr


def _write_target(path, body: str) -> str:
    path.write_text(textwrap.dedent(body))
    return f"{path}:target"


def test_bad_target_specs_are_one_line_errors(cli, tmp_path):
    no_restore = _write_target(tmp_path / "half.py", """
        class Half:
            def build(self): pass
            def update(self, generation): pass
            def values(self): return {}
            def save(self, directory, generation): pass
        def target():
            return Half()
        """)
    cases = [("nocolon", "expected module:function"),
             ("missing_dir/nothing.py:target", "no such file"),
             ("examples/custom_loop.py:2bad", "not a function name"),
             (no_restore, "lacks restore()")]
    for spec, words in cases:
        r = cli("crash", "--mode", "kill", "--target", spec, "--out", str(tmp_path / "out"), timeout=300, cwd=ROOT)
        assert r.returncode == 2, (spec, r.stderr)
        assert r.stderr.count("\n") == 1 and words in r.stderr and "Traceback" not in r.stderr, (spec, r.stderr)
    r = cli("crash", "--mode", "kill", "--target", CUSTOM_LOOP, "--api", "tf2-manager", cwd=ROOT)
    assert r.returncode == 2 and "--target replaces --api" in r.stderr
    r = cli("crash", "--mode", "mutate", "--target", CUSTOM_LOOP, cwd=ROOT)
    assert r.returncode == 2 and "--mode kill, diskfull or trace" in r.stderr


def test_check_spec_names_what_is_wrong(tmp_path, monkeypatch):
    from harness.savers.user import check_spec

    (tmp_path / "pkg_ok.py").write_text("VALUE = 3\ndef broken():\n    raise ValueError('boom')\n")
    (tmp_path / "pkg_bad.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.chdir(tmp_path)   # the module form imports from the current directory
    cases = [("pkg_ok:absent", "defines no 'absent'"),
             ("pkg_ok:VALUE", "is not callable"),
             ("pkg_ok:broken", "calling broken() failed: ValueError: boom"),
             ("pkg_bad:target", "importing pkg_bad failed: ModuleNotFoundError"),
             ("no_such_pkg_zz.sub:target", "no module"),
             (f"{tmp_path}/pkg_ok.py:absent", "defines no 'absent'")]
    for spec, words in cases:
        with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
            check_spec(spec)
    assert check_spec(os.path.join(ROOT, CUSTOM_LOOP)) == os.path.join(ROOT, CUSTOM_LOOP)


# -- the checker on a user target, in this process ------------------------------------
class _Events:
    def send(self, msg):
        pass


def _saved_state(tmp_path, spec):
    """Saves 1..3 of `spec` with their manifests, as the saving process makes them."""
    from harness.faults.target import CrashTarget, manifest_name
    from harness.judge.manifest import Manifest

    target = CrashTarget("user", k=3, user=spec)
    adapter = target.make_adapter()
    state, manifests = tmp_path / "state", tmp_path / "manifests"
    manifests.mkdir()
    for g in (1, 2, 3):
        adapter.init(g)
        Manifest.from_adapter(adapter, generation=g).write(str(manifests), manifest_name(g))
        adapter.save(str(state))
    return target, state, manifests


def _check(ctx, target, state, manifests):
    from harness.faults.checker import check_state
    from harness.faults.state import DirImage

    image = DirImage.load(str(state))
    req = {"target": target.to_dict(), "state_dir": str(state), "manifest_dir": str(manifests),
           "prefix_digests": {p: image.prefix_digest(p) for p in image.prefixes()}}
    return check_state(ctx, req, _Events())


def test_a_broken_latest_falls_back_to_an_intact_older_checkpoint(tmp_path):
    from harness.faults.checker import _Context

    target, state, manifests = _saved_state(tmp_path, os.path.join(ROOT, CUSTOM_LOOP))
    ctx = _Context()
    assert _check(ctx, target, state, manifests)["outcome"] == "new"
    data = state / "ckpt-3.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:8])   # save 3's data cut short: its restore fails
    res = _check(ctx, target, state, manifests)
    # the user's restore raises on ckpt-3; ckpt-2 alone, as a user would point at it by hand, restores save 2
    assert res["outcome"] == "detected", res
    assert "fallback ckpt-2 restores save 2" in res["detail"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".fallback-")]


def test_every_restore_gets_a_fresh_object(tmp_path):
    """A restore that silently loads nothing must not pass on values left by an earlier restore."""
    from harness.faults.checker import _Context

    spec = _write_target(tmp_path / "lazy.py", f"""
        import os, sys
        sys.path.insert(0, {os.path.join(ROOT, "examples")!r})
        from custom_loop import CustomLoop

        class Lazy(CustomLoop):
            def restore(self, directory):
                if os.path.exists(os.path.join(directory, "skip")):
                    return self.values()   # "restored" without loading anything
                return super().restore(directory)

        def target():
            return Lazy()
        """)
    target, state, manifests = _saved_state(tmp_path, spec)
    ctx = _Context()
    assert _check(ctx, target, state, manifests)["outcome"] == "new"
    other = tmp_path / "state2"
    shutil.copytree(state, other)
    (other / "skip").write_text("")
    res = _check(ctx, target, other, manifests)
    assert res["outcome"] == "silent", res   # the freshly built weights equal no save
