"""The one judge (harness/judge/core.py) and the outcome order, as tables of cases.

No TensorFlow here: the judge works on fingerprints, and run, crash and catalog
feed it theirs (their own tests plant real failures through real TensorFlow).
"""

import pytest

from harness.judge.core import error_summary, judge, name_list
from harness.outcomes import ORDER, Outcome, Verdict, worst

A, B, C, X = "fa", "fb", "fc", "fx"

CASES = [
    # id, expected, live, kwargs, outcome, words the detail must hold
    ("identical", {"a": A, "b": B}, {"a": A, "b": B}, {}, Outcome.COMPLETE, ["2 variables"]),
    ("changed-value", {"a": A, "b": B}, {"a": A, "b": X}, {}, Outcome.MISMATCH, ["1 of 2", "b"]),
    ("restore-restored-nothing", {"a": A, "b": B}, {"a": X, "b": X}, {}, Outcome.MISMATCH, ["2 of 2"]),
    ("dropped-variable", {"a": A}, {"a": A, "b": B}, {}, Outcome.MISSING, ["b"]),
    ("key-not-held", {"a": A, "b": B}, {"a": A, "b": B}, {"held_keys": ["a"]}, Outcome.MISSING, ["b"]),
    ("extra-key", {"a": A, "b": B}, {"a": A}, {}, Outcome.UNEXPECTED, ["b"]),
    ("extra-held-key", {"a": A}, {"a": A}, {"held_keys": ["a", "?raw"]}, Outcome.UNEXPECTED, ["?raw"]),
    ("uninitialized", {"a": A, "b": B}, {"a": A}, {"uninitialized": ["b"]}, Outcome.UNINITIALIZED, ["b"]),
    ("ignored-fresh", {"a": A}, {"a": A, "new": C}, {"ignored": ["new"]}, Outcome.COMPLETE, []),
    ("wrong-shape", {"a": A}, {"a": A}, {"wrong_shape": ["a"]}, Outcome.MISMATCH, ["shape", "a"]),
    ("unreadable-value", {"a": A}, {"a": ""}, {}, Outcome.MISMATCH, ["a"]),
    # several problems: the worst decides, every one is named, worst first
    ("missing-and-unexpected", {"a": A, "x": B}, {"a": A, "y": B}, {}, Outcome.MISSING, ["y", "x"]),
    ("mismatch-beats-missing", {"a": A, "x": B}, {"a": X, "y": B}, {}, Outcome.MISMATCH, ["a", "x", "y"]),
]


@pytest.mark.parametrize("expected,live,kw,outcome,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_judge_cases(expected, live, kw, outcome, words):
    v = judge(expected, live, **kw)
    assert v.outcome is outcome, v.detail
    for w in words:
        assert w in v.detail, (w, v.detail)
    if outcome is not Outcome.COMPLETE:  # the worst problem is named first
        assert v.detail.startswith(str(outcome)), v.detail


def test_worst_uses_the_order_not_the_words():
    # a str enum compares alphabetically unless told otherwise: "missing" < "unexpected"
    assert max(Outcome.MISSING, Outcome.UNEXPECTED) is Outcome.MISSING
    assert worst(["unexpected", "missing", ""]) is Outcome.MISSING
    assert worst([Outcome.HANG, Outcome.ERROR]) is Outcome.HANG
    assert worst([Outcome.SILENT, Outcome.NEW, Outcome.ROLLBACK]) is Outcome.SILENT
    assert worst(["", None]) is None
    with pytest.raises(ValueError):
        worst(["no-such-outcome"])


def test_order_is_total_and_quiet_is_worse_than_loud():
    ranks = [o.severity for o in Outcome]
    assert len(set(ranks)) == len(ranks) == len(ORDER)  # no ties: HANG and ERROR differ
    assert sorted(Outcome, key=lambda o: o.severity)[0] is Outcome.COMPLETE
    # wrong values that look fine are worse than any error a user sees
    for loud in (Outcome.ERROR, Outcome.HANG, Outcome.CRASH, Outcome.DETECTED, Outcome.UNINITIALIZED):
        assert Outcome.SILENT > loud and Outcome.MISMATCH > loud
    assert Verdict("rollback").ok and not Verdict("unexpected").ok


def test_name_list_caps_names():
    assert name_list(["c", "a", "b"]) == "a, b, c"
    assert name_list([f"v{i}" for i in range(10)]) == "v0, v1, v2 (+7 more)"


def test_error_summary_keeps_the_informative_line_and_drops_scratch_paths():
    err = RuntimeError("Graph execution error:\n\nDetected at node 'x' defined at:\n  File \"a.py\"\n"
                       "Could not find variable x. It may be uninitialized.\n\t [[{{node x}}]]")
    assert error_summary(err) == "RuntimeError: Could not find variable x. It may be uninitialized."
    err = ValueError("{{function_node __wrapped__RestoreV2}} TensorBundle at /s/t/ckpt-3 shard 0")
    assert error_summary(err, "/s/t") == "ValueError: TensorBundle at ckpt-3 shard 0"
    tf1 = RuntimeError("Restoring from checkpoint failed. This is most likely due to a Variable name "
                       "or other graph key that is missing from the checkpoint.\n\nKey v1 not found in checkpoint")
    assert error_summary(tf1).startswith("RuntimeError: Key v1 not found in checkpoint (Restoring from")
    assert error_summary(KeyError("name 'w'")) == "KeyError: name 'w'"
