"""Real model layouts (--model): the committed layouts file, the name mapping that makes
real variable paths valid for every API, the CLI end to end, bad input, and the default
run's sizes."""

import csv
import json
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import run_cli
from harness import models
from harness.errors import HarnessError, UsageError
from harness.specs import GraphSpec, layout, total_bytes, values

SMALLEST = "mobilenetv3small"


def _run_dir(out):
    dirs = [d for d in os.listdir(out) if not d.startswith(".")]
    assert len(dirs) == 1, dirs
    return os.path.join(out, dirs[0])


# -- the layouts file ---------------------------------------------------------------------------
def test_layouts_file_holds_the_architectures_with_their_published_sizes():
    by_name = {m["name"]: m for m in models.summary()}
    # parameter counts published with the architectures (Keras applications docs, BERT, GPT-2)
    assert by_name["resnet50"]["params"] == 25_636_712
    assert by_name["vgg16"]["params"] == 138_357_544
    assert by_name["bert-base"]["params"] == 109_482_240
    assert by_name["gpt2-base"]["params"] == 124_439_808
    assert max(m["bytes"] for m in by_name.values()) > 1 << 30   # at least one model above 1 GiB
    assert SMALLEST == min(by_name, key=lambda n: by_name[n]["bytes"])
    prov = models.provenance()
    assert prov["generated_by"] == "scripts/model_layouts.py"
    assert {"keras", "keras_hub", "tensorflow"} <= set(prov["versions"])


def test_layout_of_a_model_spec_is_the_models():
    m = models.get("resnet50")
    spec = GraphSpec(model="resnet50")
    vs = layout(spec)
    assert [v.name for v in vs] == [v.name for v in m.variables]
    assert [v.shape for v in vs] == [v.shape for v in m.variables]
    assert spec.n_vars == len(vs) == 320 and spec.state_bytes == total_bytes(vs) == m.bytes
    assert vs[0].name == "conv1_conv/kernel" and vs[0].shape == (7, 7, 3, 64)
    frozen = [v.name for v in vs if not v.trainable]   # batch-norm moving statistics
    assert frozen and all(n.endswith(("moving_mean", "moving_variance")) for n in frozen)
    assert spec.label == "resnet50-97.8MiB" and spec.shape_mix == "model"
    again = GraphSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.to_dict()["model"] == "resnet50"
    # values are the harness's: a pure function of (seed, generation, name)
    a, b = values(vs[1], seed=3), values(vs[1], seed=3)
    assert a.shape == vs[1].shape and (a == b).all() and not (a == values(vs[1], seed=4)).all()


def test_a_layouts_file_of_another_format_version_is_refused(tmp_path):
    doc = json.load(open(models.LAYOUTS_FILE))
    doc["format_version"] = models.FORMAT_VERSION + 1
    (tmp_path / "newer.json").write_text(json.dumps(doc))
    with pytest.raises(HarnessError, match="format version"):
        models.names(str(tmp_path / "newer.json"))
    doc["format_version"] = models.FORMAT_VERSION
    doc["models"][SMALLEST]["bytes"] += 4   # the variables no longer add up to the stated size
    (tmp_path / "edited.json").write_text(json.dumps(doc))
    with pytest.raises(HarnessError, match="hold"):
        models.get(SMALLEST, str(tmp_path / "edited.json"))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(HarnessError, match="cannot read"):
        models.names(str(tmp_path / "broken.json"))


# -- name mapping ----------------------------------------------------------------------------------
def test_safe_names_are_identifiers_unique_and_recognisable():
    real = ["block.1/conv-2/kernel:0", "2nd/kernel", "_private/bias", "dense/variables", "dense/class",
            "a.b/k", "a_b/k", "conv/kernel", "conv/kernel/quant", "layers/vars/w"]
    got = models.safe_names(real, reserved={"variables", "layers"})
    assert got == ["block_1/conv_2/kernel", "x2nd/kernel", "x_private/bias", "dense/variables_", "dense/class_",
                   "a_b/k", "a_b/k_2", "conv/kernel_var", "conv/kernel/quant", "layers_/vars_/w"]
    assert got == models.safe_names(real, reserved={"variables", "layers"})   # deterministic
    assert len(set(got)) == len(got)
    for name in got:
        assert all(p.isidentifier() and not p.startswith("_") for p in name.split("/"))
    # names that are already valid are kept as they are
    assert models.safe_names(["conv1_conv/kernel", "predictions/bias"]) == ["conv1_conv/kernel", "predictions/bias"]


# Each case breaks at least one adapter with the real names (a raise, or a restore that is not
# complete), and none once mapped: what the mapping guards against.
_AWKWARD = {
    "attribute of tf.Module": ["dense/variables", "dense/kernel"],
    "punctuation and :0": ["block.1/conv-2/kernel:0"],
    "leading digit": ["2nd/kernel"],
    "leading underscore": ["_private/kernel"],
    "variable that is also a scope": ["conv/kernel", "conv/kernel/quant"],
    "Keras h5 group name": ["layers/vars/kernel"],
}


def _roundtrip(api, names):
    from harness.judge.manifest import Manifest
    from harness.judge.restore import restore_and_verify
    from harness.savers import get_adapter
    from harness.specs import VarSpec

    vs = [VarSpec(n, (4,), "float32") for n in names]
    adapter = get_adapter(api)(vs)
    try:
        with tempfile.TemporaryDirectory() as d:
            adapter.build()
            adapter.init(1)
            saved = adapter.save(d)
            return restore_and_verify(adapter, saved.path, Manifest.expected(vs, seed=0)).outcome.value
    except Exception as e:  # noqa: BLE001 - any failure of the raw names is the point
        return f"raised {type(e).__name__}"
    finally:
        adapter.close()


def test_mapped_names_work_with_every_api_where_real_names_break_one():
    reserved = frozenset(json.load(open(models.LAYOUTS_FILE))["reserved_names"])
    apis = ("tf2-checkpoint", "keras-weights", "tf1-saver", "savedmodel")
    for case, real in _AWKWARD.items():
        raw = {api: _roundtrip(api, real) for api in apis}
        assert any(r != "complete" for r in raw.values()), f"{case}: real names did not break any API: {raw}"
        mapped = {api: _roundtrip(api, models.safe_names(real, reserved)) for api in apis}
        assert all(r == "complete" for r in mapped.values()), f"{case}: mapped names failed: {mapped}"


def test_reserved_names_cover_this_tensorflow_and_keras():
    # the reserved list is recorded by the layout script; the attributes of the classes the
    # adapters use here must not collide with any mapped component of any committed model
    import keras
    import tensorflow as tf

    classes = [tf.Module, keras.layers.Layer, keras.Model]
    try:
        import tf_keras   # `run --keras 2`
        classes += [tf_keras.layers.Layer, tf_keras.Model]
    except ImportError:
        pass
    live = {n for cls in classes for n in dir(cls) if not n.startswith("_")}
    for name in models.names():
        for v in models.get(name).variables:
            clash = set(v.name.split("/")) & live
            assert not clash, f"{name}: {v.name} ({v.real_name}) shadows {clash}"


# -- the CLI ---------------------------------------------------------------------------------------
def test_run_model_through_the_cli(tmp_path):
    out = tmp_path / "runs"
    p = run_cli("run", "--model", SMALLEST, "--api", "tf2-checkpoint", "--api", "keras-weights",
                "--repeat", "1", "--out", str(out), "--quiet", timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    run_dir = _run_dir(out)
    with open(os.path.join(run_dir, "phases.csv")) as f:
        rows = list(csv.DictReader(f))
    m = models.get(SMALLEST)
    judged = [r for r in rows if r["phase"] in ("restore_warm", "restore_cold", "verify")]
    assert {r["api"] for r in judged} == {"tf2-checkpoint", "keras-weights"}
    assert len(judged) == 6 and all(r["outcome"] == "complete" for r in judged), judged
    assert {int(r["n_vars"]) for r in rows} == {len(m.variables)}
    assert {int(r["state_bytes"]) for r in rows} == {m.bytes}
    assert {r["shape_mix"] for r in rows} == {"model"}
    meta = json.load(open(os.path.join(run_dir, "metadata.json")))
    assert meta["status"] == "complete"
    assert {s["spec"]["model"] for s in meta["scenarios"]} == {SMALLEST}
    assert meta["models"][SMALLEST]["params"] == m.params
    assert meta["models"]["layouts"]["versions"]["keras"]
    assert sorted(os.listdir(run_dir)) == ["metadata.json", "phases.csv"]


@pytest.mark.parametrize("args,needle", [
    (["--model", "resnet-9000"], "unknown model 'resnet-9000'; choose from mobilenetv3small"),
    (["--model", "resnet50", "--size", "1MiB"], "drop --size"),
    (["--model", "resnet50", "--vars", "10", "--shape-mix", "mixed"], "drop --vars, --shape-mix"),
    (["--model", "resnet50", "--dtype", "bfloat16"], "--dtype does not apply"),
])
def test_bad_model_input_is_one_line(args, needle, tmp_path):
    p = run_cli("run", *args, "--out", str(tmp_path), timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert not os.listdir(tmp_path)   # refused before anything started


def test_spec_refuses_an_unknown_model():
    with pytest.raises(UsageError, match="unknown model"):
        GraphSpec(model="nope")


def test_list_shows_models_without_importing_tensorflow():
    code = ("import sys, io, contextlib; from harness.cli import main\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf): rc = main(['list'])\n"
            "assert rc == 0 and 'tensorflow' not in sys.modules and 'keras' not in sys.modules, rc\n"
            "print(buf.getvalue())")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    for m in models.summary():
        line = next(ln for ln in p.stdout.splitlines() if ln.split()[:1] == [m["name"]])
        assert f"{m['params']:,}" in line
    assert "16MiB and 64MiB" in p.stdout


def test_default_run_covers_two_sizes():
    from harness.cli import build_parser
    from harness.runner import plan

    scenarios = plan(build_parser().parse_args(["run"]))
    sizes = {s.spec.state_bytes for s in scenarios}
    assert len(sizes) >= 2
    # every default API at every size: each API's throughput-vs-size plot is a line
    by_api = {}
    for s in scenarios:
        by_api.setdefault(s.api, set()).add(s.spec.state_bytes)
    assert all(v == sizes for v in by_api.values())
    # an explicit --size still means that one size
    one = plan(build_parser().parse_args(["run", "--size", "2MiB"]))
    assert {s.spec.state_bytes for s in one} == {2 << 20}
