"""What a model expects to restore: the `--against TARGET` of diagnose.

TARGET is another checkpoint, a TF1 `.meta` file, or `module:function`
(a dotted module or a path to a .py file) whose function, called with no
arguments, returns one of: a Keras model / tf.Module / other trackable, a
tf.train.Checkpoint, a tf.Graph, a dict {name: variable}, or a list of
variables. Anything wrong with the target itself is a UsageError (exit 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from . import reader, sstable
from ..judge.core import error_summary

_CALLABLE_RE = re.compile(r"^(?P<module>[^:]+):(?P<func>[A-Za-z_][\w.]*)$")


@dataclass
class Var:
    name: str                       # the name restore matches on
    shape: tuple[int, ...] | None   # None: not known statically
    dtype: str
    optimizer: bool = False
    full_name: str = ""             # TF2: the variable's own name


@dataclass
class Target:
    description: str
    object_based: bool              # names are TF2 object paths (else TF1 variable names)
    variables: dict[str, Var] = field(default_factory=dict)
    kind: str = ""                  # checkpoint | meta | python


def from_listing(info: reader.IndexInfo) -> dict[str, Var]:
    return {t.name: Var(t.name, t.shape, t.dtype, t.optimizer, t.full_name)
            for k, t in info.tensors.items() if k != reader.OBJECT_GRAPH_KEY}


def _from_checkpoint(text: str) -> Target:
    loc = reader.locate(text)
    if loc.prefix is None:
        raise UsageError(f"--against {text}: its state file names a checkpoint that does not exist")
    try:
        info = reader.named_listing(loc.prefix)
    except sstable.IndexError_ as e:
        raise UsageError(f"--against {text}: its index is unreadable ({e})") from None
    return Target(f"checkpoint {loc.prefix}", info.object_based, from_listing(info), "checkpoint")


def _from_meta(path: str) -> Target:
    import tensorflow as tf
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.train.import_meta_graph(path, clear_devices=True)
    except Exception as e:  # garbage bytes, unknown ops, ...: the target is unusable
        raise UsageError(f"--against {path}: not a usable TF1 .meta file ({error_summary(e)})") from None
    return Target(f"TF1 meta graph {path}", False, _graph_variables(graph), "meta")


def _var(name: str, v) -> Var:
    shape = tuple(int(d) for d in v.shape) if v.shape.is_fully_defined() else None
    return Var(name, shape, v.dtype.base_dtype.name, reader.is_tf1_optimizer_name(name))


def _graph_variables(graph) -> dict[str, Var]:
    import tensorflow as tf
    variables = graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)
    return {v.op.name: _var(v.op.name, v) for v in variables}


def _trackable_variables(root) -> dict[str, Var]:
    """Write the object once to a temp dir and list it: exactly the keys a
    tf.train.Checkpoint over it would save, under the same readable names."""
    import tensorflow as tf
    checkpoint = root if isinstance(root, tf.train.Checkpoint) else tf.train.Checkpoint(root=root)
    with tempfile.TemporaryDirectory(prefix="ckpt-diagnose-") as tmp:
        prefix = checkpoint.write(os.path.join(tmp, "target"))
        info = reader.named_listing(prefix)
    variables = from_listing(info)
    variables.pop("save_counter", None)  # bookkeeping of the Checkpoint object, not of the model
    return variables


def _load_callable(module_text: str, func_path: str):
    try:
        if module_text.endswith(".py"):
            if not os.path.isfile(module_text):
                raise UsageError(f"--against: no such file {module_text}")
            spec = importlib.util.spec_from_file_location(Path(module_text).stem, module_text)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_text)
        obj = module
        for part in func_path.split("."):
            obj = getattr(obj, part)
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(f"--against {module_text}:{func_path}: cannot load it "
                         f"({error_summary(e)})") from None
    if not callable(obj):
        raise UsageError(f"--against {module_text}:{func_path} is not callable")
    return obj


def _from_callable(text: str, module_text: str, func_path: str) -> Target:
    import tensorflow as tf
    func = _load_callable(module_text, func_path)
    try:
        built = func()
    except Exception as e:
        raise UsageError(f"--against {text}: the function raised {error_summary(e)}") from None
    if isinstance(built, tf.Graph):
        return Target(f"{text} (tf.Graph)", False, _graph_variables(built), "python")
    if isinstance(built, dict):
        bad = [k for k, v in built.items() if not (isinstance(k, str) and hasattr(v, "shape") and hasattr(v, "dtype"))]
        if bad:
            raise UsageError(f"--against {text}: the dict must map names to variables (bad entry {bad[0]!r})")
        return Target(f"{text} (dict of {len(built)} variables)", False,
                      {k: _var(k, v) for k, v in built.items()}, "python")
    if isinstance(built, (list, tuple)):
        if not all(hasattr(v, "name") and hasattr(v, "shape") for v in built):
            raise UsageError(f"--against {text}: the list must hold variables")
        names = [v.name[:-2] if v.name.endswith(":0") else v.name for v in built]
        return Target(f"{text} (list of {len(built)} variables)", False,
                      {n: _var(n, v) for n, v in zip(names, built)}, "python")
    if isinstance(built, tf.__internal__.tracking.Trackable):
        try:
            variables = _trackable_variables(built)
        except Exception as e:
            raise UsageError(f"--against {text}: cannot list the object's variables "
                             f"({error_summary(e)})") from None
        return Target(f"{text} ({type(built).__name__})", True, variables, "python")
    raise UsageError(f"--against {text}: the function returned {type(built).__name__}; expected a model, "
                     f"tf.Module, tf.train.Checkpoint, tf.Graph, dict or list of variables")


def load(text: str) -> Target:
    if text.endswith(".meta"):
        if not os.path.isfile(text):
            raise UsageError(f"--against {text}: no such file")
        return _from_meta(text)
    m = _CALLABLE_RE.match(text)
    if m and not os.path.exists(text):
        return _from_callable(text, m.group("module"), m.group("func"))
    try:
        return _from_checkpoint(text)
    except UsageError as e:
        raise UsageError(f"--against: {e}") from None
