"""Graph specs, sizes and the results writer: no TensorFlow needed."""

import json
import os

import numpy as np
import pytest

from harness.errors import UsageError
from harness.outcomes import Outcome, Verdict
from harness.results import atomic_write_csv, atomic_write_json
from harness.specs import GraphSpec, layout, total_bytes, values
from harness.units import parse_size


@pytest.mark.parametrize("text,expected", [("64MiB", 64 << 20), ("1GiB", 1 << 30), ("500MB", 500_000_000),
                                           ("1.5KiB", 1536), ("4096", 4096)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["abc", "0", "-5MiB", "12XB", ""])
def test_parse_size_rejects(text):
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize("mix", ["mixed", "few-large", "many-small"])
def test_layout_hits_size_and_count(mix):
    spec = GraphSpec(n_vars=100, state_bytes=8 << 20, shape_mix=mix)
    vs = layout(spec)
    assert len(vs) == 100 and len({v.name for v in vs}) == 100
    assert 0.95 * spec.state_bytes <= total_bytes(vs) <= spec.state_bytes
    assert layout(spec) == vs  # deterministic


def test_few_large_puts_most_bytes_in_few_vars():
    vs = layout(GraphSpec(n_vars=100, state_bytes=8 << 20, shape_mix="few-large"))
    sizes = sorted((v.nbytes for v in vs), reverse=True)
    assert sum(sizes[:10]) > 0.85 * sum(sizes)


def test_values_depend_on_seed_generation_and_name():
    v = layout(GraphSpec(n_vars=4, state_bytes=1 << 16, dtypes=("float32", "bfloat16", "int64")))
    for var in v:
        a = values(var, seed=1, generation=1)
        assert a.shape == var.shape and a.dtype.name == var.dtype
        assert np.array_equal(a, values(var, seed=1, generation=1))
        assert not np.array_equal(a, values(var, seed=1, generation=2))
        assert not np.array_equal(a, values(var, seed=2, generation=1))


def test_nested_scopes():
    vs = layout(GraphSpec(n_vars=100, state_bytes=1 << 20, scope_depth=3, scope_fanout=4))
    assert all(v.name.count("/") == 3 for v in vs)


def test_bad_spec_is_usage_error():
    with pytest.raises(UsageError):
        GraphSpec(shape_mix="round")
    with pytest.raises(UsageError):
        GraphSpec(dtypes=("complex64",))


def test_verdict_is_one_line():
    v = Verdict(Outcome.MISMATCH, "a\nb   c")
    assert v.detail == "a b c" and not v.ok


def test_atomic_writers_leave_no_temp(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    atomic_write_csv(tmp_path / "p.csv", [{"x": 1, "extra": 2}], ["x", "y"])
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "x,y,extra"
    assert sorted(os.listdir(tmp_path)) == ["m.json", "p.csv"]


# Peak RSS of `ckpt-harness run` workers, measured on the 2-core VM with TF 2.21 (ru_maxrss of the
# worker, or VmHWM of the bare script, whichever was larger): gpt2-large from
# `ckpt-harness run --model gpt2-large --api tf2-checkpoint --repeat 1`; the synthetic ones from
# `python scripts/vars100k.py --warm-up`. The pre-run check must not promise less than these.
MEASURED_PEAKS = [
    (GraphSpec(model="gpt2-large"), "tf2-checkpoint", 7.34 * 2**30),
    (GraphSpec(n_vars=100_000, state_bytes=512 << 20), "tf2-checkpoint", 6.87 * 2**30),
    (GraphSpec(n_vars=20_000, state_bytes=128 << 20), "tf2-checkpoint", 2.03 * 2**30),
]


@pytest.mark.parametrize("spec,api,peak", MEASURED_PEAKS, ids=["gpt2-large", "100k-vars", "20k-vars"])
def test_the_ram_estimate_covers_measured_peaks(spec, api, peak):
    from harness.runner import needs
    from harness.session import Scenario

    ram, _ = needs(Scenario(api, "cpu", spec))
    assert peak <= ram <= 2 * peak, (ram / 2**30, peak / 2**30)
