"""Crash targets keras-backup and keras-backup-double: a Keras 3 `BackupAndRestore` callback's
epoch-end backup (latest.weights.h5, then training_metadata.json; with double_checkpoint, .bkp
copies of both first), killed during save 3 at precise system calls, and judged by what a
restarted `fit` does: a fresh callback's `on_train_begin`, and the epoch fit would resume at.

The resumed epoch is judged with the weights (the value `backup/epoch`): weights of save 3 with
the epoch of save 2 equal no completed save, which is `silent` (fit repeats an epoch, no error).

Under tf-keras the same callback keeps a TF checkpoint of the model and the epoch together
(`backup/chief/ckpt-N`, max_to_keep=1): its kill points are a manager's renames, and the
epoch can only come back with the weights it was saved with.
"""

from __future__ import annotations

import importlib.util
import os
import re

import pytest
from conftest import crash_children, require
from test_crash_targets import Reference

from harness.faults.crashstates import Replay
from harness.tfenv import LEGACY_KERAS_ENV

WEIGHTS, METADATA = "backup/latest.weights.h5", "backup/training_metadata.json"


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    with crash_children(tmp_path_factory.mktemp("backup-logs"), checker_timeout=90) as kids:
        yield kids


def _kill_at_open(ref, name: str):
    """SIGKILL at the entry of the main thread's open of `name` for writing (O_TRUNC; never happens).
    (With double_checkpoint the file is opened for reading first, to copy it to .bkp.)"""
    from harness.faults import kill

    opens = [op for op in ref.rec.ops if op.call == "open" and op.path == name and op.tid == ref.rec.pid
             and "O_TRUNC" in op.flags]
    assert opens, [op.describe() for op in ref.rec.ops]
    spec, follow = kill._exact(ref.rec.calls, opens[0], "SIGKILL", ref.rec.pid)
    return ref.kill_at(kill.KillPoint("event", "KILL", f"before the open of {name}", spec, follow=follow))


@pytest.mark.strace
def test_backup_kills_lost_silent_and_new(children, tmp_path):
    ref = Reference(children, tmp_path, "keras-backup")
    files = [WEIGHTS, METADATA]
    assert sorted(ref.rec.base.files) == files == sorted(ref.rec.final.files)
    assert ref.rec.final.files[METADATA] == b'{"epoch": 3, "batch": 0}'   # save 3 = the end of epoch 2
    # Keras writes the weights first, the metadata after: the order the silent state below relies on
    opened = [op.path for op in ref.rec.ops if op.call == "open" and op.path in files]
    assert opened.index(METADATA) > max(i for i, p in enumerate(opened) if p == WEIGHTS), opened

    # the weights file truncated, nothing written yet: h5py's OSError, no .bkp to fall back to
    verdict, state = ref.kill_at(ref.point("KILL", f"before the first write of the in-place overwrite of {WEIGHTS}"))
    assert "exit -9" in state.note and state.image.files[WEIGHTS] == b""
    assert verdict.outcome.value == "lost", verdict.detail
    assert "OSError" in verdict.detail, verdict.detail

    # the weights of save 3 complete, the metadata still save 2's: fit resumes at epoch 2 with
    # epoch 2's weights already in, no error; the judge names the epoch as what differs
    verdict, state = _kill_at_open(ref, METADATA)
    assert state.image.files[WEIGHTS] == ref.rec.final.files[WEIGHTS]
    assert state.image.files[METADATA] == ref.rec.base.files[METADATA] == b'{"epoch": 2, "batch": 0}'
    assert verdict.outcome.value == "silent", verdict.detail
    assert "backup/epoch" in verdict.detail, verdict.detail

    # the metadata truncated: json raises, the restarted fit fails
    verdict, state = ref.kill_at(ref.point("KILL", f"before the first write of the in-place overwrite of {METADATA}"))
    assert state.image.files[METADATA] == b""
    assert verdict.outcome.value == "lost" and "JSONDecodeError" in verdict.detail, verdict.detail

    # SIGTERM after the metadata's one write: the backup of save 3 is whole
    verdict, state = ref.kill_at(ref.point("TERM", f"after the first write of the in-place overwrite of {METADATA}"))
    assert state.image.files == ref.rec.final.files
    assert verdict.outcome.value == "new", verdict.detail


@pytest.mark.strace
def test_double_checkpoint_falls_back_on_oserror_only(children, tmp_path):
    ref = Reference(children, tmp_path, "keras-backup-double")
    bkp = [WEIGHTS + ".bkp", METADATA + ".bkp"]
    assert sorted(ref.rec.final.files) == sorted([WEIGHTS, METADATA] + bkp)
    # save 3 copies save 2's backup to .bkp before it overwrites anything
    assert all(ref.rec.final.files[b] == ref.rec.base.files[b[:-4]] for b in bkp)
    # ... with shutil.copy, whose bytes go by sendfile: the trace counts those as writes, so a
    # state once the copies are done has whole .bkp files (a replay blind to sendfile left
    # them empty, and every fallback after them failed)
    copies = [op for op in ref.rec.ops if op.call == "write" and op.path in bkp]
    assert {op.path for op in copies} == set(bkp) and {op.syscall for op in copies} == {"sendfile"}
    truncated = [s for s in Replay(ref.rec.base, ref.rec.ops, ref.rec.final).process_states()
                 if s.image.files.get(WEIGHTS) == b""]
    assert truncated and all(s.image.files[b] == ref.rec.base.files[b[:-4]] for s in truncated for b in bkp)

    # the weights truncated: OSError, Keras copies the .bkp files back and resumes save 2 exactly
    verdict, state = ref.kill_at(ref.point("KILL", f"before the first write of the in-place overwrite of {WEIGHTS}"))
    assert state.image.files[WEIGHTS] == b""
    assert verdict.outcome.value == "rollback", verdict.detail
    _fallback_writes_only_into_its_own_copy(ref, state, tmp_path)

    # the metadata truncated, its good .bkp beside it: json's ValueError is no OSError, so the
    # fallback never runs and the restart fails
    verdict, state = ref.kill_at(ref.point("KILL", f"before the first write of the in-place overwrite of {METADATA}"))
    assert state.image.files[METADATA] == b""
    assert state.image.files[METADATA + ".bkp"] == ref.rec.base.files[METADATA]
    assert verdict.outcome.value == "lost" and "JSONDecodeError" in verdict.detail, verdict.detail

    # weights of save 3 with save 2's metadata: nothing fails, so the .bkp is not looked at
    verdict, _ = _kill_at_open(ref, METADATA)
    assert verdict.outcome.value == "silent" and "backup/epoch" in verdict.detail, verdict.detail


def _fallback_writes_only_into_its_own_copy(ref, state, tmp_path):
    """The fallback above copies the .bkp files over the latest ones: it writes into the
    state's files. A campaign hands the checker links to shared blobs (and to the recording)
    unless apis.restore_writes says the restore writes; then it gets its own copies."""
    from harness.faults.apis import candidate_digests, restore_writes
    from harness.faults.state import BlobStore, check_untouched

    image = state.image.relocated(str(tmp_path / f"trial-{ref.n}"))

    def judge(root, private):
        linked = BlobStore(str(tmp_path / f"blobs-{root}")).materialize(image, str(tmp_path / root), private)
        # no digests: the checker would reuse an attempt on the same bytes, not restore again
        no_reuse = dict.fromkeys(candidate_digests(ref.target.api, image))
        verdict, _ = ref.children[1].check(ref.target, str(tmp_path / root), ref.manifests, no_reuse)
        return verdict, linked

    # as the campaign does it: the checker's copy is its own, nothing shared changes
    verdict, linked = judge("campaign", restore_writes(ref.target.api))
    assert verdict.outcome.value == "rollback", verdict.detail
    check_untouched(linked, ref.target.api)
    # planted: the same state as links to blobs. The two metadata files hold the same bytes,
    # so they are one blob: the fallback's copy fails (SameFileError), which no disk does; and
    # it has written the weights into the shared blob, which the guard reports
    verdict, linked = judge("linked", False)
    assert verdict.outcome.value == "lost" and "SameFileError" in verdict.detail, verdict.detail
    with pytest.raises(RuntimeError, match="wrote into .*latest.weights.h5 in place"):
        check_untouched(linked, ref.target.api)


def _set_env(name: str, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.fixture(scope="module")
def tf_keras_children(tmp_path_factory):
    """A zygote and a checker started under tf-keras. The variable is set only while they start:
    TensorFlow reads it once, at import, and this process must stay on Keras 3."""
    require(importlib.util.find_spec("tf_keras") is not None, "tf-keras is not installed (extra [keras2])")
    saved = os.environ.get(LEGACY_KERAS_ENV)
    _set_env(LEGACY_KERAS_ENV, "1")
    try:
        with crash_children(tmp_path_factory.mktemp("backup-k2-logs"), checker_timeout=90) as kids:
            _set_env(LEGACY_KERAS_ENV, saved)
            yield kids
    finally:
        _set_env(LEGACY_KERAS_ENV, saved)


@pytest.mark.strace
def test_tf_keras_backup_rolls_back_with_its_epoch(tf_keras_children, tmp_path):
    ref = Reference(tf_keras_children, tmp_path, "keras-backup", keras="2")
    chief = "backup/chief/"
    # max_to_keep=1: save 3's checkpoint replaces save 2's; the epoch is a variable inside it
    assert sorted(ref.rec.base.files) == [chief + "checkpoint", chief + "ckpt-2.data-00000-of-00001",
                                          chief + "ckpt-2.index"], sorted(ref.rec.base.files)
    assert sorted(ref.rec.final.files) == [chief + "checkpoint", chief + "ckpt-3.data-00000-of-00001",
                                           chief + "ckpt-3.index"], sorted(ref.rec.final.files)
    update = [p for p in ref.points if re.search(r"-> backup/chief/checkpoint\)", p.label)]
    before = next(p for p in update if p.sig == "KILL")
    after = next(p for p in update if p.sig == "TERM")

    # killed before `checkpoint` names ckpt-3: ckpt-3 complete beside it, the restart resumes save 2
    # (its weights and its epoch: fit goes on at epoch 2, as it should)
    verdict, state = ref.kill_at(before)
    assert {chief + "ckpt-2.index", chief + "ckpt-3.index"} <= set(state.image.files), sorted(state.image.files)
    assert verdict.outcome.value == "rollback", (before.label, verdict.detail)
    # once `checkpoint` names ckpt-3, the restart resumes save 3 with epoch 3
    verdict, state = ref.kill_at(after)
    assert verdict.outcome.value == "new", (after.label, verdict.detail)
    # no kill point of the manager's save can part the epoch from its weights
    for point in ref.points:
        verdict, _ = ref.kill_at(point)
        assert verdict.outcome.value in ("new", "rollback"), (point.label, verdict.detail)


def test_tf_keras_backup_names_its_weights_and_epoch(tmp_path):
    """The checkpoint's keys map back to the model's names and the epoch (used when a restore
    raises, to say what is missing); the loop's own state (optimizer, counters) is left out."""
    import json
    import subprocess
    import sys

    require(importlib.util.find_spec("tf_keras") is not None, "tf-keras is not installed (extra [keras2])")
    code = ("import json, sys\n"
            "from harness.faults.target import CrashTarget\n"
            "from harness.specs import GraphSpec\n"
            "a = CrashTarget('keras-backup', GraphSpec(n_vars=6, state_bytes=4096), keras='2').make_adapter()\n"
            "a.init(1)\n"
            "a.save(sys.argv[1])\n"
            "held = a.checkpoint_names(a.latest(sys.argv[1]))\n"
            "print(json.dumps({'held': sorted(held), 'model': sorted(a.expected_names()),\n"
            "                  'chief': sorted(__import__('os').listdir(sys.argv[1] + '/backup/chief'))}))\n")
    env = {**os.environ, LEGACY_KERAS_ENV: "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert "ckpt-1.index" in got["chief"], got
    assert got["held"] == got["model"] and "backup/epoch" in got["held"], got


# -- keras-backup-batch: save_freq=3, 4 batches an epoch: save 3 is the batch end of batch 9 ----

@pytest.mark.strace
def test_backup_batch_keras3_restart_replays_the_epoch_start(children, tmp_path):
    """Keras 3 records the batch of a mid-epoch backup and never reads it back: a clean restart
    resumes save 3's weights at the first batch of its epoch (batch 8, not 9), which the judge
    reads as `silent`. Judging the weights alone would call that state `new`."""
    ref = Reference(children, tmp_path, "keras-backup-batch")
    assert sorted(ref.rec.final.files) == [WEIGHTS, METADATA]
    # save 2 after batch 6 = epoch 1's batch index 1; save 3 after batch 9 = epoch 2's index 0
    assert ref.rec.base.files[METADATA] == b'{"epoch": 1, "batch": 1}'
    assert ref.rec.final.files[METADATA] == b'{"epoch": 2, "batch": 0}'

    # save 3 written whole: the weights are save 3's, only where fit resumes differs
    verdict, state = ref.kill_at(ref.point("TERM", f"after the first write of the in-place overwrite of {METADATA}"))
    assert state.image.files == ref.rec.final.files
    assert verdict.outcome.value == "silent", verdict.detail
    assert "vs save 3: mismatch: 1 of 17 variable(s) differ from the save: backup/step;" in verdict.detail

    # the weights truncated at open: lost, as with epoch backups
    verdict, state = ref.kill_at(ref.point("KILL", f"before the first write of the in-place overwrite of {WEIGHTS}"))
    assert state.image.files[WEIGHTS] == b""
    assert verdict.outcome.value == "lost" and "OSError" in verdict.detail, verdict.detail


@pytest.mark.strace
def test_backup_batch_tf_keras_resumes_after_the_saved_batch(tf_keras_children, tmp_path):
    """tf-keras keeps the batch in its training-state checkpoint and its fit resumes at the next
    one: a restart once `checkpoint` names ckpt-3 is `new`, one before it `rollback`."""
    ref = Reference(tf_keras_children, tmp_path, "keras-backup-batch", keras="2")
    update = [p for p in ref.points if re.search(r"-> backup/chief/checkpoint\)", p.label)]
    verdict, _ = ref.kill_at(next(p for p in update if p.sig == "KILL"))
    assert verdict.outcome.value == "rollback", verdict.detail
    verdict, _ = ref.kill_at(next(p for p in update if p.sig == "TERM"))
    assert verdict.outcome.value == "new", verdict.detail


@pytest.mark.parametrize("keras, api, resumes_at", [
    ("3", "keras-backup", 3),           # epoch backups: epoch 3 after save 3
    ("3", "keras-backup-batch", 8),     # Keras 3: epoch 2 from its first batch, 2 * 4
    ("2", "keras-backup", 3),
    ("2", "keras-backup-batch", 9),     # tf-keras: epoch 2, batch 0 + 1: 2 * 4 + 1
])
def test_a_restart_resumes_where_fit_would(tmp_path, keras, api, resumes_at):
    """Three saves, then what a restarted process's fit resumes at (in batches for -batch, in
    epochs for epoch backups), from the adapter's own restore."""
    import json
    import subprocess
    import sys

    if keras == "2":
        require(importlib.util.find_spec("tf_keras") is not None, "tf-keras is not installed (extra [keras2])")
    code = ("import json, sys\n"
            "from harness.faults.target import CrashTarget\n"
            "from harness.specs import GraphSpec\n"
            f"t = CrashTarget({api!r}, GraphSpec(n_vars=4, state_bytes=4096), keras={keras!r})\n"
            "a = t.make_adapter()\n"
            "for g in (1, 2, 3):\n"
            "    a.init(g)\n"
            "    a.save(sys.argv[1])\n"
            "b = t.make_adapter()\n"
            "b.poison()\n"
            "b.restore(b.latest(sys.argv[1]))\n"
            "print(json.dumps(dict(b.iter_values())[b.progress].item()))\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop(LEGACY_KERAS_ENV, None)
    if keras == "2":
        env[LEGACY_KERAS_ENV] = "1"
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == resumes_at
