"""Crash states at real sizes: large files as extents on disk, groups judged on a sample,
the stash of the directory before a recorded save. The TF-free parts first, then a trace
and a kill campaign on checkpoints whose files are over content.SMALL_FILE."""

from __future__ import annotations

import csv
import json
import os
import random

import pytest
from conftest import crash_children

from harness.faults.content import SMALL_FILE, Content, make, write_content, zeros
from harness.specs import GraphSpec

MiB = 1 << 20


@pytest.fixture
def source(tmp_path):
    data = random.Random(0).randbytes(3 * MiB + 123)
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    return str(path), data


def test_content_slices_and_joins_read_as_the_bytes_they_stand_for(source):
    path, data = source
    c = Content.of_file(path)
    assert isinstance(c, Content) and len(c) == len(data) and c.read() == data
    rng = random.Random(1)
    for _ in range(50):
        a, b = sorted(rng.randrange(len(data) + 1) for _ in range(2))
        piece = c[a:b]
        assert len(piece) == b - a
        got = piece.read() if isinstance(piece, Content) else piece
        assert got == data[a:b]
        assert isinstance(piece, Content) == (b > a)   # a range of a file stays a reference
    assert isinstance(zeros(4096), bytes) and isinstance(zeros(SMALL_FILE + 1), Content)
    # a write in the middle of a large file: the FsModel's old[:off] + data + old[off+n:]
    patch = b"x" * 5000
    joined = c[:MiB] + patch + c[MiB + len(patch):]
    assert joined.read() == data[:MiB] + patch + data[MiB + len(patch):]
    assert (b"head" + c[:2 * MiB]).read() == b"head" + data[:2 * MiB]
    # the whole file rebuilt from its pieces is the whole file again, with the same identity
    rebuilt = c[:MiB] + c[MiB:]
    assert rebuilt.whole_source() == path and rebuilt == c and rebuilt.identity() == c.identity()
    assert (c[:MiB] + zeros(2 * MiB)).identity() != c[:3 * MiB].identity()


def test_write_content_links_whole_files_copies_pieces_and_leaves_holes(source, tmp_path):
    path, data = source
    c = Content.of_file(path)
    write_content(c, str(tmp_path / "linked"), link=True)
    assert os.stat(tmp_path / "linked").st_ino == os.stat(path).st_ino
    write_content(c, str(tmp_path / "copied"))
    assert os.stat(tmp_path / "copied").st_ino != os.stat(path).st_ino
    assert (tmp_path / "copied").read_bytes() == data
    cut = c[:2 * MiB + 7]
    write_content(cut, str(tmp_path / "cut"), link=True)   # not a whole file: never a link
    assert (tmp_path / "cut").read_bytes() == data[:2 * MiB + 7]
    sparse = make([(None, 0, 64 * MiB), (path, 0, 4096)])
    write_content(sparse, str(tmp_path / "sparse"))
    st = os.stat(tmp_path / "sparse")
    assert st.st_size == 64 * MiB + 4096 and st.st_blocks * 512 < 8 * MiB   # the zeros are a hole
    with open(tmp_path / "sparse", "rb") as f:
        f.seek(64 * MiB - 10)
        assert f.read() == bytes(10) + data[:4096]


def test_a_case_folder_links_the_cut_file_the_checker_was_given(source, tmp_path):
    """A failing state kept as a case right after it was judged shares its cut data file with
    the checker's blob (on disk once, not twice); a cut whose blob is gone is written."""
    from harness.faults.state import BlobStore, DirImage

    path, data = source
    cut = DirImage({"ckpt.data": Content.of_file(path)[:2 * MiB + 7]})
    blobs = BlobStore(str(tmp_path / "blobs"))   # keeps one large blob
    blobs.materialize(cut, str(tmp_path / "check"))
    cut.materialize(str(tmp_path / "case"), link=True, blobs=blobs)
    case, check = tmp_path / "case" / "ckpt.data", tmp_path / "check" / "ckpt.data"
    assert os.stat(case).st_ino == os.stat(check).st_ino
    assert case.read_bytes() == data[:2 * MiB + 7]
    # another cut takes the one blob's place: the first cut, kept now, is a file of its own
    blobs.materialize(DirImage({"ckpt.data": Content.of_file(path)[:MiB]}), str(tmp_path / "check2"))
    cut.materialize(str(tmp_path / "case2"), link=True, blobs=blobs)
    again = tmp_path / "case2" / "ckpt.data"
    assert os.stat(again).st_nlink == 1 and again.read_bytes() == data[:2 * MiB + 7]


def test_files_no_restore_reads_reach_the_checker_as_holes(source, tmp_path):
    """A cut data file in ckpt-3_temp/ (or a data shard whose index is missing) is read by no
    restore: the checker gets a hole of its size, not a copy. Files of a checkpoint a restore may
    try keep their bytes, and a user's own restore (api "user") gets every byte."""
    from harness.faults.apis import unread_files
    from harness.faults.state import BlobStore, DirImage

    path, data = source
    whole = Content.of_file(path)
    temp = "ckpt-3_temp/part-00000-of-00001.data-00000-of-00001.tempstate123"
    image = DirImage({"checkpoint": b'model_checkpoint_path: "ckpt-2"\n', "ckpt-2.index": b"i" * 100,
                      "ckpt-2.data-00000-of-00001": whole, temp: whole[:2 * MiB + 7],
                      "ckpt-4.data-00000-of-00001": whole[:MiB + 5],   # no ckpt-4.index
                      "checkpoint.tmp0123abcd": b"x"})
    assert unread_files("tf2-manager", image) == {temp, "ckpt-4.data-00000-of-00001", "checkpoint.tmp0123abcd"}
    assert unread_files("user", image) == frozenset()
    # a SavedModel export reads its own folder; a temp folder inside it is left as it is
    saved = DirImage({"savedmodel/saved_model.pb": b"pb", "savedmodel/variables/variables.index": b"i",
                      "savedmodel/variables_temp/part.data-00000-of-00001": whole})
    assert unread_files("savedmodel", saved) == frozenset()

    root = tmp_path / "check"
    BlobStore(str(tmp_path / "blobs")).materialize(image, str(root), unread=unread_files("tf2-manager", image))
    for rel in (temp, "ckpt-4.data-00000-of-00001"):   # the size a listing shows, no blocks
        st = os.stat(root / rel)
        assert st.st_size == len(image.files[rel]) and st.st_blocks * 512 < 64 * 1024, rel
        assert (root / rel).read_bytes() == bytes(st.st_size)
    assert (root / "ckpt-2.data-00000-of-00001").read_bytes() == data   # what a restore reads
    assert (root / "checkpoint.tmp0123abcd").read_bytes() == b"x"   # small files as they are
    assert isinstance(image.files[temp], Content) and image.files[temp].read() == data[:2 * MiB + 7]


def test_a_replayed_write_is_a_reference_to_the_saved_file_not_its_bytes(source, tmp_path):
    """The crash model rebuilds a large file written by the save without reading it."""
    from harness.faults.crashstates import Replay
    from harness.faults.state import DirImage
    from harness.faults.strace import Op

    path, data = source
    final = DirImage({"ckpt.data": Content.of_file(path)})
    n = len(data)
    half = n // 2
    ops = [Op(0, 1, "open", "ckpt.tmp", fd=5, flags="O_WRONLY|O_CREAT|O_TRUNC"),
           Op(1, 1, "write", "ckpt.tmp", fd=5, size=half),
           Op(2, 1, "write", "ckpt.tmp", fd=5, size=n - half),
           Op(3, 1, "close", "ckpt.tmp", fd=5),
           Op(4, 1, "rename", "ckpt.tmp", dest="ckpt.data")]
    replay = Replay(DirImage(), ops, final)
    states = list(replay.states("power"))
    assert replay.uncaptured == 0
    last = [s for s in states if s.fault.startswith("after op 4")][0]
    assert last.image.files["ckpt.data"].whole_source() == path
    inside = [s for s in states if s.fault.startswith("inside op 2")]
    assert inside and all(s.group == inside[0].group != "" for s in inside)
    for s in inside:
        got = s.image.files["ckpt.tmp"]
        assert isinstance(got, Content) and got.read() == data[:len(got)]
    zeroed = [s for s in states if "zeroed" in s.fault and "ckpt.data" in s.fault][0]
    assert zeroed.image.files["ckpt.data"].extents == ((None, 0, n),)
    out = tmp_path / "state"
    zeroed.image.materialize(str(out))
    assert os.path.getsize(out / "ckpt.data") == n and os.stat(out / "ckpt.data").st_blocks * 512 < n // 4


class _Scripted:
    """A campaign whose per-state judge answers from a script (the sampling logic alone)."""

    def __init__(self, tmp_path, outcome_of):
        from harness.faults.campaign import ApiResult, Campaign, CrashConfig

        self.camp = Campaign(CrashConfig(mode="trace", out=str(tmp_path), quiet=True))
        self.res = ApiResult("tf2-manager")
        self.judged = []

        def judge_one(target, state, manifests, res):
            self.judged.append(state.state_id)
            res.unique += 1
            res.states += 1
            self.camp.rows.append({"state_id": state.state_id, "outcome": outcome_of(state.state_id),
                                   "detail": "scripted"})
        self.camp._judge_one = judge_one

    def group(self, n):
        from harness.faults.state import CrashState, DirImage

        states = [CrashState(f"write {i}", "prefix", DirImage(), group="writes to f") for i in range(n)]
        for i, s in enumerate(states):
            s.state_id = f"s/{i:04d}"

        class Target:
            api = "tf2-manager"
        self.camp._judge_group(Target(), states, "", self.res)
        return self.camp.rows


def test_a_group_whose_sample_agrees_gives_the_rest_its_verdict(tmp_path):
    s = _Scripted(tmp_path, lambda sid: "rollback")
    rows = s.group(40)
    assert len(rows) == 40 and [r["state_id"] for r in rows] == sorted(r["state_id"] for r in rows)
    assert len(s.judged) == 9 and s.res.by_group == 31
    assert {r["outcome"] for r in rows} == {"rollback"}
    assert all(r["judged_as"] in s.judged for r in rows if r["state_id"] not in s.judged)


def test_a_group_whose_sample_disagrees_is_judged_state_by_state(tmp_path):
    # the last state differs (the file's full length matters): every state must be judged
    s = _Scripted(tmp_path, lambda sid: "lost" if sid == "s/0039" else "rollback")
    rows = s.group(40)
    assert len(s.judged) == 40 and s.res.by_group == 0 and len(rows) == 40


def test_the_stash_refuses_a_save_that_wrote_into_an_earlier_file(source, tmp_path):
    from harness.faults.record import check_stash, stash

    path, data = source
    root = tmp_path / "dir"
    root.mkdir()
    os.link(path, root / "big.h5")
    (root / "small").write_bytes(b"abc")
    image, linked = stash(str(root), str(tmp_path / "before"), copy=False)
    assert isinstance(image.files["big.h5"], Content) and image.files["small"] == b"abc"
    check_stash(linked, 3)   # untouched: fine
    with open(root / "big.h5", "r+b") as f:   # an in-place overwrite through the shared inode
        f.write(b"changed")
    with pytest.raises(RuntimeError, match="in place"):
        check_stash(linked, 3)
    copied, none_linked = stash(str(root), str(tmp_path / "copy"), copy=True)
    assert none_linked == {} and copied.files["big.h5"].read()[:7] == b"changed"


# -- real TensorFlow ---------------------------------------------------------------------------
SPEC = GraphSpec(n_vars=4, state_bytes=24 * MiB)   # files over SMALL_FILE, data written in 3+ writes


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    with crash_children(tmp_path_factory.mktemp("crash-logs"), checker_timeout=60) as kids:
        yield kids


def _run(children, out, mode, api, **kw):
    from harness.faults.campaign import Campaign, CrashConfig

    cfg = CrashConfig(mode=mode, apis=(api,), spec=SPEC, out=str(out), quiet=True, **kw)
    camp = Campaign(cfg, *children).run()
    with open(os.path.join(camp.run_dir, "crash.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(camp.run_dir, "metadata.json")) as f:
        meta = json.load(f)
    assert not [d for d in os.listdir(camp.run_dir) if d.startswith(".work-")]
    return camp, rows, meta


@pytest.mark.strace
def test_trace_of_a_large_checkpoint_groups_its_data_writes_and_replays(children, tmp_path, cli):
    camp, rows, meta = _run(children, tmp_path, "trace", "tf2-manager", model="power")
    by_id = {r["state_id"]: r for r in rows}
    grouped = [r for r in rows if r["judged_as"]]
    assert grouped and meta["states_by_group_sample"] == len(grouped)
    for r in grouped:   # a member takes the verdict of a judged state of its own group
        judged = by_id[r["judged_as"]]
        assert not judged["judged_as"] and judged["outcome"] == r["outcome"]
        assert r["note"].split(":")[0] in judged["fault"] or "writes to" in r["note"]
    # tf2-manager renames complete files: a process crash never loses the model; power loss does
    process = [r for r in rows if not r["fault"].startswith("power loss")]
    assert {r["outcome"] for r in process} <= {"new", "rollback"}
    lost = [r for r in rows if r["outcome"] == "lost" and r["case_dir"]]
    assert lost
    r = cli("replay", os.path.join(camp.run_dir, lost[0]["case_dir"]))
    assert r.returncode == 0 and "same as recorded" in r.stdout, r.stdout + r.stderr


@pytest.mark.strace
def test_kill_of_a_large_keras_overwrite_at_its_first_write_is_lost(children, tmp_path):
    from harness.faults import kill
    from harness.faults.apis import candidate_digests
    from harness.faults.record import record_save
    from harness.faults.target import CrashTarget

    target = CrashTarget("keras-weights", SPEC)
    manifests = str(tmp_path / "manifests")
    rec = record_save(children[0], target, str(tmp_path / "reference"), manifests)
    # Keras writes into save 2's file: the stash holds a copy, which the overwrite did not touch
    before = rec.base.files["model.weights.h5"]
    assert isinstance(before, Content) and "reference/before/" in before.whole_source()
    points, _ = kill.event_points(rec)
    point = [p for p in points if p.sig == "KILL"
             and p.label.startswith("before the first write of the in-place overwrite")][0]
    state = kill.run_trial(children[0], target, point, str(tmp_path / "trial"), manifests, True)
    assert state.image.files["model.weights.h5"] == b""   # truncated at open, nothing new yet
    check = tmp_path / "check"
    state.image.materialize(str(check))
    verdict, _ = children[1].check(target, str(check), manifests, candidate_digests(target.api, state.image))
    assert verdict.outcome.value == "lost", verdict.detail


def test_mutate_of_a_large_checkpoint_judges_its_planted_states(children, tmp_path):
    """mutate keeps its states in memory: its planted copies are deleted before they are judged."""
    camp, rows, meta = _run(children, tmp_path, "mutate", "tf2-manager", trials=1, index_offsets=2)
    planted = {r["fault_kind"]: r for r in rows if r["fault_kind"].startswith("planted")}
    assert planted["planted-change-value"]["outcome"] == "silent", planted["planted-change-value"]["detail"]
    assert planted["planted-drop-variable"]["outcome"] == "silent", planted["planted-drop-variable"]["detail"]
