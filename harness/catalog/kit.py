"""Building blocks shared by the catalog scenarios: the scenario registry, the
result of one scenario, tiny deterministic variables, the TF1 / TF2 / Keras
helpers that save, restore and snapshot them, and how a restore is judged.

Restores are judged by the project's one judge (harness/judge/core.py) over
fingerprints. What stays the catalog's own is the naming: the catalog restores
through TensorFlow's and Keras's APIs into models the harness did not build, so
there are no logical variable names to go by. Its names are the readable names
of what a checkpoint holds, read with the catalog's own reader (reader.py:
TF1 variable names, TF2 object paths), and for `.weights.h5` files the layer
position ("layer1/w0"), which is how Keras matches weights. A restored model is
named the same way (TF2: written back and read by the same reader), so the
judge compares like with like. The models are tiny, so values are read whole.

TensorFlow is imported inside functions: importing this module is free.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..judge.core import error_summary, judge
from ..judge.manifest import fingerprint
from ..outcomes import Outcome, Verdict
from . import reader

# the article's five causes, in its order
CAUSES = ("partial-initialization", "scope-mismatch", "graph-modified", "incomplete-save", "optimizer-variables")

OBSERVED_RESTORED = "restored"
OBSERVED_ERROR_AT_SAVE = "error at save"
OBSERVED_ERROR_AT_RESTORE = "error at restore"
OBSERVED_ERROR_AT_USE = "restored; error at use"


# fix_works: does the prescribed fix give the model everything it needs?
FIX_YES = "yes"            # every model variable restored, every checkpoint value used, bit-identical
FIX_ACCEPTED = "accepted"  # complete except what the fix leaves fresh or unused on purpose (fix_accepts)
FIX_NO = "no"              # the fixed restore still fails or loses something it did not mean to
FIX_NA = "n/a"             # no fix needed: the restore as observed is complete


@dataclass(frozen=True)
class FixCheck:
    """The restore of the prescribed fix, judged against everything: all values of the
    checkpoint it restores from and all variables of the fixed model.

    `accepts` are the names the fix leaves at their initial value (model variables
    it initialises instead of restoring) or unused (checkpoint values it drops) on
    purpose; `lenient` is the verdict with them left out.
    """

    strict: Verdict
    lenient: Verdict | None = None
    accepts: tuple[str, ...] = ()
    model_vars: int = 0
    ckpt_values: int = 0

    @property
    def works(self) -> str:
        if self.strict.outcome is Outcome.COMPLETE and not self.accepts:
            return FIX_YES
        if self.accepts and self.lenient is not None and self.lenient.outcome is Outcome.COMPLETE:
            return FIX_ACCEPTED
        return FIX_NO

    @classmethod
    def failed(cls, exc: BaseException) -> "FixCheck":
        """The fix itself raised."""
        return cls(Verdict(Outcome.ERROR, error_summary(exc)))


@dataclass
class Result:
    """What one scenario saw, and how the cause's fix did (None: no fix was tried)."""

    observed: str
    verdict: Verdict
    error: BaseException | None = None
    tf_check: str = ""            # what TF's own checks report (assert_consumed, report_uninitialized_variables)
    fix: FixCheck | None = None
    note: str = ""

    @property
    def fix_works(self) -> str:
        if self.fix is not None:
            return self.fix.works
        # no fix tried: right only when there is nothing to fix
        return FIX_NA if self.verdict.outcome is Outcome.COMPLETE else FIX_NO


@dataclass(frozen=True)
class Scenario:
    cause: str
    variant: str
    api: str
    fix: str                      # the fix the cause calls for, in words
    func: Callable[[Path], Result] = field(compare=False)


REGISTRY: list[Scenario] = []


def scenario(cause: str, variant: str, api: str, fix: str):
    """Register a function `(workdir) -> Result` as one catalog row."""
    if cause not in CAUSES:
        raise ValueError(f"unknown cause {cause}")

    def register(func):
        REGISTRY.append(Scenario(cause, variant, api, fix, func))
        return func
    return register


# --- values ------------------------------------------------------------------------

def values_for(name: str, shape: tuple[int, ...], generation: int = 1) -> np.ndarray:
    """Deterministic float32 values per (name, generation): saves differ from each other
    and from any initializer, so a silent non-restore shows up as a mismatch."""
    rng = np.random.default_rng(zlib.crc32(name.encode()) * 1000 + generation)
    return rng.standard_normal(shape).astype(np.float32)


def outcome_of(exc: BaseException, observed: str, tf_check: str = "") -> Result:
    return Result(observed, Verdict(Outcome.ERROR, error_summary(exc)), error=exc, tf_check=tf_check)


# --- judging ----------------------------------------------------------------------------

def digest(value) -> str:
    """Fingerprint of one value. String tensors come back from TensorFlow as object
    arrays of bytes, which have no fixed-width buffer to hash: their elements are
    hashed one by one, each with its type and length, so the digest stays exact."""
    a = np.asarray(value)
    if a.dtype.kind != "O":
        return fingerprint(a)
    parts = []
    for item in a.reshape(-1):
        raw = item if isinstance(item, bytes) else str(item).encode()
        parts.append(b"b" if isinstance(item, bytes) else b"s")
        parts.append(len(raw).to_bytes(8, "little") + raw)
    return f"object{a.shape}:" + fingerprint(np.frombuffer(b"".join(parts), np.uint8))


def digests(values: Mapping[str, object]) -> dict[str, str]:
    return {name: digest(v) for name, v in values.items()}


def judge_values(reference: Mapping[str, object], restored: Mapping[str, object], *,
                 uninitialized=(), wrong_shape=()) -> Verdict:
    """The one judge on the catalog's values: `reference` is what the checkpoint
    holds, `restored` what the model holds after the restore (same naming)."""
    return judge(digests(reference), digests(restored), uninitialized=uninitialized, wrong_shape=wrong_shape)


def check_fix(reference: Mapping[str, object], restored: Mapping[str, object], *,
              accept: Iterable[str] | Callable[[str], bool] = (), uninitialized=(), wrong_shape=()) -> FixCheck:
    """Judge a fix's restore. `reference` must be everything the checkpoint the fix
    restores from holds and `restored` every variable of the fixed model: nothing is
    narrowed here, what the fix gives up on purpose is named in `accept` (names, or a
    test on a name) and reported as such."""
    expected, live = digests(reference), digests(restored)
    present = set(expected) | set(live) | set(uninitialized)
    accepts = tuple(sorted(n for n in present if accept(n))) if callable(accept) else \
        tuple(sorted(set(accept) & present))
    strict = judge(expected, live, uninitialized=uninitialized, wrong_shape=wrong_shape)
    lenient = (judge(expected, live, uninitialized=uninitialized, wrong_shape=wrong_shape, ignored=accepts)
               if accepts else None)
    return FixCheck(strict, lenient, accepts, model_vars=len(set(live) | set(uninitialized)),
                    ckpt_values=len(expected))


def attempt(func, *args, **kwargs):
    """(value, None) or (None, exception) -- every scenario step can fail."""
    try:
        return func(*args, **kwargs), None
    except Exception as e:  # the catalog records whatever TF raises
        return None, e


_counter = itertools.count()


def scratch(work: Path, label: str) -> Path:
    path = work / f"{label}-{next(_counter)}"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- TF1: tf.compat.v1 graph + Session + Saver ---------------------------------------

@contextlib.contextmanager
def tf1_session():
    """A fresh tf.Graph and a Session on it: every TF1 scenario step stays isolated."""
    import tensorflow as tf
    graph = tf.Graph()
    with graph.as_default():
        sess = tf.compat.v1.Session(graph=graph)
        try:
            yield sess
        finally:
            sess.close()


def tf1_variables(spec: Mapping[str, tuple[int, ...]], generation: int = 1) -> dict:
    """get_variable for each "scope/name": shape; initial values of `generation`."""
    import tensorflow as tf
    return {name: tf.compat.v1.get_variable(name, initializer=tf.constant(values_for(name, shape, generation)))
            for name, shape in spec.items()}


def tf1_assign(sess, variables: Mapping, generation: int) -> None:
    for name, var in variables.items():
        var.load(values_for(name, tuple(var.shape), generation), sess)


def tf1_snapshot(sess, rename: Mapping[str, str] | None = None) -> tuple[dict, list[str], list[str]]:
    """(name -> value of every initialized global variable, names left uninitialized,
    names whose value no longer has the variable's declared shape)."""
    import tensorflow as tf
    rename = rename or {}
    uninit = [n.decode() for n in sess.run(tf.compat.v1.report_uninitialized_variables())]
    variables = {v.op.name: v for v in tf.compat.v1.global_variables() if v.op.name not in uninit}
    values = sess.run(variables) if variables else {}
    reshaped = [name for name, v in variables.items()
                if v.shape.is_fully_defined() and tuple(v.shape) != np.shape(values[name])]
    return ({rename.get(k, k): v for k, v in values.items()}, [rename.get(n, n) for n in uninit],
            [rename.get(n, n) for n in reshaped])


def tf1_judge(sess, reference, *, rename=None) -> Verdict:
    values, uninit, reshaped = tf1_snapshot(sess, rename)
    return judge_values(reference, values, uninitialized=uninit, wrong_shape=reshaped)


def tf1_fix(sess, prefix: str, *, rename=None, accept=()) -> FixCheck:
    """A fix's restore in this session against all of checkpoint `prefix`."""
    values, uninit, reshaped = tf1_snapshot(sess, rename)
    return check_fix(reference_values(prefix), values, accept=accept, uninitialized=uninit, wrong_shape=reshaped)


def tf1_uninitialized_check(sess) -> str:
    import tensorflow as tf
    names = [n.decode() for n in sess.run(tf.compat.v1.report_uninitialized_variables())]
    return f"report_uninitialized_variables: {', '.join(names) if names else 'none'}"


def tf1_train_step(variables: Mapping, optimizer: str):
    """Build a loss over the variables, minimize with the named optimizer; returns the op."""
    import tensorflow as tf
    loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables.values()])
    opt = {"adam": lambda: tf.compat.v1.train.AdamOptimizer(0.1),
           "sgd": lambda: tf.compat.v1.train.GradientDescentOptimizer(0.1)}[optimizer]()
    return opt, opt.minimize(loss)


def reference_values(prefix: str) -> dict:
    """What a checkpoint holds, by readable name (the scenario's ground truth)."""
    return reader.read_named_values(prefix)


# --- TF2: tf.Module + tf.train.Checkpoint ----------------------------------------------

def tf2_module(spec: Mapping[str, tuple[int, ...]], generation: int = 1):
    """A tf.Module with one variable attribute per spec entry."""
    import tensorflow as tf
    module = tf.Module()
    for attr, shape in spec.items():
        setattr(module, attr, tf.Variable(values_for(attr, shape, generation), name=attr))
    return module


def tf2_snapshot(root, work: Path) -> dict:
    """Write `root` (a tf.train.Checkpoint) and read it back by readable name: the
    same naming as reference_values, so the two compare key by key."""
    path = root.write(str(scratch(work, "snapshot") / "s"))
    return reader.read_named_values(path)


def tf2_judge(root, work: Path, reference) -> Verdict:
    return judge_values(reference, tf2_snapshot(root, work))


def tf2_fix(root, work: Path, prefix: str, *, rename: Mapping[str, str] | None = None, accept=()) -> FixCheck:
    """A fix's restore against all of checkpoint `prefix`. `root` must hold the whole
    model (and its optimizer, if it has one), not a shim over part of it; `rename` maps
    the model's names to the checkpoint's where the fix restores under old names."""
    rename = rename or {}
    restored = {rename.get(k, k): v for k, v in tf2_snapshot(root, work).items()}
    return check_fix(reference_values(prefix), restored, accept=accept)


def status_check(status, method: str = "assert_consumed") -> str:
    """Run one of TF's restore-status assertions; say whether it passed."""
    try:
        getattr(status, method)()
    except Exception as e:
        # TF appends the unmatched objects with their values, in set order: keep the stable part
        text = error_summary(e).split(" Showing ")[0].split(", likely due to")[0]
        return f"{method}(): {text}"
    return f"{method}(): passes"


def keras_train_step(model_vars: list, optimizer) -> None:
    """One real gradient step with a Keras optimizer on a quadratic loss."""
    import tensorflow as tf
    with tf.GradientTape() as tape:
        loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in model_vars])
    optimizer.apply_gradients(zip(tape.gradient(loss, model_vars), model_vars))


# --- Keras: model.save_weights / load_weights (.weights.h5) -------------------------------

def keras_mlp(units: list[tuple[str, int]], generation: int = 1, *, build: bool = True, input_dim: int = 4):
    """Sequential of Dense layers with deterministic weights (when built)."""
    import tensorflow as tf
    keras = tf.keras   # Keras 3, or tf-keras under --keras 2
    layers = [keras.layers.Dense(n, name=name) for name, n in units]
    model = keras.Sequential(([keras.Input((input_dim,))] if build else []) + layers)
    if build:
        keras_assign(model, generation)
    return model


def keras_assign(model, generation: int) -> None:
    for i, layer in enumerate(model.layers):
        layer.set_weights([values_for(f"layer{i}/w{j}", tuple(w.shape), generation)
                           for j, w in enumerate(layer.weights)])


def keras_snapshot(model) -> dict:
    """Weights by position, the way .weights.h5 matches them (layer names do not count)."""
    return {f"layer{i}/w{j}": np.asarray(w.numpy())
            for i, layer in enumerate(model.layers) for j, w in enumerate(layer.weights)}


def keras_fix(model, reference: Mapping[str, object], *, accept=()) -> FixCheck:
    """A fix's load_weights against every weight of the saved model (`reference`)."""
    return check_fix(reference, keras_snapshot(model), accept=accept)


# --- simulated interrupted saves --------------------------------------------------------

def unfinish_save(directory: Path, prefix: str, previous: str) -> None:
    """Put a finished save back in the state a kill before its commit leaves:
    files under `<prefix>_temp/part-*` (where TF writes before merging), no
    `<prefix>.index`, and the state file naming the previous save."""
    temp = Path(prefix + "_temp")
    temp.mkdir()
    for path in Path(directory).glob(Path(prefix).name + ".*"):
        suffix = path.name[len(Path(prefix).name):]
        shutil.move(str(path), str(temp / ("part-00000-of-00001" + suffix)))
    state = Path(directory) / "checkpoint"
    name = Path(previous).name
    state.write_text(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')


def truncate_data(prefix: str) -> None:
    """Cut every data shard of a save to half its length (a write that never reached the disk)."""
    for path in Path(prefix).parent.glob(Path(prefix).name + ".data-*"):
        os.truncate(path, path.stat().st_size // 2)
