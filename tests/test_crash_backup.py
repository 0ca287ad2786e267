"""Crash targets keras-backup and keras-backup-double: a Keras 3 `BackupAndRestore` callback's
epoch-end backup (latest.weights.h5, then training_metadata.json; with double_checkpoint, .bkp
copies of both first), killed during save 3 at precise system calls, and judged by what a
restarted `fit` does: a fresh callback's `on_train_begin`, and the epoch fit would resume at.

The resumed epoch is judged with the weights (the value `backup/epoch`): weights of save 3 with
the epoch of save 2 equal no completed save, which is `silent` (fit repeats an epoch, no error).
"""

from __future__ import annotations

import pytest
from conftest import crash_children
from test_crash_targets import Reference

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

    # the weights truncated: OSError, Keras copies the .bkp files back and resumes save 2 exactly
    verdict, state = ref.kill_at(ref.point("KILL", f"before the first write of the in-place overwrite of {WEIGHTS}"))
    assert state.image.files[WEIGHTS] == b""
    assert verdict.outcome.value == "rollback", verdict.detail

    # the metadata truncated, its good .bkp beside it: json's ValueError is no OSError, so the
    # fallback never runs and the restart fails
    verdict, state = ref.kill_at(ref.point("KILL", f"before the first write of the in-place overwrite of {METADATA}"))
    assert state.image.files[METADATA] == b""
    assert state.image.files[METADATA + ".bkp"] == ref.rec.base.files[METADATA]
    assert verdict.outcome.value == "lost" and "JSONDecodeError" in verdict.detail, verdict.detail

    # weights of save 3 with save 2's metadata: nothing fails, so the .bkp is not looked at
    verdict, _ = _kill_at_open(ref, METADATA)
    assert verdict.outcome.value == "silent" and "backup/epoch" in verdict.detail, verdict.detail
