"""Crash targets beyond the low-level TF APIs (Keras files, sharded, async, SavedModel) and the
truth of kill-point labels, against real TensorFlow and real signals delivered by strace.

Each test kills save 3 (after saves 1 and 2 completed) at one precise system call, found in a
traced reference save, and asserts what the judge makes of the directory left behind.
One saving zygote and one checker are shared by the module (each costs a TensorFlow import).
"""

from __future__ import annotations

import csv
import json
import os
import re

import pytest
from conftest import crash_children

from harness.specs import GraphSpec

SPEC = GraphSpec(n_vars=16, state_bytes=256 * 1024)


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    with crash_children(tmp_path_factory.mktemp("crash-target-logs"), checker_timeout=90) as kids:
        yield kids


def test_kill_point_specs_name_the_call_strace_really_stops():
    """strace counts `when=N` per thread: a worker's first rename pre-empts the main thread's first.
    The plan must see that and trace the main thread alone for it (no TensorFlow here)."""
    from types import SimpleNamespace

    from harness.faults import kill, strace

    main, worker = 100, 101
    lines = [f"{worker} 10:00:00.000001 rename(\"/d/a.tempstate1\", \"/d/a\") = 0",
             f"{main} 10:00:00.000002 openat(AT_FDCWD</d>, \"/d/checkpoint.tmp9\", O_WRONLY|O_CREAT|O_TRUNC, 0666) "
             f"= 5</d/checkpoint.tmp9>",
             f"{main} 10:00:00.000003 close(5</d/checkpoint.tmp9>) = 0",
             f"{main} 10:00:00.000004 rename(\"/d/checkpoint.tmp9\", \"/d/checkpoint\") = 0"]
    calls = strace.raw_calls(lines)
    ops = strace.parse_ops((), "/d", calls)
    data_rename, ckpt_rename = [op for op in ops if op.call == "rename"]
    assert strace.first_hit(calls, ckpt_rename.raw_index) == data_rename.raw_index   # the pre-emption
    assert kill._exact(calls, data_rename, "SIGKILL", main) == ("rename:signal=SIGKILL:when=1", True)
    assert kill._exact(calls, ckpt_rename, "SIGKILL", main) == ("rename:signal=SIGKILL:when=1", False)
    ref = SimpleNamespace(ops=ops, calls=calls, pid=main, base=SimpleNamespace(files={}))
    points, notes = kill.event_points(ref)
    ckpt_kill = next(p for p in points if p.sig == "KILL" and "-> checkpoint" in p.label)
    assert not ckpt_kill.follow and ckpt_kill.label.endswith("[main thread traced alone]") and not notes
    # a worker's call that its count cannot single out is left out, and said so
    ref.pid = 999
    points, notes = kill.event_points(ref)
    assert all("-> checkpoint" not in p.label for p in points) and len(notes) == 1


class Reference:
    """A traced save 3 of one API, its kill points, and a way to kill a fresh trial at one."""

    def __init__(self, children, tmp_path, api: str, keras: str | None = None):
        from harness.faults import kill
        from harness.faults.record import record_save
        from harness.faults.target import CrashTarget

        self.children, self.tmp = children, tmp_path
        self.target = CrashTarget(api, SPEC) if keras is None else CrashTarget(api, SPEC, keras=keras)
        self.manifests = str(tmp_path / "manifests")
        self.rec = record_save(children[0], self.target, str(tmp_path / "reference"), self.manifests)
        self.points, self.notes = kill.event_points(self.rec)
        self.n = 0

    def point(self, sig: str, label: str):
        # the label up to a word's end: "... of x.h5" must not pick "... of x.h5.bkp"
        found = [p for p in self.points if p.sig == sig and p.label.startswith(label)
                 and p.label[len(label):][:1] in ("", " ", ",")]
        assert found, (label, [p.label for p in self.points])
        return found[0]

    def kill_at(self, point):
        """(verdict, crash state) of a fresh trial killed at `point`."""
        from harness.faults import kill
        from harness.faults.apis import candidate_digests

        self.n += 1
        work = self.tmp / f"trial-{self.n}"
        state = kill.run_trial(self.children[0], self.target, point, str(work), self.manifests, True)
        image = state.image.relocated(str(work))
        check = work / "check"
        image.materialize(str(check))
        verdict, _ = self.children[1].check(self.target, str(check), self.manifests,
                                            candidate_digests(self.target.api, image))
        return verdict, state


@pytest.mark.strace
def test_keras_weights_kill_at_first_write_of_the_overwrite_is_lost(children, tmp_path):
    ref = Reference(children, tmp_path, "keras-weights")
    # every save writes over the same file: the reference save truncates save 2's file at open
    assert sorted(ref.rec.base.files) == ["model.weights.h5"] == sorted(ref.rec.final.files)
    verdict, state = ref.kill_at(ref.point("KILL", "before the first write of the in-place overwrite "
                                                   "of model.weights.h5"))
    assert "exit -9" in state.note
    assert state.image.files["model.weights.h5"] == b""   # truncated, nothing new written yet
    assert verdict.outcome.value == "lost", verdict.detail
    assert "OSError" in verdict.detail and "no older checkpoint" in verdict.detail


@pytest.mark.strace
def test_keras_model_torn_zip_is_lost_with_the_real_zip_error(children, tmp_path):
    ref = Reference(children, tmp_path, "keras-model")
    verdict, state = ref.kill_at(ref.point("TERM", "after the first write of the in-place overwrite "
                                                   "of model.keras"))
    data = state.image.files["model.keras"]
    assert 0 < len(data) < len(ref.rec.final.files["model.keras"])   # a zip cut after its first entry
    assert verdict.outcome.value == "lost", verdict.detail
    # Keras itself says "File not found" for a file that is there: the detail says what is wrong
    assert "File not found" in verdict.detail and "BadZipFile" in verdict.detail, verdict.detail
    assert "ValueError: ValueError" not in verdict.detail, verdict.detail   # the type is named once


@pytest.mark.strace
def test_tf2_sharded_kill_during_the_merge_rolls_back(children, tmp_path):
    ref = Reference(children, tmp_path, "tf2-sharded")
    shards = [f for f in ref.rec.final.files if re.match(r"ckpt-3\.data-\d+-of-\d+$", f)]
    assert len(shards) >= 4, sorted(ref.rec.final.files)
    last_data = [op for op in ref.rec.ops if op.call == "rename" and op.dest.startswith("ckpt-3.data-")][-1]
    # killed before the last data shard is renamed into place: the index is not written yet
    verdict, state = ref.kill_at(next(p for p in ref.points
                                      if p.sig == "KILL" and p.label.endswith(f"-> {last_data.dest})")))
    landed = [f for f in state.image.files if f.startswith("ckpt-3.data-")]
    assert len(landed) == len(shards) - 1 and "ckpt-3.index" not in state.image.files
    assert verdict.outcome.value == "rollback", verdict.detail
    assert "ckpt-2" in verdict.detail


@pytest.mark.strace
def test_async_kill_after_save_returned_rolls_back(children, tmp_path):
    ref = Reference(children, tmp_path, "async-checkpoint")
    # the data lands by a rename on the background thread, after save() returned
    point = next(p for p in ref.points if p.sig == "KILL" and p.label.endswith("-> ckpt-3.data-00000-of-00001)"))
    verdict, state = ref.kill_at(point)
    assert "save() returned ckpt-3" in state.note, state.note
    assert "ckpt-3.index" not in state.image.files
    assert verdict.outcome.value == "rollback", verdict.detail


@pytest.mark.strace
def test_async_saves_of_a_restarted_job_replace_the_only_checkpoint(children, tmp_path):
    """TF's async saves store save_counter 0, so a job restarted before each save names every save
    ckpt-1: a kill after save 3's data replaced ckpt-1's and before its index did leaves no
    restorable checkpoint (lost), where async-checkpoint would still hold ckpt-2. A kill before
    that rename rolls back: ckpt-1 is still save 2."""
    ref = Reference(children, tmp_path, "async-restart")
    ckpts = sorted({f.split(".")[0] for f in ref.rec.base.files if f.startswith("ckpt-")})
    if ckpts != ["ckpt-1"]:
        pytest.skip(f"this TensorFlow numbers async saves after a restart on: {ckpts}")
    data = "(rename ckpt-1_temp/part-00000-of-00001.data-00000-of-00001 -> ckpt-1.data-00000-of-00001)"
    before, after = ref.point("KILL", "before rename #3 " + data), ref.point("TERM", "after rename #3 " + data)
    # save 3's data is in place, ckpt-1.index is still save 2's (TF merges the index in place next)
    verdict, state = ref.kill_at(after)
    assert "exit -15" in state.note, state.note
    assert state.image.files["ckpt-1.index"] == ref.rec.base.files["ckpt-1.index"]
    assert verdict.outcome.value == "lost", (after.label, verdict.detail)
    assert "DataLossError" in verdict.detail, verdict.detail
    verdict, _ = ref.kill_at(before)
    assert verdict.outcome.value == "rollback", (before.label, verdict.detail)


def _names_save(image, g: int) -> bool:
    text = image.files["checkpoint"].decode()
    return re.search(rf'^model_checkpoint_path: ".*model\.ckpt-{g}"$', text, re.M) is not None


@pytest.mark.strace
def test_tf1_saver_kill_points_leave_what_their_labels_say(children, tmp_path):
    """In graph mode TF writes and renames the data and index on a worker thread; the `checkpoint`
    rename happens on the main thread. Each labelled point must stop exactly that rename."""
    from harness.faults.state import normalize_name

    ref = Reference(children, tmp_path, "tf1-saver")
    kills = [p for p in ref.points if p.sig == "KILL" and p.label.startswith("before rename")]
    assert len(kills) == 3 and not ref.notes, ([p.label for p in ref.points], ref.notes)
    for point in kills:
        src, dest = re.search(r"\(rename (\S+) -> (\S+)\)", point.label).groups()
        verdict, state = ref.kill_at(point)
        names = {normalize_name(f) for f in state.image.files}
        assert src in names, (point.label, sorted(names))          # not renamed ...
        if dest == "checkpoint":
            # ... so `checkpoint` still names save 2 while save 3's data and index are complete
            assert {"model.ckpt-3.index", "model.ckpt-3.data-00000-of-00001"} <= names
            assert _names_save(state.image, 2) and not _names_save(state.image, 3)
        else:
            assert dest not in names, (point.label, sorted(names))
        assert verdict.outcome.value == "rollback", (point.label, verdict.detail)
    after = ref.point("TERM", "after rename #3 (rename checkpoint.tmp* -> checkpoint)")
    verdict, state = ref.kill_at(after)
    assert _names_save(state.image, 3) and verdict.outcome.value == "new", verdict.detail


@pytest.mark.strace
def test_async_kill_campaign_kills_after_save_returned(children, tmp_path):
    """A whole kill run of the async target: its timed points come after save() returned."""
    from harness.faults.campaign import Campaign, CrashConfig

    cfg = CrashConfig(mode="kill", apis=("async-checkpoint",), trials=3, seed=0, spec=SPEC,
                      out=str(tmp_path), quiet=True)
    camp = Campaign(cfg, *children).run()
    with open(os.path.join(camp.run_dir, "crash.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(camp.run_dir, "metadata.json")) as f:
        meta = json.load(f)
    assert [r["api"] for r in rows] == ["async-checkpoint"] * 3
    returned = [r for r in rows if r["fault_kind"] == "kill-returned"]
    assert returned, [r["fault"] for r in rows]
    assert all("after save() returned" in r["fault"] and "save() returned ckpt-3" in r["note"] for r in returned)
    assert all(r["outcome"] in ("new", "rollback", "detected", "lost", "silent") for r in rows)
    assert meta["per_api"]["async-checkpoint"]["states"] == 3


def test_run_keras_model_and_tf2_sharded_restore_complete(cli, tmp_path):
    r = cli("run", "--api", "keras-model", "--api", "tf2-sharded", "--size", "128KiB", "--vars", "6",
            "--repeat", "1", "--out", str(tmp_path), "--quiet", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    [run_dir] = [d for d in tmp_path.iterdir() if d.is_dir()]
    with open(run_dir / "phases.csv") as f:
        rows = list(csv.DictReader(f))
    restores = [(row["api"], row["phase"], row["outcome"]) for row in rows if row["phase"].startswith("restore")]
    assert {a for a, _, _ in restores} == {"keras-model", "tf2-sharded"}
    assert all(o == "complete" for _, _, o in restores), restores


def test_mutate_refuses_targets_that_are_not_tf_bundles(cli, tmp_path):
    r = cli("crash", "--mode", "mutate", "--api", "keras-weights", "--out", str(tmp_path), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "ckpt-harness: error: --mode mutate damages TF checkpoint bundles; keras-weights is not one (use kill, "
        "diskfull or trace, or mutate with tf2-manager, tf2-checkpoint, tf1-saver, tf2-sharded, async-checkpoint)"]


@pytest.mark.strace
def test_every_way_of_finding_the_latest_checkpoint_is_judged(children, tmp_path):
    """A complete save 3 whose index is gone: tf.train.latest_checkpoint checks that the files exist
    and finds nothing (a restart silently starts from scratch: lost); CheckpointManager.latest_checkpoint
    names ckpt-3 unchecked, its restore fails and ckpt-2 is there (detected). The worst one counts."""
    from harness.faults.apis import candidate_digests

    ref = Reference(children, tmp_path, "tf2-manager")
    image = ref.rec.final.relocated(str(tmp_path / "reference")).copy()
    del image.files["ckpt-3.index"]
    image.materialize(str(tmp_path / "planted"))
    verdict, msg = children[1].check(ref.target, str(tmp_path / "planted"), ref.manifests,
                                     candidate_digests("tf2-manager", image))
    assert msg["finders"] == {"tf.train.latest_checkpoint": "lost", "CheckpointManager.latest_checkpoint": "detected"}
    assert verdict.outcome.value == "lost"
    assert verdict.detail.startswith("found by tf.train.latest_checkpoint: the API finds no checkpoint")
    assert verdict.detail.endswith("[CheckpointManager.latest_checkpoint: detected]"), verdict.detail


@pytest.mark.strace
def test_savedmodel_export_over_an_old_one_loses_it_when_killed_at_the_index_rewrite(children, tmp_path):
    ref = Reference(children, tmp_path, "savedmodel")
    verdict, state = ref.kill_at(ref.point("KILL", "before the first write of the in-place overwrite of "
                                                   "savedmodel/variables/variables.index"))
    assert state.image.files["savedmodel/variables/variables.index"] == b""
    assert "savedmodel/saved_model.pb" in state.image.files   # the old export's graph is still there
    assert verdict.outcome.value == "lost", verdict.detail
    assert "sstable" in verdict.detail, verdict.detail
