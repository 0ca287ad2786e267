"""Catalog scenarios for Keras `model.save_weights` / `load_weights` (.weights.h5).

Keras 3 matches weights by position in the layer structure, not by name, so
renaming behaves differently here than in TF1 or tf.train.Checkpoint. The
weights are judged by position too (kit.keras_snapshot): a `.weights.h5` file
is not a TF checkpoint, so the reference is the saved model's own snapshot.
"""

from __future__ import annotations

import os
from pathlib import Path

from .kit import (OBSERVED_ERROR_AT_RESTORE, OBSERVED_RESTORED, FixCheck, Result, attempt, judge_values,
                  keras_fix, keras_mlp, keras_snapshot, outcome_of, scenario, scratch)

API = "keras-weights"
LAYERS = [("hidden", 3), ("out", 2)]


def _save(work: Path, layers=LAYERS, generation: int = 1, name: str = "model") -> tuple[str, dict]:
    model = keras_mlp(layers, generation)
    path = str(scratch(work, "keras") / f"{name}.weights.h5")
    model.save_weights(path)
    return path, keras_snapshot(model)


def _load(model, path: str, reference: dict, **kwargs) -> Result:
    _, err = attempt(model.load_weights, path, **kwargs)
    if err:
        return outcome_of(err, OBSERVED_ERROR_AT_RESTORE)
    return Result(OBSERVED_RESTORED, judge_values(reference, keras_snapshot(model)))


@scenario("partial-initialization", "load-before-build", API,
          "build the model (keras.Input or model.build) before load_weights")
def load_before_build(work: Path) -> Result:
    path, reference = _save(work)
    result = _load(keras_mlp(LAYERS, build=False), path, reference)
    model = keras_mlp(LAYERS, generation=2)
    model.load_weights(path)
    result.fix = keras_fix(model, reference)
    return result


@scenario("graph-modified", "renamed-variable", API,
          "none needed: .weights.h5 matches layers by position, not by name")
def renamed(work: Path) -> Result:
    path, reference = _save(work)
    result = _load(keras_mlp([("hidden", 3), ("logits", 2)], generation=2), path, reference)
    result.note = "layer 'out' renamed 'logits'"
    return result  # no fix: the load above is judged complete (anything else makes fix_works "no")


@scenario("graph-modified", "added-variable", API,
          "load_weights(skip_mismatch=True) then check; accept the new layer at its initial values")
def added(work: Path) -> Result:
    path, reference = _save(work)
    layers = LAYERS + [("extra", 2)]
    result = _load(keras_mlp(layers, generation=2), path, reference)
    model = keras_mlp(layers, generation=2)
    _, err = attempt(model.load_weights, path, skip_mismatch=True)
    result.fix = FixCheck.failed(err) if err else keras_fix(model, reference, accept=lambda n: n.startswith("layer2/"))
    return result


@scenario("graph-modified", "removed-variable", API,
          "accept it when the dropped layer is the last one (its saved weights go unused); "
          "compare by position otherwise")
def removed(work: Path) -> Result:
    path, reference = _save(work)
    result = _load(keras_mlp(LAYERS[:1], generation=2), path, reference)
    model = keras_mlp(LAYERS[:1], generation=2)
    model.load_weights(path)
    result.fix = keras_fix(model, reference, accept=lambda n: n.startswith("layer1/"))
    return result


@scenario("graph-modified", "changed-shape", API,
          "load_weights(skip_mismatch=True); accept the reshaped layer at its initial values")
def changed_shape(work: Path) -> Result:
    path, reference = _save(work)
    layers = [("hidden", 3), ("out", 4)]
    result = _load(keras_mlp(layers, generation=2), path, reference)
    model = keras_mlp(layers, generation=2)
    _, err = attempt(model.load_weights, path, skip_mismatch=True)
    fresh = {"layer1/w0", "layer1/w1"}  # skip_mismatch skips the whole reshaped layer
    result.fix = FixCheck.failed(err) if err else keras_fix(model, reference, accept=fresh)
    return result


@scenario("incomplete-save", "truncated-data", API,
          "load the previous weights file (write to a new name, then rename)")
def truncated(work: Path) -> Result:
    previous, reference1 = _save(work, name="previous")
    path, reference2 = _save(work, generation=2)
    os.truncate(path, os.path.getsize(path) // 2)
    result = _load(keras_mlp(LAYERS, generation=3), path, reference2)
    result.note = "simulated: the .weights.h5 file truncated to half its length"
    model = keras_mlp(LAYERS, generation=3)
    model.load_weights(previous)
    result.fix = keras_fix(model, reference1)
    return result

