"""`ckpt-harness diagnose`: each planted problem is named, the printed restore
code really restores, bad input exits 2, and mutated files never crash it.

Checkpoints are built once per module (tiny variables); each test works on its
own copy. Everything runs in-process through harness.cli.main.
"""

from __future__ import annotations

import os
import random
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

tf = pytest.importorskip("tensorflow")
v1 = tf.compat.v1

KERNEL = np.arange(6, dtype=np.float32).reshape(3, 2)
BIAS = np.array([0.5, -0.5], np.float32)


def _tf1_graph(scope: str, *, optimizer: str | None = None, kernel_shape=(3, 2), bias_name="bias",
               bias_dtype=tf.float32):
    with v1.variable_scope(scope):
        kernel = v1.get_variable("dense/kernel", shape=kernel_shape)
        bias = v1.get_variable(f"dense/{bias_name}", shape=(2,), dtype=bias_dtype)
    if optimizer:
        opt = {"adam": v1.train.AdamOptimizer, "sgd": v1.train.GradientDescentOptimizer}[optimizer](0.1)
        opt.minimize(tf.reduce_sum(kernel) + tf.reduce_sum(tf.cast(bias, tf.float32)))
    return kernel, bias


def _save_tf1(directory: Path, *, optimizer: str | None) -> None:
    graph = tf.Graph()
    with graph.as_default():
        kernel, bias = _tf1_graph("model", optimizer=optimizer)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            kernel.load(KERNEL, sess)
            bias.load(BIAS, sess)
            v1.train.Saver().save(sess, str(directory / "model.ckpt"), global_step=1, write_meta_graph=False)
    # TF1 writes absolute paths into the state file; relative ones let the directory be copied
    (directory / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-1"\n'
                                          'all_model_checkpoint_paths: "model.ckpt-1"\n')


def _meta(path: Path, **kwargs) -> str:
    graph = tf.Graph()
    with graph.as_default():
        _tf1_graph(kwargs.pop("scope", "model"), **kwargs)
        v1.train.export_meta_graph(str(path))
    return str(path)


MODELS_PY = '''
import tensorflow as tf
import keras

def net():
    m = tf.Module()
    m.kernel = tf.Variable(tf.zeros([3, 2]))
    m.bias = tf.Variable(tf.zeros([2]))
    return m

def net_checkpoint():
    return tf.train.Checkpoint(model=net())

def net_with_adam():
    m = net()
    opt = keras.optimizers.Adam()
    opt.build([m.kernel, m.bias])
    return tf.train.Checkpoint(model=m, optimizer=opt)

def fails():
    raise RuntimeError("cannot build")

def returns_number():
    return 42
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("diagnose")
    w = {"root": root}
    for name, optimizer in [("tf1_adam", "adam"), ("tf1_plain", None)]:
        d = root / name
        d.mkdir()
        _save_tf1(d, optimizer=optimizer)
        w[name] = d
    w["meta_tower"] = _meta(root / "tower.meta", scope="tower/model", optimizer="adam")
    w["meta_adam"] = _meta(root / "adam.meta", optimizer="adam")
    w["meta_plain"] = _meta(root / "plain.meta")
    w["meta_renamed"] = _meta(root / "renamed.meta", bias_name="offset")
    w["meta_shape"] = _meta(root / "shape.meta", kernel_shape=(3, 4))
    w["meta_dtype"] = _meta(root / "dtype.meta", bias_dtype=tf.float64)
    (root / "models.py").write_text(MODELS_PY)
    w["models"] = str(root / "models.py")
    tf2 = root / "tf2"
    m = tf.Module()
    m.kernel = tf.Variable(KERNEL)
    m.bias = tf.Variable(BIAS)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=m), str(tf2), max_to_keep=2)
    manager.save()
    w["tf2"] = tf2
    return w


def diagnose(capsys, *args):
    rc = main(["diagnose", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def tf1_copy(world, tmp_path):
    d = tmp_path / "ckpt"
    shutil.copytree(world["tf1_adam"], d)
    return d


# --- integrity -------------------------------------------------------------------------

def test_intact_checkpoint_exits_zero(capsys, tf1_copy):
    rc, out, _ = diagnose(capsys, tf1_copy)
    assert rc == 0, out
    assert "all 8 tensors read back" in out and "the checkpoint is intact" in out


def _state_names_missing(d):
    (d / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-9"\n')


def _orphan_temp_folder(d):
    (d / "model.ckpt-2_temp").mkdir()
    (d / "model.ckpt-2_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x" * 10)


def _orphan_tempstate(d):
    (d / "model.ckpt-2.index.tempstate1234567890").write_bytes(b"")


def _orphan_state_tmp(d):
    (d / ("checkpoint.tmp" + "ab" * 16)).write_text("")


def _missing_shard(d):
    (d / "model.ckpt-1.data-00000-of-00001").unlink()


def _short_shard(d):
    os.truncate(d / "model.ckpt-1.data-00000-of-00001", 50)


def _flipped_data(d):
    path = d / "model.ckpt-1.data-00000-of-00001"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _flipped_index(d):
    path = d / "model.ckpt-1.index"
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01
    path.write_bytes(bytes(data))


PLANTED = [
    (_state_names_missing, ["names 'model.ckpt-9'", "does not exist", "newest complete checkpoint"]),
    (_orphan_temp_folder, ["orphaned temp folder model.ckpt-2_temp/", "the checkpoint restores, but"]),
    (_orphan_tempstate, ["orphaned temp file model.ckpt-2.index.tempstate"]),
    (_orphan_state_tmp, ["orphaned state temp file checkpoint.tmp"]),
    (_missing_shard, ["data shard model.ckpt-1.data-00000-of-00001 is missing"]),
    (_short_shard, ["is 50 bytes, the index needs at least", "truncated"]),
    (_flipped_data, ["does not read back", "Checksum does not match"]),
    (_flipped_index, ["model.ckpt-1.index", "is damaged", "checksum"]),
]


@pytest.mark.parametrize("plant,phrases", PLANTED, ids=[p.__name__.strip("_") for p, _ in PLANTED])
def test_each_planted_problem_is_named(capsys, tf1_copy, plant, phrases):
    plant(tf1_copy)
    rc, out, err = diagnose(capsys, tf1_copy)
    assert rc == 1, out + err
    for phrase in phrases:
        assert phrase in out, (phrase, out)


def test_data_without_index_is_a_save_that_never_finished(capsys, tf1_copy):
    (tf1_copy / "model.ckpt-1.index").unlink()
    rc, out, _ = diagnose(capsys, tf1_copy / "model.ckpt-1")
    assert rc == 1
    assert "index is missing although 1 data file(s) exist" in out


def test_absolute_state_file_into_another_directory_is_noted(capsys, world, tmp_path):
    d = tmp_path / "moved"
    shutil.copytree(world["tf1_plain"], d)
    (d / "checkpoint").write_text(f'model_checkpoint_path: "{world["tf1_plain"]}/model.ckpt-1"\n')
    rc, out, _ = diagnose(capsys, d)
    assert rc == 0
    assert "points outside" in out


def test_tf2_object_based_checkpoint_reads(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf2"])
    assert rc == 0, out
    assert "object-based" in out


# --- bad input: exit 2, one line, no traceback ------------------------------------------------

def test_bad_input_exits_two_with_one_line(capsys, world, tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(300))
    garbage_meta = tmp_path / "garbage.meta"
    garbage_meta.write_bytes(os.urandom(300))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        [tmp_path / "no-such-thing"],
        [garbage],
        [empty],
        [world["tf1_plain"], "--against", garbage_meta],
        [world["tf1_plain"], "--against", tmp_path / "missing.meta"],
        [world["tf1_plain"], "--against", f"{world['models']}:fails"],
        [world["tf1_plain"], "--against", f"{world['models']}:returns_number"],
        [world["tf1_plain"], "--against", f"{world['models']}:no_such_function"],
        [world["tf1_plain"], "--against", "no_such_module_xyz:build"],
        [world["tf1_plain"], "--against", garbage],
    ]
    for args in cases:
        rc, out, err = diagnose(capsys, *args)
        assert rc == 2, (args, out, err)
        lines = [ln for ln in err.splitlines() if ln.startswith("ckpt-harness: error:")]
        assert len(lines) == 1 and "Traceback" not in err, (args, err)


def test_a_target_that_raises_is_quoted_once(capsys, world):
    rc, _out, err = diagnose(capsys, world["tf1_plain"], "--against", f"{world['models']}:fails")
    assert rc == 2
    assert "the function raised RuntimeError: cannot build" in err
    assert "RuntimeError: RuntimeError" not in err


# --- comparison with a target ---------------------------------------------------------------

def test_against_the_matching_graph_is_restorable(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf1_adam"], "--against", world["meta_adam"])
    assert rc == 0, out
    assert "8 of 8 target variables found" in out and "restorable as is" in out


def test_extra_checkpoint_entries_alone_still_restore(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf1_adam"], "--against", world["meta_plain"])
    assert rc == 0, out
    assert "unexpected" in out and "model/dense/kernel/Adam" in out


def test_renamed_variable_is_missing_with_a_rename_hint(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf1_plain"], "--against", world["meta_renamed"])
    assert rc == 1
    assert "missing (the target expects them, the checkpoint lacks them): model/dense/offset" in out
    assert "model/dense/offset may be the renamed model/dense/bias" in out


def test_shape_and_dtype_mismatches_are_named(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf1_plain"], "--against", world["meta_shape"])
    assert rc == 1
    assert "shape mismatch: model/dense/kernel: checkpoint [3, 2], target [3, 4]" in out
    rc, out, _ = diagnose(capsys, world["tf1_plain"], "--against", world["meta_dtype"])
    assert rc == 1
    assert "dtype mismatch: model/dense/bias: checkpoint float32, target float64" in out


def test_missing_optimizer_slots_are_named(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf1_plain"], "--against", world["meta_adam"])
    assert rc == 1
    assert "missing optimizer slots/state:" in out and "model/dense/kernel/Adam" in out and "beta1_power" in out


def test_against_another_checkpoint(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf1_plain"], "--against", world["tf1_adam"])
    assert rc == 1
    assert "missing optimizer slots/state" in out


def _restore_code(out: str) -> str:
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "restore with:") + 1
    code = []
    for ln in lines[start:]:
        if not ln.startswith(" " * 13) or ln.strip().startswith("# or"):
            break
        code.append(ln)
    return textwrap.dedent("\n".join(code))


def test_tf1_scope_prefix_mapping_and_its_code_restores(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf1_adam"], "--against", world["meta_tower"])
    assert rc == 1
    assert "consistent prefix: checkpoint (no prefix) = target tower/" in out
    assert "model/dense/kernel  ->  tower/model/dense/kernel" in out
    assert "init_from_checkpoint" in out
    code = _restore_code(out)
    graph = tf.Graph()
    with graph.as_default():
        kernel, bias = _tf1_graph("tower/model", optimizer="adam")
        with v1.Session(graph=graph) as sess:
            exec(code, {"tf": tf, "sess": sess})  # the printed code, as a user would paste it
            np.testing.assert_array_equal(sess.run(kernel), KERNEL)
            np.testing.assert_array_equal(sess.run(bias), BIAS)


def test_tf1_init_from_checkpoint_line_restores(capsys, world):
    _rc, out, _ = diagnose(capsys, world["tf1_adam"], "--against", world["meta_tower"])
    line = next(ln.strip() for ln in out.splitlines() if "init_from_checkpoint(" in ln)
    graph = tf.Graph()
    with graph.as_default():
        kernel, bias = _tf1_graph("tower/model")
        exec(line, {"tf": tf})
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            np.testing.assert_array_equal(sess.run(kernel), KERNEL)


def test_tf2_prefix_mapping_and_its_code_restores(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf2"], "--against", f"{world['models']}:net")
    assert rc == 1
    assert "checkpoint model/ = target (no prefix)" in out
    code = _restore_code(out)
    assert "tf.train.Checkpoint(model=model)" in code
    model = tf.Module()
    model.kernel = tf.Variable(tf.zeros([3, 2]))
    model.bias = tf.Variable(tf.zeros([2]))
    exec(code, {"tf": tf, "model": model})
    np.testing.assert_array_equal(model.kernel.numpy(), KERNEL)
    np.testing.assert_array_equal(model.bias.numpy(), BIAS)


def test_tf2_targets_checkpoint_and_optimizer(capsys, world):
    rc, out, _ = diagnose(capsys, world["tf2"], "--against", f"{world['models']}:net_checkpoint")
    assert rc == 0, out
    rc, out, _ = diagnose(capsys, world["tf2"], "--against", f"{world['models']}:net_with_adam")
    assert rc == 1
    assert "missing optimizer slots/state" in out and "optimizer/_iterations" in out


# --- fuzz: damaged files never crash it --------------------------------------------------------

def _mutations(world, count: int, seed: int = 1234):
    rng = random.Random(seed)
    sources = [(world["tf1_adam"], "model.ckpt-1"), (world["tf2"], "ckpt-1")]
    for i in range(count):
        directory, prefix = sources[i % len(sources)]
        files = sorted(p.name for p in directory.iterdir() if p.name.startswith(prefix + "."))
        yield i, directory, prefix, rng.choice(files), rng.random() < 0.4, rng


def test_fuzzed_checkpoints_never_crash_diagnose(capsys, world, tmp_path):
    seen = {}
    for i, directory, prefix, name, truncate, rng in _mutations(world, 30):
        d = tmp_path / f"m{i}"
        shutil.copytree(directory, d)
        path = d / name
        data = bytearray(path.read_bytes())
        if truncate:
            del data[rng.randrange(len(data)):]
        else:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        rc, out, err = diagnose(capsys, d / prefix)   # an uncaught exception fails the test here
        assert rc in (1, 2), (name, truncate, out, err)
        assert "Traceback" not in out + err
        seen[rc] = seen.get(rc, 0) + 1
    assert seen.get(1, 0) > 0


# --- the index reader's building blocks (no TF) ------------------------------------------------

def test_crc32c_and_snappy_known_values():
    from harness.catalog import sstable
    assert sstable.crc32c(b"123456789") == 0xE3069283
    assert sstable.unmask_crc((((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8) & 0xFFFFFFFF) == 0xE3069283
    # literal "abc", then a 6-byte copy from 3 back (overlapping)
    assert sstable.snappy_decompress(b"\x09\x08abc\x09\x03") == b"abcabcabc"
    with pytest.raises(sstable.IndexError_):
        sstable.snappy_decompress(b"\x09\x08abc\x09\x09")  # copy reaches before the start
    with pytest.raises(sstable.NotAnIndex):
        sstable.read_table(b"\x00" * 100)
