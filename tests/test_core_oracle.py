"""Every API round-trips through the oracle, and the oracle catches planted
differences. Real TensorFlow, in this process (one import for the module)."""

import os

import pytest

from harness.fsio import files_under
from harness.judge.restore import compare, restore_and_verify
from harness.judge.manifest import Manifest
from harness.outcomes import Outcome
from harness.savers import API_NAMES, get_adapter
from harness.session import Scenario, ScenarioSession
from harness.specs import GraphSpec, layout

SPEC = GraphSpec(n_vars=24, state_bytes=512 << 10, dtypes=("float32", "bfloat16", "int64"), seed=3)
OPT_APIS = ["tf2-checkpoint", "tf2-manager", "tf1-saver", "async-checkpoint"]


@pytest.mark.parametrize("api", API_NAMES)
def test_roundtrip_is_complete(api, tmp_path):
    with ScenarioSession(Scenario(api, "cpu", SPEC), str(tmp_path / "w")) as s:
        s.build()
        s.init()
        t = s.save()
        assert t.done_seconds >= t.return_seconds > 0
        # save_durable fsyncs exactly the files the save reports: they must be all it wrote
        # (the manifest beside them is the harness's own and deliberately left unsynced)
        on_disk = {os.path.relpath(f, s.save_dir()) for f in files_under(s.save_dir())}
        listed = {os.path.relpath(os.path.abspath(f), s.save_dir()) for f in t.files}
        assert listed and listed == on_disk - {"manifest.json"}, (listed, on_disk)
        s.make_durable()
        for cold in (False, True):
            assert s.restore(cold=cold) > 0
            v = s.verify()
            assert v.outcome is Outcome.COMPLETE, v.detail
    assert not (tmp_path / "w").exists()  # the session cleans its work dir


@pytest.mark.parametrize("api", OPT_APIS)
def test_roundtrip_with_optimizer_slots_and_step(api, tmp_path):
    spec = SPEC.replace(optimizer=True)
    with ScenarioSession(Scenario(api, "cpu", spec), str(tmp_path)) as s:
        s.build()
        s.init()
        s.save()
        names = set(s.manifest.entries)
        trained = [v.name for v in s.variables if v.dtype == "float32"]
        assert {f"{n}@adam_m" for n in trained} <= names and "step" in names
        s.restore(cold=True)
        assert s.verify().outcome is Outcome.COMPLETE


def _saved(adapter_cls, variables, tmp_path, optimizer=False):
    a = adapter_cls(variables, optimizer=optimizer, seed=3)
    a.build()
    a.init()
    r = a.save(str(tmp_path / "ckpt"))
    m = Manifest.from_adapter(a)
    return a, r, m


@pytest.mark.parametrize("api", ["tf2-checkpoint", "tf1-saver", "keras-weights"])
def test_oracle_names_one_changed_element(api, tmp_path):
    variables = layout(SPEC)
    a, r, m = _saved(get_adapter(api), variables, tmp_path)
    assert restore_and_verify(a, r.path, m).outcome is Outcome.COMPLETE
    target = variables[5]
    value = dict(a.iter_values())[target.name].copy()
    value.reshape(-1)[0] = value.reshape(-1)[0] + (1 if value.dtype.kind == "i" else 0.5)
    a.assign(target.name, value)
    v = compare(a, m, r.path)
    assert v.outcome is Outcome.MISMATCH and target.name in v.detail and "1 of 24" in v.detail
    a.close()


def test_oracle_names_missing_variable_tf2_silent_partial_restore(tmp_path):
    variables = layout(SPEC)
    gone = variables[7]
    saver, r, m = _saved(get_adapter("tf2-checkpoint"), [v for v in variables if v is not gone], tmp_path)
    full = get_adapter("tf2-checkpoint")(variables, seed=3)
    full.build()
    full.init()
    # Checkpoint.read restores what it finds and raises nothing: only the oracle notices
    v = restore_and_verify(full, r.path, m)
    assert v.outcome is Outcome.MISSING and gone.name in v.detail


def test_oracle_names_missing_variable_tf1(tmp_path):
    variables = layout(SPEC)
    gone = variables[7]
    _, r, m = _saved(get_adapter("tf1-saver"), [v for v in variables if v is not gone], tmp_path)
    full = get_adapter("tf1-saver")(variables, seed=3)
    full.build()
    v = restore_and_verify(full, r.path, m)
    assert v.outcome is Outcome.ERROR and "NotFoundError" in v.detail and gone.name in v.detail


@pytest.mark.parametrize("api,expected", [("tf2-checkpoint", Outcome.MISSING), ("tf1-saver", Outcome.ERROR)])
def test_oracle_names_missing_optimizer_slot(api, expected, tmp_path):
    variables = layout(SPEC)
    frozen = next(v for v in variables if v.dtype == "float32")
    base = get_adapter(api)

    class OneFrozen(base):  # this variable never got a gradient, so it has no Adam slots
        def trained(self):
            return [v for v in super().trained() if v.name != frozen.name]

    _, r, m = _saved(OneFrozen, variables, tmp_path, optimizer=True)
    full = base(variables, optimizer=True, seed=3)
    full.build()
    full.init()
    v = restore_and_verify(full, r.path, m)
    assert v.outcome is expected and f"{frozen.name}@adam_m" in v.detail, v.detail


def test_oracle_reports_unexpected_keys(tmp_path):
    variables = layout(SPEC)
    _, r, m = _saved(get_adapter("tf2-checkpoint"), variables, tmp_path)
    fewer = get_adapter("tf2-checkpoint")(variables[:-1], seed=3)
    fewer.build()
    v = restore_and_verify(fewer, r.path, m)
    assert v.outcome is Outcome.UNEXPECTED and variables[-1].name in v.detail


def test_tf1_uninitialized_is_reported(tmp_path):
    variables = layout(SPEC)
    a, r, m = _saved(get_adapter("tf1-saver"), variables, tmp_path)
    a.poison()  # fresh session, nothing restored
    v = compare(a, m, r.path)
    assert v.outcome is Outcome.UNINITIALIZED and "24 variable(s)" in v.detail


def test_poisoned_state_is_not_complete(tmp_path):
    # guards the oracle against passing a restore that wrote nothing
    variables = layout(SPEC)
    a, r, m = _saved(get_adapter("tf2-checkpoint"), variables, tmp_path)
    a.poison()
    assert compare(a, m, r.path).outcome is Outcome.MISMATCH


def test_manifest_matches_spec_recomputation(tmp_path):
    variables = layout(SPEC)
    a, r, m = _saved(get_adapter("tf2-checkpoint"), variables, tmp_path)
    expected = Manifest.expected(variables, seed=3)
    assert {k: e.digest for k, e in expected.entries.items()} == {k: e.digest for k, e in m.entries.items()}
    m.write(str(tmp_path))
    assert Manifest.load(str(tmp_path)).entries == m.entries


@pytest.mark.gpu
def test_gpu_roundtrip(tmp_path):
    with ScenarioSession(Scenario("tf2-checkpoint", "gpu", SPEC), str(tmp_path)) as s:
        s.build()
        s.init()
        s.save()
        assert "GPU" in s.adapter.vars[s.variables[0].name].device
        s.restore(cold=True)
        assert s.verify().outcome is Outcome.COMPLETE


@pytest.mark.parametrize("api", OPT_APIS)
def test_frozen_variables_get_no_optimizer_slots(api, tmp_path):
    """A real layout's non-trainable variables (batch-norm statistics) have no Adam slots in Keras;
    the optimizer must not give them any, or the checkpoint is larger than the real one."""
    from harness.specs import VarSpec

    variables = [VarSpec("bn/gamma", (8,), "float32"), VarSpec("bn/moving_mean", (8,), "float32", frozen=True)]
    a, _, m = _saved(get_adapter(api), variables, tmp_path, optimizer=True)
    slots = {n for n in m.entries if "@adam_" in n}
    assert slots == {"bn/gamma@adam_m", "bn/gamma@adam_v"}, sorted(m.entries)
    a.close()
