"""Crash tooling pieces that need no TensorFlow: strace parsing, the crash-state
model, the outcome decision, orphan counting, relocation, bad input, and the
switch (CKPT_REQUIRE_ALL) that makes the strace and tmpfs tests required."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from harness.faults import strace
from harness.faults.classify import Attempt, decide
from harness.faults.crashstates import PAGE, Replay, partial_points
from harness.faults.state import DirImage, is_orphan, orphan_files
from harness.outcomes import Outcome

ROOT = "/scratch/run/state"


def hx(text: str) -> str:
    """A string as strace -xx prints it."""
    return "".join(f"\\x{b:02x}" for b in text.encode())


def fdp(fd, path):
    return f"{fd}<{hx(path)}>"


def test_parse_ops_from_strace_log():
    log = [
        f'100 12:00:00.000001 mkdir("{hx(ROOT + "/ckpt-3_temp")}", 0755) = 0',
        f'100 12:00:00.000002 openat(AT_FDCWD<{hx("/scratch")}>, "{hx(ROOT + "/ckpt-3_temp/d.tempstate1")}", '
        f'O_WRONLY|O_CREAT|O_TRUNC, 0666) = {fdp(3, ROOT + "/ckpt-3_temp/d.tempstate1")}',
        f'100 12:00:00.000003 write({fdp(3, ROOT + "/ckpt-3_temp/d.tempstate1")}, "{hx("hello")}", 5) = 5',
        f'101 12:00:00.000004 write({fdp(3, ROOT + "/ckpt-3_temp/d.tempstate1")}, "{hx("abc")}"..., 10 <unfinished ...>',
        f'100 12:00:00.000005 openat(AT_FDCWD<{hx("/scratch")}>, "{hx("/usr/lib/x.py")}", O_RDONLY) = {fdp(4, "/usr/lib/x.py")}',
        '101 12:00:00.000006 <... write resumed>) = 10',
        f'100 12:00:00.000007 write({fdp(3, ROOT + "/ckpt-3_temp/d.tempstate1")}, "{hx("x")}", 1) = -1 ENOSPC (No space left on device)',
        f'100 12:00:00.000008 pwrite64({fdp(3, ROOT + "/ckpt-3_temp/d.tempstate1")}, "{hx("zz")}", 2, 7) = 2',
        f'100 12:00:00.000009 close({fdp(3, ROOT + "/ckpt-3_temp/d.tempstate1")}) = 0',
        f'100 12:00:00.000010 rename("{hx(ROOT + "/ckpt-3_temp/d.tempstate1")}", "{hx(ROOT + "/ckpt-3.data")}") = 0',
        f'100 12:00:00.000011 renameat2(AT_FDCWD<{hx("/scratch/run")}>, "{hx("state/a")}", '
        f'AT_FDCWD<{hx("/scratch/run")}>, "{hx("state/b")}", RENAME_NOREPLACE) = 0',
        f'100 12:00:00.000012 unlinkat(AT_FDCWD<{hx("/scratch")}>, "{hx(ROOT + "/ckpt-3_temp")}", AT_REMOVEDIR) = 0',
        f'100 12:00:00.000013 unlink("{hx(ROOT + "/ckpt-1.index")}") = 0',
        f'100 12:00:00.000014 fsync({fdp(5, ROOT + "/ckpt-3.index")}) = 0',
        f'100 12:00:00.000015 rename("{hx(ROOT + "/c")}", "{hx(ROOT + "/d")}") = ?',
        "100 12:00:00.000016 +++ killed by SIGKILL +++",
    ]
    ops = strace.parse_ops(log, ROOT)
    got = [(o.call, o.path, o.dest) for o in ops]
    assert got == [
        ("mkdir", "ckpt-3_temp", ""),
        ("open", "ckpt-3_temp/d.tempstate1", ""),
        ("write", "ckpt-3_temp/d.tempstate1", ""),
        ("write", "ckpt-3_temp/d.tempstate1", ""),   # the resumed one; the failed write is gone
        ("write", "ckpt-3_temp/d.tempstate1", ""),   # pwrite64
        ("close", "ckpt-3_temp/d.tempstate1", ""),
        ("rename", "ckpt-3_temp/d.tempstate1", "ckpt-3.data"),
        ("rename", "a", "b"),                          # relative to the dirfd
        ("rmdir", "ckpt-3_temp", ""),
        ("unlink", "ckpt-1.index", ""),
        ("fsync", "ckpt-3.index", ""),
    ]
    assert ops[1].flags.startswith("O_WRONLY|O_CREAT") and ops[1].fd == 3
    assert ops[2].data == b"hello" and ops[2].size == 5
    assert ops[3].data is None and ops[3].size == 10    # strace kept only 3 of 10 bytes
    assert ops[4].offset == 7 and ops[4].data == b"zz"


def test_kernel_copies_are_writes_of_their_output_file():
    """shutil.copy's sendfile and copy_file_range write the output file without a buffer in
    the trace: each is a write of its returned size (at the output offset, if one is given),
    and strace's "[in] => [out]" pointer argument does not swallow the arguments after it."""
    src, bkp = ROOT + "/w.h5", ROOT + "/w.h5.bkp"
    log = [
        f'100 12:00:00.1 sendfile({fdp(4, bkp)}, {fdp(3, src)}, [0] => [300000], 8388608) = 300000',
        f'100 12:00:00.2 sendfile({fdp(4, bkp)}, {fdp(3, src)}, [300000], 8388608) = 0',
        f'100 12:00:00.3 copy_file_range({fdp(3, src)}, NULL, {fdp(5, bkp)}, [4096] => [8192], 4096, 0) = 4096',
        f'100 12:00:00.4 copy_file_range({fdp(3, src)}, NULL, {fdp(6, ROOT + "/x")}, NULL, 100, 0) = 100',
    ]
    ops = strace.parse_ops(log, ROOT)
    assert [(o.call, o.path, o.fd, o.size, o.offset, o.syscall) for o in ops] == [
        ("write", "w.h5.bkp", 4, 300000, None, "sendfile"),    # at the file position; the EOF call is no write
        ("write", "w.h5.bkp", 5, 4096, 4096, "copy_file_range"),
        ("write", "x", 6, 100, None, "copy_file_range"),
    ]
    assert all(o.data is None for o in ops)


def test_inject_counts_per_thread_and_syscall():
    log = [
        f'7 12:00:00.1 rename("{hx(ROOT + "/x")}", "{hx(ROOT + "/y")}") = 0',
        f'8 12:00:00.2 rename("{hx(ROOT + "/p")}", "{hx(ROOT + "/q")}") = 0',
        f'7 12:00:00.3 write({fdp(3, ROOT + "/y")}, "{hx("a")}", 1) = 1',
        f'7 12:00:00.4 rename("{hx(ROOT + "/y")}", "{hx(ROOT + "/z")}") = 0',
    ]
    calls = strace.raw_calls(log)
    ops = strace.parse_ops((), ROOT, calls)
    assert strace.inject_at(calls, ops[3], "SIGKILL") == "rename:signal=SIGKILL:when=2"
    assert strace.inject_at(calls, ops[1], "SIGTERM") == "rename:signal=SIGTERM:when=1"


def _op(i, call, path, **kw):
    return strace.Op(i, 1, call, path, **kw)


BASE = DirImage({"ckpt-2.index": b"I2", "ckpt-2.data": b"D2" * 10, "checkpoint": b'model_checkpoint_path: "ckpt-2"'})
DATA = bytes(range(256)) * 20   # 5120 bytes: more than a page, so partial points exist


def _save_ops(fsync_data: bool = False):
    ops = [
        _op(0, "open", "d.tempstate9", fd=3, flags="O_WRONLY|O_CREAT|O_TRUNC"),
        _op(1, "write", "d.tempstate9", fd=3, size=len(DATA), data=DATA),
        _op(2, "close", "d.tempstate9", fd=3),
        _op(3, "rename", "d.tempstate9", dest="ckpt-3.data"),
        _op(4, "open", "checkpoint.tmpab", fd=3, flags="O_WRONLY|O_CREAT|O_TRUNC"),
        _op(5, "write", "checkpoint.tmpab", fd=3, size=31, data=b'model_checkpoint_path: "ckpt-3"'),
        _op(6, "close", "checkpoint.tmpab", fd=3),
        _op(7, "rename", "checkpoint.tmpab", dest="checkpoint"),
    ]
    if fsync_data:
        ops.insert(2, _op(2, "fsync", "d.tempstate9", fd=3))
    return ops


def test_process_model_prefixes_and_partial_writes():
    states = list(Replay(BASE, _save_ops()).states("process"))
    assert states[0].image.files == BASE.files                      # before the save
    last = states[-1].image.files
    assert last["ckpt-3.data"] == DATA and last["checkpoint"].endswith(b'"ckpt-3"')
    assert "d.tempstate9" not in last and "ckpt-2.data" in last
    partial = [s for s in states if s.fault_kind == "partial-write"]
    # 5120 bytes: cut one page short of the end and after one page (half a write rounds down to 0)
    assert sorted(len(s.image.files["d.tempstate9"]) for s in partial) == [1024, 4096]
    for s in partial:
        n = len(s.image.files["d.tempstate9"])
        assert s.image.files["d.tempstate9"] == DATA[:n]              # a prefix, never invented bytes
    # no close/fsync states: they leave the directory as it was
    assert not any("close" in s.fault for s in states)


def test_power_model_loses_unsynced_data_only():
    states = list(Replay(BASE, _save_ops()).states("power"))
    process = list(Replay(BASE, _save_ops()).states("process"))
    assert {s.image.digest() for s in process} <= {s.image.digest() for s in states}
    lost = [s for s in states if s.fault_kind == "lost-data" and "ckpt-3.data lost" in s.fault]
    assert lost, "the final rename with the data file empty must be a state"
    for s in states:  # files of saves 1..k-1 are durable in this model
        assert s.image.files.get("ckpt-2.data") == BASE.files["ckpt-2.data"]
    zeroed = [s for s in states if "ckpt-3.data zeroed" in s.fault]
    assert zeroed and all(s.image.files["ckpt-3.data"] == bytes(len(DATA)) for s in zeroed)
    synced = list(Replay(BASE, _save_ops(fsync_data=True)).states("power"))
    assert not any("ckpt-3.data" in s.fault and "never fsynced" in s.fault for s in synced)
    assert any("checkpoint lost" in s.fault for s in synced)   # the state file still is not synced


def test_write_data_taken_from_final_file_when_strace_cut_it():
    ops = _save_ops()
    ops[1].data = None
    final = DirImage({**BASE.files, "ckpt-3.data": DATA, "checkpoint": b'model_checkpoint_path: "ckpt-3"'})
    rep = Replay(BASE, ops, final)
    states = list(rep.states("process"))
    assert states[-1].image.files["ckpt-3.data"] == DATA and rep.uncaptured == 0
    rep = Replay(BASE, ops)  # nothing to take it from: zeros, and counted
    list(rep.states("process"))
    assert rep.uncaptured > 0


def test_partial_points_inside_the_write():
    assert partial_points(PAGE) == []                          # one page: no point strictly inside
    assert partial_points(3 * PAGE) == [PAGE, 2 * PAGE]        # half rounds down onto the first page
    assert partial_points(10 * PAGE) == [PAGE, 5 * PAGE, 9 * PAGE]
    assert partial_points(10 * PAGE + 100) == [PAGE, 5 * PAGE, 9 * PAGE + 100]


def _att(path, restored=True, gen=None, error="", mismatch=""):
    return Attempt(path, restored, error, gen, mismatch)


@pytest.mark.parametrize("latest,latest_error,older,expected", [
    (_att("ckpt-3", gen=3), "", [], Outcome.NEW),
    (_att("ckpt-2", gen=2), "", [], Outcome.ROLLBACK),
    (_att("ckpt-3", mismatch="1 of 16 differ"), "", [_att("ckpt-2", gen=2)], Outcome.SILENT),
    (_att("ckpt-3", False, error="DataLossError: x"), "", [_att("ckpt-2", gen=2)], Outcome.DETECTED),
    (_att("ckpt-3", False, error="DataLossError: x"), "", [_att("ckpt-2", False, error="y")], Outcome.LOST),
    (_att("ckpt-3", False, error="x"), "", [_att("ckpt-2", mismatch="z")], Outcome.LOST),
    (None, "ValueError: Invalid checkpoint state", [_att("ckpt-2", gen=2)], Outcome.DETECTED),
    (None, "", [_att("ckpt-2", gen=2)], Outcome.LOST),
    (None, "", [], Outcome.LOST),
])
def test_decide(latest, latest_error, older, expected):
    v = decide(3, latest, latest_error, older)
    assert v.outcome is expected and v.detail


def test_orphans_relocation_and_error_cleaning():
    assert is_orphan("ckpt-3_temp/part-00000-of-00001.index")
    assert is_orphan("ckpt-3.data-00000-of-00001.tempstate123")
    assert is_orphan("checkpoint.tmp0123abcd")
    assert not is_orphan("ckpt-3.index") and not is_orphan("checkpoint")
    img = DirImage({"checkpoint": b'model_checkpoint_path: "/w/x/state/model.ckpt-3"\n'
                                  b'all_model_checkpoint_paths: "/w/x/state/model.ckpt-2"\n',
                    "model.ckpt-3_temp/a": b"12345"})
    rel = img.relocated("/w")
    assert rel.files["checkpoint"] == (b'model_checkpoint_path: "model.ckpt-3"\n'
                                       b'all_model_checkpoint_paths: "model.ckpt-2"\n')
    assert rel.orphan_bytes() == 5 and img.relocated("/elsewhere") is img


def test_data_shards_without_their_index_are_orphans():
    # a merge cut short: ckpt-2's data renamed into place, its index never written
    img = DirImage({"checkpoint": b'model_checkpoint_path: "ckpt-1"\n',
                    "ckpt-1.index": b"i" * 3, "ckpt-1.data-00000-of-00001": b"d" * 7,
                    "ckpt-2.data-00000-of-00002": b"x" * 11, "ckpt-2.data-00001-of-00002": b"y" * 13,
                    "ckpt-2_temp/part-00000-of-00001.index": b"t" * 2})
    assert orphan_files(img.files) == {"ckpt-2.data-00000-of-00002", "ckpt-2.data-00001-of-00002",
                                       "ckpt-2_temp/part-00000-of-00001.index"}
    assert img.orphan_bytes() == 11 + 13 + 2
    img.files["ckpt-2.index"] = b"i"   # once the index is there, ckpt-2 is a checkpoint
    assert img.orphan_bytes() == 2


@pytest.mark.parametrize("args,needle", [
    (["crash", "--mode", "kill", "--api", "tf2-restore-on-create"], "does not support api"),
    (["crash", "--mode", "kill", "--api", "keras-backup-double", "--keras", "2"], "Keras 3 target"),
    (["crash", "--mode", "kill", "--size", "0"], "size"),
    (["crash", "--mode", "kill", "--trials", "0"], "--trials"),
    (["crash", "--mode", "kill", "--model", "power"], "--model"),
    (["crash", "--mode", "mutate", "--size", "512MiB"], "too large"),
    (["crash", "--mode", "diskfull", "--size", "512MiB"], "too large"),
    (["crash", "--mode", "kill", "--size", "64TiB"], "free under"),
    (["crash", "--mode", "bogus"], "invalid choice"),
    (["replay", "/nonexistent/case"], "not a directory"),
])
def test_bad_input_is_one_line(cli, tmp_path, args, needle):
    r = cli(*args, "--out", str(tmp_path)) if args[0] == "crash" and "bogus" not in args else cli(*args)
    assert r.returncode == 2
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_replay_rejects_a_folder_that_is_not_a_case(cli, tmp_path):
    (tmp_path / "case.json").write_text("{not json")
    r = cli("replay", str(tmp_path))
    assert r.returncode == 2 and "not a valid case file" in r.stderr


def test_require_all_turns_a_missing_strace_from_a_skip_into_a_failure(tmp_path):
    # the suite's own conftest, on a test that needs strace, where no strace can be found
    shutil.copy(os.path.join(os.path.dirname(__file__), "conftest.py"), tmp_path)
    (tmp_path / "test_needs.py").write_text("import pytest\n\n\n@pytest.mark.strace\ndef test_traced():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "CKPT_REQUIRE_ALL"}
    env["PATH"] = str(tmp_path / "no-tools-here")
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)]
    lax = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert lax.returncode == 0 and "1 skipped" in lax.stdout and "strace is not installed" in lax.stdout, lax.stdout
    strict = subprocess.run(cmd, cwd=tmp_path, env={**env, "CKPT_REQUIRE_ALL": "1"}, capture_output=True,
                            text=True, timeout=300)
    assert strict.returncode == 1 and "CKPT_REQUIRE_ALL=1 but strace is not installed" in strict.stdout, strict.stdout


def test_a_case_folder_belongs_to_one_target_even_for_the_same_bytes(tmp_path):
    """A ModelCheckpoint weights file is byte for byte a save_weights file: two targets' states
    can have one digest. Each target gets its own case folder, named for it, so a replay judges
    that target's save (a folder shared by digest alone gave keras-modelcheckpoint rows
    keras-weights cases)."""
    import json

    from harness.faults.cases import CaseKeeper
    from harness.faults.state import CrashState
    from harness.faults.target import CrashTarget, manifest_name
    from harness.outcomes import Verdict
    from harness.specs import GraphSpec

    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for g in (1, 2, 3):
        (manifests / manifest_name(g)).write_text("{}")
    image = DirImage({"model.weights.h5": b"\x89HDF half written"})
    keeper = CaseKeeper(str(tmp_path / "run"))
    verdict = Verdict(Outcome.LOST, "OSError: truncated file")
    folders = {}
    for api in ("keras-weights", "keras-modelcheckpoint", "keras-weights"):
        state = CrashState(fault="SIGKILL before the write that passes 9 bytes", fault_kind="kill", image=image)
        rel, similar = keeper.keep(state, verdict, CrashTarget(api, GraphSpec(n_vars=2, state_bytes=64)),
                                   image.digest(), mode="kill", model="process", manifest_dir=str(manifests),
                                   run_id="r", tf_version="x")
        assert rel and not similar, (api, rel, similar)
        folders.setdefault(api, set()).add(rel)
    assert all(len(v) == 1 for v in folders.values()), folders   # the same state again: its folder
    assert folders["keras-weights"] != folders["keras-modelcheckpoint"]
    for api, (rel,) in folders.items():
        with open(tmp_path / "run" / rel / "case.json") as f:
            assert json.load(f)["api"] == api
