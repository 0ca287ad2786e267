"""Catalog scenarios in TF2: tf.train.Checkpoint over tf.Module models, with
Keras optimizers where the cause involves one.

TF2 matches by object graph, not by name: most changes do not raise, they
restore part of the model silently. `read()` is the call under test; the
judge compares the model afterwards with the checkpoint, and `tf_check`
records whether TF's own status assertions would have caught it.
"""

from __future__ import annotations

from pathlib import Path

from .kit import (OBSERVED_ERROR_AT_RESTORE, OBSERVED_RESTORED, Result, attempt, keras_mlp,
                  keras_train_step, outcome_of, reference_values, scenario, scratch, status_check,
                  tf2_fix, tf2_judge, tf2_module, truncate_data, unfinish_save, values_for)

API = "tf2-checkpoint"
MODEL = {"kernel": (3, 2), "bias": (2,)}


def _tf():
    import tensorflow as tf
    return tf


def _save_module(work: Path, spec=MODEL, **extra) -> str:
    tf = _tf()
    root = tf.train.Checkpoint(model=tf2_module(spec), **extra)
    return root.write(str(scratch(work, "tf2") / "ckpt"))


def _read(root, prefix: str, reference: dict, work: Path, *, check: str = "assert_consumed") -> Result:
    """root.read(prefix), then the judge and TF's own status check."""
    status, err = attempt(root.read, prefix)
    if err:
        return outcome_of(err, OBSERVED_ERROR_AT_RESTORE)
    tf_check = status_check(status, check)
    status.expect_partial()  # the verdict is recorded; keep TF's deletion warnings quiet
    return Result(OBSERVED_RESTORED, tf2_judge(root, work, reference), tf_check=tf_check)


def _shim(**attributes):
    """A tf.Module exposing variables under the attribute names the checkpoint uses."""
    tf = _tf()
    module = tf.Module()
    for name, var in attributes.items():
        setattr(module, name, var)
    return module


# --- 1. partial initialization -----------------------------------------------------------

@scenario("partial-initialization", "restore-before-build", API,
          "none needed (deferred restoration); build first to check with assert_consumed()")
def restore_before_build(work: Path) -> Result:
    """Restore into a Keras model whose variables do not exist yet, then build it."""
    tf = _tf()
    import numpy as np
    saved = keras_mlp([("dense", 2)], build=False)
    saved(np.ones((1, 3), np.float32))
    prefix = tf.train.Checkpoint(model=saved).write(str(scratch(work, "tf2") / "ckpt"))
    reference = reference_values(prefix)
    model = keras_mlp([("dense", 2)], build=False)
    root = tf.train.Checkpoint(model=model)
    status, err = attempt(root.read, prefix)
    if err:
        result = outcome_of(err, OBSERVED_ERROR_AT_RESTORE)
    else:
        before = status_check(status, "assert_existing_objects_matched")
        model(np.ones((1, 3), np.float32))  # variables created now; queued values land here
        result = Result(OBSERVED_RESTORED, tf2_judge(root, work, reference),
                        tf_check=f"before build: {before}; after build: {status_check(status, 'assert_consumed')}")
        status.expect_partial()
    return result  # no fix: the restore above is judged complete (anything else makes fix_works "no")


# --- 2. mismatched scopes -----------------------------------------------------------------

@scenario("scope-mismatch", "name-scope-on-restore", API,
          "none needed: TF2 checkpoints match objects, not variable names")
def name_scope_on_restore(work: Path) -> Result:
    tf = _tf()
    prefix = _save_module(work)
    reference = reference_values(prefix)
    with tf.name_scope("tower"):
        model = tf2_module(MODEL, generation=2)
    result = _read(tf.train.Checkpoint(model=model), prefix, reference, work)
    result.note = f"variable names on restore: {model.kernel.name}, {model.bias.name}"
    return result  # no fix: see restore_before_build


@scenario("scope-mismatch", "different-root-attribute", API,
          "attach the model under the attribute name it was saved with: Checkpoint(model=...)")
def different_root_attribute(work: Path) -> Result:
    tf = _tf()
    prefix = _save_module(work)
    reference = reference_values(prefix)
    model = tf2_module(MODEL, generation=2)
    result = _read(tf.train.Checkpoint(net=model), prefix, reference, work)
    root = tf.train.Checkpoint(model=model)
    root.read(prefix).assert_consumed()
    result.fix = tf2_fix(root, work, prefix)
    return result


# --- 3. graph modified after save ----------------------------------------------------------

@scenario("graph-modified", "renamed-variable", API,
          "read through a shim object that exposes the variable under its old attribute name")
def renamed(work: Path) -> Result:
    tf = _tf()
    prefix = _save_module(work)
    reference = reference_values(prefix)
    model = tf2_module({"kernel": (3, 2), "offset": (2,)}, generation=2)
    result = _read(tf.train.Checkpoint(model=model), prefix, reference, work)
    tf.train.Checkpoint(model=_shim(kernel=model.kernel, bias=model.offset)).read(prefix).assert_consumed()
    # judged on the model itself, whose "offset" must hold the saved "bias"
    result.fix = tf2_fix(tf.train.Checkpoint(model=model), work, prefix, rename={"model/offset": "model/bias"})
    return result


@scenario("graph-modified", "added-variable", API,
          "read the saved variables through a shim, assert_consumed(); accept the new one at its initial value")
def added(work: Path) -> Result:
    tf = _tf()
    prefix = _save_module(work)
    reference = reference_values(prefix)
    model = tf2_module(dict(MODEL, extra=(2, 2)), generation=2)
    result = _read(tf.train.Checkpoint(model=model), prefix, reference, work,
                   check="assert_existing_objects_matched")
    shim = _shim(kernel=model.kernel, bias=model.bias)
    tf.train.Checkpoint(model=shim).read(prefix).assert_consumed()
    result.fix = tf2_fix(tf.train.Checkpoint(model=model), work, prefix, accept={"model/extra"})
    return result


@scenario("graph-modified", "removed-variable", API,
          "status.expect_partial(): the extra checkpoint value is ignored on purpose")
def removed(work: Path) -> Result:
    tf = _tf()
    prefix = _save_module(work)
    reference = reference_values(prefix)
    model = tf2_module({"kernel": (3, 2)}, generation=2)
    result = _read(tf.train.Checkpoint(model=model), prefix, reference, work)
    root = tf.train.Checkpoint(model=model)
    root.read(prefix).expect_partial()
    result.fix = tf2_fix(root, work, prefix, accept={"model/bias"})  # the saved bias goes unused
    return result


@scenario("graph-modified", "changed-shape", API,
          "read the unchanged variables through a shim; accept the reshaped one at its initial value")
def changed_shape(work: Path) -> Result:
    tf = _tf()
    prefix = _save_module(work)
    reference = reference_values(prefix)
    model = tf2_module({"kernel": (3, 4), "bias": (2,)}, generation=2)
    result = _read(tf.train.Checkpoint(model=model), prefix, reference, work)
    tf.train.Checkpoint(model=_shim(bias=model.bias)).read(prefix).expect_partial()
    result.fix = tf2_fix(tf.train.Checkpoint(model=model), work, prefix, accept={"model/kernel"})
    return result


# --- 4. incomplete saving ------------------------------------------------------------------

def _two_managed_saves(work: Path):
    tf = _tf()
    directory = scratch(work, "tf2-interrupted")
    model = tf2_module(MODEL)
    root = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(root, str(directory), max_to_keep=5)
    first = manager.save()
    for name, shape in MODEL.items():
        getattr(model, name).assign(values_for(name, shape, 2))
    second = manager.save()
    return directory, first, second


@scenario("incomplete-save", "interrupted-before-commit", API,
          "restore manager.latest_checkpoint: the state file still names the last complete save")
def interrupted_before_commit(work: Path) -> Result:
    tf = _tf()
    directory, first, second = _two_managed_saves(work)
    reference2 = reference_values(second)
    unfinish_save(directory, second, first)
    result = _read(tf.train.Checkpoint(model=tf2_module(MODEL, generation=3)), second, reference2, work)
    result.note = "simulated: save 2's files moved back into <prefix>_temp/, state file reset to save 1"
    root = tf.train.Checkpoint(model=tf2_module(MODEL, generation=3))
    latest = tf.train.CheckpointManager(root, str(directory), max_to_keep=5).latest_checkpoint
    root.read(latest).assert_existing_objects_matched().expect_partial()
    result.fix = tf2_fix(root, work, first)  # the last complete save, in full
    return result


@scenario("incomplete-save", "truncated-data", API,
          "restore the previous checkpoint of the manager (max_to_keep >= 2)")
def truncated(work: Path) -> Result:
    tf = _tf()
    directory, first, second = _two_managed_saves(work)
    reference2 = reference_values(second)
    truncate_data(second)
    result = _read(tf.train.Checkpoint(model=tf2_module(MODEL, generation=3)), second, reference2, work)
    result.note = "simulated: save 2's data file truncated to half its length"
    root = tf.train.Checkpoint(model=tf2_module(MODEL, generation=3))
    root.read(first).assert_existing_objects_matched().expect_partial()
    result.fix = tf2_fix(root, work, first)
    return result


# --- 5. optimizer variables ----------------------------------------------------------------

def _keras_optimizer(kind: str):
    import tensorflow as tf
    keras = tf.keras   # Keras 3, or tf-keras under --keras 2
    return {"adam": lambda: keras.optimizers.Adam(0.1), "sgd": lambda: keras.optimizers.SGD(0.1)}[kind]()


def _model_and_optimizer(kind: str, *, generation: int, step: bool):
    model = tf2_module(MODEL, generation=generation)
    opt = _keras_optimizer(kind)
    if step:
        keras_train_step([model.kernel, model.bias], opt)
        for name, shape in MODEL.items():  # keep model values deterministic
            getattr(model, name).assign(values_for(name, shape, generation))
    return model, opt


def _save_with_optimizer(work: Path, kind: str, *, step: bool = True, include_optimizer: bool = True) -> str:
    tf = _tf()
    model, opt = _model_and_optimizer(kind, generation=1, step=step)
    root = tf.train.Checkpoint(model=model, optimizer=opt) if include_optimizer else tf.train.Checkpoint(model=model)
    return root.write(str(scratch(work, "tf2") / "ckpt"))


def _is_optimizer_state(name: str) -> bool:
    return name.startswith("optimizer/")


def _optimizer_state(reference: dict) -> set[str]:
    return {k for k in reference if _is_optimizer_state(k)}


@scenario("optimizer-variables", "optimizer-not-saved", API,
          "save the optimizer too: Checkpoint(model=..., optimizer=...)")
def optimizer_not_saved(work: Path) -> Result:
    tf = _tf()
    prefix = _save_with_optimizer(work, "adam", include_optimizer=False)
    model, opt = _model_and_optimizer("adam", generation=2, step=True)
    result = _read(tf.train.Checkpoint(model=model, optimizer=opt), prefix, reference_values(prefix), work,
                   check="assert_existing_objects_matched")
    fixed = _save_with_optimizer(work, "adam")
    model, opt = _model_and_optimizer("adam", generation=2, step=True)
    root = tf.train.Checkpoint(model=model, optimizer=opt)
    root.read(fixed).assert_consumed()
    result.fix = tf2_fix(root, work, fixed)
    return result


def _switch(work: Path, saved: str, restored: str) -> Result:
    """Checkpoint with optimizer `saved`, restored with optimizer `restored`.
    Fix: restore the model alone and let the new optimizer start fresh; it
    accepts the optimizer's state at its initial values and the checkpoint's
    optimizer values unused."""
    tf = _tf()
    prefix = _save_with_optimizer(work, saved)
    reference = reference_values(prefix)
    model, opt = _model_and_optimizer(restored, generation=2, step=True)
    result = _read(tf.train.Checkpoint(model=model, optimizer=opt), prefix, reference, work)
    model, opt = _model_and_optimizer(restored, generation=2, step=True)
    tf.train.Checkpoint(model=model).read(prefix).expect_partial()
    result.fix = tf2_fix(tf.train.Checkpoint(model=model, optimizer=opt), work, prefix, accept=_is_optimizer_state)
    return result


@scenario("optimizer-variables", "adam-to-sgd", API,
          "restore the model alone (or expect_partial()); SGD starts fresh")
def adam_to_sgd(work: Path) -> Result:
    return _switch(work, "adam", "sgd")


@scenario("optimizer-variables", "sgd-to-adam", API,
          "restore the model alone; Adam starts with fresh slots")
def sgd_to_adam(work: Path) -> Result:
    return _switch(work, "sgd", "adam")


@scenario("optimizer-variables", "saved-before-first-step", API,
          "optimizer.build(model variables) before the first save, so the slots are in it")
def saved_before_first_step(work: Path) -> Result:
    tf = _tf()
    prefix = _save_with_optimizer(work, "adam", step=False)
    reference = reference_values(prefix)
    model, opt = _model_and_optimizer("adam", generation=2, step=True)
    result = _read(tf.train.Checkpoint(model=model, optimizer=opt), prefix, reference, work,
                   check="assert_existing_objects_matched")
    result.note = f"optimizer values saved: {len(_optimizer_state(reference))}"
    model, opt = _model_and_optimizer("adam", generation=1, step=False)
    opt.build([model.kernel, model.bias])
    fixed = tf.train.Checkpoint(model=model, optimizer=opt).write(str(scratch(work, "tf2") / "fixed"))
    model, opt = _model_and_optimizer("adam", generation=2, step=True)
    root = tf.train.Checkpoint(model=model, optimizer=opt)
    root.read(fixed).assert_consumed()
    result.fix = tf2_fix(root, work, fixed)
    return result
