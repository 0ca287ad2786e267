"""`ckpt-harness catalog`: every cause reproduced against the installed TensorFlow.

The catalog runs once per module (about 10 s); the tests then assert on what
this TF version really did, through the CSV the command wrote.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from harness.catalog.judge import first_line, judge
from harness.outcomes import SINGLE_RESTORE, Outcome

REQUIRED_COLUMNS = {"cause", "api", "tf_version", "observed", "error_type", "message", "fix", "fix_works",
                    "variant", "outcome"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from harness.cli import main
    out = tmp_path_factory.mktemp("catalog")
    rc = main(["catalog", "--out", str(out)])
    written = list(out.glob("*/catalog.csv"))
    assert len(written) == 1, written
    with open(written[0], newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = set(reader.fieldnames)
    return rc, columns, rows


@pytest.fixture(scope="module")
def by_key(catalog):
    return {(r["cause"], r["api"], r["variant"]): r for r in catalog[2]}


def row(by_key, cause, api, variant):
    assert (cause, api, variant) in by_key, f"no catalog row {cause}/{api}/{variant}"
    return by_key[cause, api, variant]


# --- the table as a whole ---------------------------------------------------------

def test_catalog_exits_zero_and_writes_the_columns(catalog):
    rc, columns, rows = catalog
    assert rc == 0
    assert REQUIRED_COLUMNS <= columns
    assert len(rows) >= 30


def test_rows_use_the_outcome_vocabulary_and_this_tf_version(catalog):
    import tensorflow as tf
    for r in catalog[2]:
        assert r["tf_version"] == tf.__version__
        assert Outcome(r["outcome"]) in SINGLE_RESTORE
        assert r["observed"] in ("restored", "error at save", "error at restore", "restored; error at use"), r
        # an error is recorded with its class and a message; a clean restore with neither
        if r["outcome"] == "error":
            assert r["error_type"] and r["message"], r


def test_each_cause_is_reproduced_in_tf1_and_in_tf2(by_key):
    from harness.catalog.kit import CAUSES
    for cause in CAUSES:
        apis = {api for (c, api, _v) in by_key if c == cause}
        assert "tf1-saver" in apis, cause
        assert apis & {"tf2-checkpoint", "keras-weights"}, cause


def test_the_variants_the_issue_names_are_all_there(by_key):
    variants = {v for (_c, _a, v) in by_key}
    for wanted in ("renamed-variable", "added-variable", "removed-variable", "changed-shape",
                   "prefix-on-restore", "adam-to-sgd", "sgd-to-adam", "saved-before-first-step",
                   "interrupted-before-commit", "truncated-data"):
        assert wanted in variants


def test_every_prescribed_fix_restores_completely(catalog):
    failed = [(r["cause"], r["api"], r["variant"], r["fix_detail"]) for r in catalog[2] if r["fix_works"] != "yes"]
    assert not failed


# --- the article's claims, checked ----------------------------------------------------

def test_article_example_1_fails_when_saving_not_when_restoring(by_key):
    r = row(by_key, "partial-initialization", "tf1-saver", "save-before-init")
    assert r["observed"] == "error at save"
    assert r["error_type"] == "FailedPreconditionError"


def test_article_example_3_saves_the_adam_slots(by_key):
    r = row(by_key, "optimizer-variables", "tf1-saver", "article-example-3")
    assert r["observed"] == "restored" and r["outcome"] == "complete"
    assert "/Adam" in r["note"] and "beta1_power" in r["note"]


def test_article_example_2_import_under_a_scope_still_restores(by_key):
    r = row(by_key, "scope-mismatch", "tf1-saver", "import-meta-under-scope")
    assert r["observed"] == "restored" and r["outcome"] == "complete"


def test_uninitialized_value_appears_for_a_variable_the_saver_does_not_cover(by_key):
    r = row(by_key, "partial-initialization", "tf1-saver", "variable-outside-saver")
    assert r["outcome"] == "uninitialized"
    assert r["error_type"] == "FailedPreconditionError"
    assert "model/step" in r["tf_check"]


# --- TF1 fails loudly, TF2 restores part of the model silently ---------------------------

@pytest.mark.parametrize("variant", ["renamed-variable", "added-variable"])
def test_tf1_name_changes_raise_not_found(by_key, variant):
    r = row(by_key, "graph-modified", "tf1-saver", variant)
    assert r["observed"] == "error at restore"
    assert r["error_type"] == "NotFoundError"


def test_tf1_scope_prefix_raises_not_found(by_key):
    r = row(by_key, "scope-mismatch", "tf1-saver", "prefix-on-restore")
    assert r["error_type"] == "NotFoundError"


@pytest.mark.parametrize("variant", ["renamed-variable", "added-variable"])
def test_tf2_name_changes_are_silent_partial_restores(by_key, variant):
    r = row(by_key, "graph-modified", "tf2-checkpoint", variant)
    assert r["observed"] == "restored" and not r["error_type"]
    assert r["outcome"] == "missing"           # the oracle finds what read() did not say
    assert "AssertionError" in r["tf_check"]   # only TF's explicit status assertion notices


def test_tf2_different_root_attribute_restores_nothing_silently(by_key):
    r = row(by_key, "scope-mismatch", "tf2-checkpoint", "different-root-attribute")
    assert r["observed"] == "restored" and r["outcome"] == "missing"


def test_removed_variables_leave_unexpected_entries_everywhere(by_key):
    for api in ("tf1-saver", "tf2-checkpoint", "keras-weights"):
        r = row(by_key, "graph-modified", api, "removed-variable")
        assert r["observed"] == "restored" and r["outcome"] == "unexpected", api


def test_a_changed_shape_never_passes_as_complete(by_key):
    for api in ("tf1-saver", "tf2-checkpoint", "keras-weights"):
        r = row(by_key, "graph-modified", api, "changed-shape")
        assert r["outcome"] in ("error", "mismatch"), (api, r["outcome"])


def test_interrupted_or_truncated_saves_fail_loudly_and_the_previous_save_restores(by_key):
    for api, variant in [("tf1-saver", "interrupted-before-commit"), ("tf1-saver", "truncated-data"),
                         ("tf2-checkpoint", "interrupted-before-commit"), ("tf2-checkpoint", "truncated-data"),
                         ("keras-weights", "truncated-data")]:
        r = row(by_key, "incomplete-save", api, variant)
        assert r["observed"] == "error at restore", (api, variant, r["outcome"])
        assert r["fix_works"] == "yes"


def test_tf2_optimizer_state_gaps_are_silent(by_key):
    for variant in ("optimizer-not-saved", "sgd-to-adam", "saved-before-first-step"):
        r = row(by_key, "optimizer-variables", "tf2-checkpoint", variant)
        assert r["observed"] == "restored" and r["outcome"] == "missing", variant
        assert "optimizer/" in r["detail"]


def test_tf1_optimizer_switch_to_adam_raises(by_key):
    r = row(by_key, "optimizer-variables", "tf1-saver", "sgd-to-adam")
    assert r["error_type"] == "NotFoundError"
    r = row(by_key, "optimizer-variables", "tf1-saver", "adam-to-sgd")
    assert r["outcome"] == "unexpected"


# --- the judge itself (no TF) -------------------------------------------------------------

def test_judge_vocabulary():
    a, b = np.arange(3, dtype=np.float32), np.ones(2, np.float32)
    assert judge({"a": a}, {"a": a.copy()}).outcome is Outcome.COMPLETE
    assert judge({"a": a}, {"a": a + 1}).outcome is Outcome.MISMATCH
    assert judge({"a": a}, {"a": a.astype(np.float64)}).outcome is Outcome.MISMATCH
    assert judge({"a": a, "b": b}, {"a": a}).outcome is Outcome.UNEXPECTED
    assert judge({"a": a}, {"a": a, "b": b}).outcome is Outcome.MISSING
    assert judge({"a": a}, {"a": a, "b": b}, fresh={"b"}).outcome is Outcome.COMPLETE
    assert judge({"a": a}, {"a": a}, uninitialized=["c"]).outcome is Outcome.UNINITIALIZED
    assert judge({"a": a}, {"a": a}, reshaped=["a"]).outcome is Outcome.MISMATCH
    v = judge({"a": a, "x": b}, {"a": a + 1, "y": b})
    assert v.outcome is Outcome.MISSING  # the worst of the three findings
    assert "x" in v.detail and "y" in v.detail and "mismatch" in v.detail


def test_first_line_skips_tf_boilerplate():
    err = RuntimeError("Graph execution error:\n\nDetected at node 'x' defined at:\n  File \"a.py\"\n"
                       "Could not find variable x. It may be uninitialized.\n\t [[{{node x}}]]")
    assert first_line(err) == "Could not find variable x. It may be uninitialized."


def test_importing_the_commands_does_not_import_tensorflow():
    code = ("import sys, harness.catalog.cli, harness.catalog.kit, harness.catalog.reader; "
            "sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
