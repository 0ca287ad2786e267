"""Catalog scenarios in TF1 compat: tf.compat.v1 Graph + Session + Saver.

Each function saves in one graph, alters what the cause says, restores in a
fresh graph, records what happened, then applies the cause's fix in another
fresh graph. Names are TF1 variable names, which are also the checkpoint keys.
"""

from __future__ import annotations

from pathlib import Path

from .kit import (OBSERVED_ERROR_AT_RESTORE, OBSERVED_ERROR_AT_SAVE, OBSERVED_ERROR_AT_USE,
                  OBSERVED_RESTORED, FixCheck, Result, attempt, outcome_of, reference_values, scenario,
                  scratch, tf1_assign, tf1_fix, tf1_judge, tf1_session, tf1_train_step,
                  tf1_uninitialized_check, tf1_variables, truncate_data, unfinish_save)

API = "tf1-saver"
MODEL = {"model/dense/kernel": (3, 2), "model/dense/bias": (2,)}


def _v1():
    import tensorflow as tf
    return tf.compat.v1


def _save(work: Path, spec=MODEL, *, optimizer: str | None = None, step: bool = True,
          saver_vars: str = "all", meta: bool = False) -> str:
    """Save a model (optionally with an optimizer after one step) and return the prefix."""
    v1 = _v1()
    with tf1_session() as sess:
        variables = tf1_variables(spec)
        train_op = tf1_train_step(variables, optimizer)[1] if optimizer else None
        sess.run(v1.global_variables_initializer())
        if train_op is not None and step:
            sess.run(train_op)
            tf1_assign(sess, variables, 1)  # keep model values deterministic after the step
        saver = v1.train.Saver(var_list=list(variables.values()) if saver_vars == "model" else None)
        return saver.save(sess, str(scratch(work, "tf1") / "model.ckpt"), write_meta_graph=meta)


def _restore(sess, prefix: str, var_list=None) -> None:
    _v1().train.Saver(var_list=var_list).restore(sess, prefix)


# --- 1. partial initialization ----------------------------------------------------------

@scenario("partial-initialization", "save-before-init", API,
          "run global_variables_initializer() before saving")
def save_before_init(work: Path) -> Result:
    v1 = _v1()
    directory = scratch(work, "tf1")
    with tf1_session() as sess:  # the article's example 1, in its own graph
        tf1_variables({"x": (), "y": ()})
        _, err = attempt(v1.train.Saver().save, sess, str(directory / "model.ckpt"))
        result = outcome_of(err, OBSERVED_ERROR_AT_SAVE) if err else None
    if result is None:  # the save went through: see what a restore makes of it
        prefix = str(directory / "model.ckpt")
        with tf1_session() as sess:
            tf1_variables({"x": (), "y": ()})
            _, err = attempt(_restore, sess, prefix)
            result = (outcome_of(err, OBSERVED_ERROR_AT_RESTORE) if err else
                      Result(OBSERVED_RESTORED, tf1_judge(sess, reference_values(prefix))))
    # fix: initialize, save, restore through import_meta_graph as the article does
    with tf1_session() as sess:
        tf1_variables({"x": (), "y": ()})
        sess.run(v1.global_variables_initializer())
        prefix = v1.train.Saver().save(sess, str(directory / "fixed.ckpt"))
    with tf1_session() as sess:
        saver = v1.train.import_meta_graph(prefix + ".meta")
        saver.restore(sess, prefix)
        result.fix = tf1_fix(sess, prefix)
    return result


@scenario("partial-initialization", "variable-outside-saver", API,
          "initialize what the restore does not cover: variables_initializer(the uninitialized ones); "
          "they start from their initial values")
def variable_outside_saver(work: Path) -> Result:
    v1 = _v1()
    prefix = _save(work)
    reference = reference_values(prefix)
    with tf1_session() as sess:
        variables = tf1_variables(MODEL)
        saver = v1.train.Saver()             # built before the step counter exists
        step = v1.get_variable("model/step", initializer=0)
        saver.restore(sess, prefix)
        verdict = tf1_judge(sess, reference)
        _, err = attempt(sess.run, [step] + list(variables.values()))
        result = Result(OBSERVED_ERROR_AT_USE if err else OBSERVED_RESTORED, verdict, error=err,
                        tf_check=tf1_uninitialized_check(sess))
    with tf1_session() as sess:
        tf1_variables(MODEL)
        saver = v1.train.Saver()
        v1.get_variable("model/step", initializer=0)
        saver.restore(sess, prefix)
        uninit = v1.report_uninitialized_variables()
        names = {n.decode() for n in sess.run(uninit)}
        sess.run(v1.variables_initializer([v for v in v1.global_variables() if v.op.name in names]))
        result.fix = tf1_fix(sess, prefix, accept={"model/step"})  # never saved: it starts at 0
    return result


# --- 2. mismatched scopes -----------------------------------------------------------------

@scenario("scope-mismatch", "prefix-on-restore", API,
          "Saver(var_list={checkpoint name: variable}) mapping the old scope to the new one")
def prefix_on_restore(work: Path) -> Result:
    prefix = _save(work)
    reference = reference_values(prefix)
    spec = {f"tower/{name}": shape for name, shape in MODEL.items()}
    rename = {f"tower/{name}": name for name in MODEL}
    with tf1_session() as sess:
        tf1_variables(spec, generation=2)
        _, err = attempt(_restore, sess, prefix)
        result = (outcome_of(err, OBSERVED_ERROR_AT_RESTORE) if err else
                  Result(OBSERVED_RESTORED, tf1_judge(sess, reference, rename=rename)))
    with tf1_session() as sess:
        variables = tf1_variables(spec, generation=2)
        _restore(sess, prefix, var_list={rename[n]: v for n, v in variables.items()})
        result.fix = tf1_fix(sess, prefix, rename=rename)
    return result


@scenario("scope-mismatch", "import-meta-under-scope", API,
          "none needed: the imported Saver restores by checkpoint key whatever the scope")
def import_meta_under_scope(work: Path) -> Result:
    """The article's example 2: import_meta_graph inside variable_scope('restored_model')."""
    v1 = _v1()
    prefix = _save(work, meta=True)
    reference = reference_values(prefix)
    rename = {f"restored_model/{name}": name for name in MODEL}
    with tf1_session() as sess:
        with v1.variable_scope("restored_model"):
            saver = v1.train.import_meta_graph(prefix + ".meta")
        _, err = attempt(saver.restore, sess, prefix)
        result = (outcome_of(err, OBSERVED_ERROR_AT_RESTORE) if err else
                  Result(OBSERVED_RESTORED, tf1_judge(sess, reference, rename=rename),
                         note="imported variables are renamed restored_model/...; the Saver still finds them"))
    return result  # no fix: the restore above is judged complete (anything else makes fix_works "no")


# --- 3. graph modified after save --------------------------------------------------------

def _modified(work: Path, spec: dict, *, map_old: dict[str, str], fresh: set[str]) -> Result:
    """Restore MODEL's checkpoint into a graph built from `spec`.

    Fix: a Saver over the variables the checkpoint can fill (renamed through
    map_old: new name -> checkpoint name) plus an initializer for `fresh` ones.
    The fix accepts the `fresh` variables at their initial values and leaves the
    checkpoint values no variable takes unused.
    """
    v1 = _v1()
    prefix = _save(work)
    reference = reference_values(prefix)
    with tf1_session() as sess:
        tf1_variables(spec, generation=2)
        _, err = attempt(_restore, sess, prefix)
        result = (outcome_of(err, OBSERVED_ERROR_AT_RESTORE) if err else
                  Result(OBSERVED_RESTORED, tf1_judge(sess, reference), tf_check=tf1_uninitialized_check(sess)))
    with tf1_session() as sess:
        variables = tf1_variables(spec, generation=2)
        var_list = {map_old.get(n, n): v for n, v in variables.items() if n not in fresh}
        sess.run(v1.variables_initializer([variables[n] for n in fresh]))
        _restore(sess, prefix, var_list=var_list)
        unused = set(reference) - set(var_list)
        result.fix = tf1_fix(sess, prefix, rename=map_old, accept=set(fresh) | unused)
    return result


@scenario("graph-modified", "renamed-variable", API,
          "Saver(var_list={old name: renamed variable})")
def renamed(work: Path) -> Result:
    spec = {"model/dense/kernel": (3, 2), "model/dense/offset": (2,)}
    return _modified(work, spec, map_old={"model/dense/offset": "model/dense/bias"}, fresh=set())


@scenario("graph-modified", "added-variable", API,
          "Saver(var_list=the saved variables) + initializer for the new one")
def added(work: Path) -> Result:
    spec = dict(MODEL, **{"model/dense2/kernel": (2, 2)})
    return _modified(work, spec, map_old={}, fresh={"model/dense2/kernel"})


@scenario("graph-modified", "removed-variable", API,
          "accept it: the Saver restores the graph's variables and leaves the removed one's value unused")
def removed(work: Path) -> Result:
    spec = {"model/dense/kernel": (3, 2)}
    return _modified(work, spec, map_old={}, fresh=set())


@scenario("graph-modified", "changed-shape", API,
          "Saver(var_list=all but the reshaped variable) + initializer for it")
def changed_shape(work: Path) -> Result:
    spec = {"model/dense/kernel": (3, 4), "model/dense/bias": (2,)}
    return _modified(work, spec, map_old={}, fresh={"model/dense/kernel"})


# --- 4. incomplete saving ----------------------------------------------------------------

def _two_saves(work: Path) -> tuple[Path, str, str]:
    """Saves 1 and 2 of the same graph (different values) in one directory."""
    v1 = _v1()
    directory = scratch(work, "tf1-interrupted")
    with tf1_session() as sess:
        variables = tf1_variables(MODEL)
        sess.run(v1.global_variables_initializer())
        saver = v1.train.Saver(max_to_keep=5)
        first = saver.save(sess, str(directory / "model.ckpt"), global_step=1, write_meta_graph=False)
        tf1_assign(sess, variables, 2)
        second = saver.save(sess, str(directory / "model.ckpt"), global_step=2, write_meta_graph=False)
    return directory, first, second


def _restore_result(sess, prefix: str, reference: dict) -> Result:
    _, err = attempt(_restore, sess, prefix)
    if err:
        return outcome_of(err, OBSERVED_ERROR_AT_RESTORE)
    return Result(OBSERVED_RESTORED, tf1_judge(sess, reference))


@scenario("incomplete-save", "interrupted-before-commit", API,
          "restore tf.train.latest_checkpoint(dir): the state file still names the last complete save")
def interrupted_before_commit(work: Path) -> Result:
    v1 = _v1()
    directory, first, second = _two_saves(work)
    reference2 = reference_values(second)
    unfinish_save(directory, second, first)
    with tf1_session() as sess:
        tf1_variables(MODEL, generation=3)
        result = _restore_result(sess, second, reference2)
        result.note = "simulated: save 2's files moved back into <prefix>_temp/, state file reset to save 1"
    with tf1_session() as sess:
        tf1_variables(MODEL, generation=3)
        latest = v1.train.latest_checkpoint(str(directory))
        _restore(sess, latest)
        result.fix = tf1_fix(sess, first)  # the last complete save, in full
    return result


@scenario("incomplete-save", "truncated-data", API,
          "restore the previous checkpoint (keep max_to_keep >= 2)")
def truncated(work: Path) -> Result:
    directory, first, second = _two_saves(work)
    reference2 = reference_values(second)
    truncate_data(second)
    with tf1_session() as sess:
        tf1_variables(MODEL, generation=3)
        result = _restore_result(sess, second, reference2)
        result.note = "simulated: save 2's data file truncated to half its length"
    with tf1_session() as sess:
        tf1_variables(MODEL, generation=3)
        _restore(sess, first)
        result.fix = tf1_fix(sess, first)
    return result


# --- 5. optimizer variables ------------------------------------------------------------

def _optimizer_restore(work: Path, prefix: str, reference: dict, optimizer: str) -> tuple[Result, FixCheck]:
    """Restore into MODEL + `optimizer` with a default Saver; then the fix:
    restore the model variables only and initialize the optimizer's. The fix
    accepts the optimizer starting fresh and the checkpoint's optimizer values
    going unused."""
    v1 = _v1()
    with tf1_session() as sess:
        variables = tf1_variables(MODEL, generation=2)
        tf1_train_step(variables, optimizer)
        _, err = attempt(_restore, sess, prefix)
        result = (outcome_of(err, OBSERVED_ERROR_AT_RESTORE) if err else
                  Result(OBSERVED_RESTORED, tf1_judge(sess, reference), tf_check=tf1_uninitialized_check(sess)))
    with tf1_session() as sess:
        variables = tf1_variables(MODEL, generation=2)
        opt, _ = tf1_train_step(variables, optimizer)
        sess.run(v1.variables_initializer(opt.variables()))
        _restore(sess, prefix, var_list=list(variables.values()))
        fresh = {v.op.name for v in opt.variables()}
        unused = set(reference) - set(MODEL)
        fix = tf1_fix(sess, prefix, accept=fresh | unused)
    return result, fix


@scenario("optimizer-variables", "article-example-3", API,
          "the article's fix: variables_initializer(optimizer.variables()) before saving")
def article_example_3(work: Path) -> Result:
    """Adam + global_variables_initializer + save, restored through import_meta_graph."""
    v1 = _v1()
    prefix = _save(work, optimizer="adam", step=False, meta=True)
    reference = reference_values(prefix)
    slots = sorted(k for k in reference if k not in MODEL)
    with tf1_session() as sess:
        saver = v1.train.import_meta_graph(prefix + ".meta")
        _, err = attempt(saver.restore, sess, prefix)
        result = (outcome_of(err, OBSERVED_ERROR_AT_RESTORE) if err else
                  Result(OBSERVED_RESTORED, tf1_judge(sess, reference), tf_check=tf1_uninitialized_check(sess),
                         note=f"optimizer variables in the checkpoint: {', '.join(slots) or 'none'}"))
    with tf1_session() as sess:  # the article's fix applied before saving
        variables = tf1_variables(MODEL)
        opt, _ = tf1_train_step(variables, "adam")
        sess.run(v1.global_variables_initializer())
        sess.run(v1.variables_initializer(opt.variables()))
        fixed = v1.train.Saver().save(sess, str(scratch(work, "tf1") / "fixed.ckpt"))
    with tf1_session() as sess:
        saver = v1.train.import_meta_graph(fixed + ".meta")
        saver.restore(sess, fixed)
        result.fix = tf1_fix(sess, fixed)
    return result


@scenario("optimizer-variables", "optimizer-not-saved", API,
          "Saver(var_list=model variables) to restore + variables_initializer(optimizer.variables())")
def optimizer_not_saved(work: Path) -> Result:
    prefix = _save(work, optimizer="adam", saver_vars="model")
    result, result.fix = _optimizer_restore(work, prefix, reference_values(prefix), "adam")
    return result


@scenario("optimizer-variables", "adam-to-sgd", API,
          "Saver(var_list=model variables) to restore; the Adam values in the checkpoint go unused")
def adam_to_sgd(work: Path) -> Result:
    prefix = _save(work, optimizer="adam")
    result, result.fix = _optimizer_restore(work, prefix, reference_values(prefix), "sgd")
    return result


@scenario("optimizer-variables", "sgd-to-adam", API,
          "Saver(var_list=model variables) to restore + variables_initializer(optimizer.variables())")
def sgd_to_adam(work: Path) -> Result:
    prefix = _save(work, optimizer="sgd")
    result, result.fix = _optimizer_restore(work, prefix, reference_values(prefix), "adam")
    return result


@scenario("optimizer-variables", "saved-before-first-step", API,
          "none needed: minimize() creates the slots, the initializer fills them, the Saver saves them")
def saved_before_first_step(work: Path) -> Result:
    v1 = _v1()
    prefix = _save(work, optimizer="adam", step=False)
    reference = reference_values(prefix)
    with tf1_session() as sess:
        variables = tf1_variables(MODEL, generation=2)
        opt, _ = tf1_train_step(variables, "adam")
        _, err = attempt(_restore, sess, prefix)
        result = (outcome_of(err, OBSERVED_ERROR_AT_RESTORE) if err else
                  Result(OBSERVED_RESTORED, tf1_judge(sess, reference), tf_check=tf1_uninitialized_check(sess)))
    return result  # no fix: the restore above is judged complete (anything else makes fix_works "no")
