"""The user's own save code as a crash target: `ckpt-harness crash --target SPEC`.

SPEC is `package.module:function` or `path/to/file.py:function`. The function
takes no arguments and returns a fresh object with five methods (the
protocol, documented in docs/crash.md, "Your own save code"):

    build()                     make the model (and optimizer, managers, ...)
    update(generation)          bring the live state to that generation; the
                                same generation must give the same values in
                                every process (a seeded train step, or values
                                assigned from the generation)
    values() -> {name: array}   the live state the harness fingerprints
    save(directory, generation) the user's real save code, writing into directory
    restore(directory) -> {name: array} | None
                                what a restarted process gets back: the values
                                it restored, None when it finds nothing to
                                restore (it would start from scratch); raise
                                when it cannot restore

`UserTarget` wraps such an object behind the SaverAdapter interface, so the
crash machinery (saving zygote, checker, judge, cases, replay) treats it like
any built-in API. Every restore runs on a freshly made and built object, as a
restarted process would.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping

import numpy as np

from ..errors import UsageError
from .base import SaveResult, SaverAdapter

API = "user"
PROTOCOL = ("build", "update", "values", "save", "restore")
# the user's module is imported once per process under a name of its own
_MODULE_PREFIX = "ckpt_harness_user_target_"


def parse_spec(spec: str) -> tuple[str, str, str]:
    """('file' or 'module', the file's absolute path or the module name, function name)."""
    where, sep, func = (spec or "").rpartition(":")
    if not sep or not where or not func:
        raise UsageError(f"--target {spec!r}: expected module:function or path/to/file.py:function")
    if not func.isidentifier():
        raise UsageError(f"--target {spec!r}: {func!r} is not a function name")
    if where.endswith(".py") or os.sep in where:
        return "file", os.path.abspath(where), func
    if not all(part.isidentifier() for part in where.split(".")):
        raise UsageError(f"--target {spec!r}: {where!r} is neither a module name nor a .py file")
    return "module", where, func


def normalize_spec(spec: str) -> str:
    """The spec as the harness keeps it: a file with its absolute path (children and replays
    may run elsewhere)."""
    kind, where, func = parse_spec(spec)
    return f"{where}:{func}"


def _import(kind: str, where: str, spec: str):
    if kind == "file":
        if not os.path.isfile(where):
            raise UsageError(f"--target {spec!r}: no such file {where}")
        name = _MODULE_PREFIX + str(abs(hash(where)))
        if name in sys.modules:
            return sys.modules[name]
        loader_spec = importlib.util.spec_from_file_location(name, where)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"--target {spec!r}: cannot load {where} as Python")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module   # dataclasses and pickling look the module up by name
        try:
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as e:
            del sys.modules[name]
            raise UsageError(f"--target {spec!r}: importing {where} failed: {type(e).__name__}: {e}") from None
        return module
    # module form: importable from the current directory too, as with `python -m`
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        found = importlib.util.find_spec(where)
    except (ImportError, ValueError) as e:
        raise UsageError(f"--target {spec!r}: no module {where} ({e})") from None
    if found is None:
        raise UsageError(f"--target {spec!r}: no module named {where}")
    try:
        return importlib.import_module(where)
    except (Exception, SystemExit) as e:
        raise UsageError(f"--target {spec!r}: importing {where} failed: {type(e).__name__}: {e}") from None


def load_factory(spec: str):
    """The target function named by `spec` (UsageError when there is none)."""
    kind, where, func = parse_spec(spec)
    module = _import(kind, where, spec)
    factory = getattr(module, func, None)
    if factory is None:
        raise UsageError(f"--target {spec!r}: {where} defines no {func!r}")
    if not callable(factory):
        raise UsageError(f"--target {spec!r}: {func!r} is not callable ({type(factory).__name__})")
    return factory


def make_object(factory, spec: str):
    """Call the target function and check that what it returns speaks the protocol."""
    try:
        obj = factory()
    except (Exception, SystemExit) as e:
        raise UsageError(f"--target {spec!r}: calling {factory.__name__}() failed: "
                         f"{type(e).__name__}: {e}") from None
    missing = [m for m in PROTOCOL if not callable(getattr(obj, m, None))]
    if missing:
        raise UsageError(f"--target {spec!r}: the object {factory.__name__}() returns lacks "
                         f"{', '.join(m + '()' for m in missing)} (see docs/crash.md, 'Your own save code')")
    return obj


def check_spec(spec: str) -> str:
    """Validate a --target spec in this process (imports TensorFlow quietly first, since the
    user's module will); returns the normalized spec."""
    from ..tfenv import import_tensorflow

    kind, where, _ = parse_spec(spec)   # a malformed spec or a missing file is refused before the slow import
    if kind == "file" and not os.path.isfile(where):
        raise UsageError(f"--target {spec!r}: no such file {where}")
    import_tensorflow()
    make_object(load_factory(spec), spec)
    return normalize_spec(spec)


def _as_arrays(out, what: str) -> dict[str, np.ndarray]:
    if not isinstance(out, Mapping):
        raise TypeError(f"{what} returned {type(out).__name__}, not a dict of name -> array")
    return {str(k): np.asarray(v) for k, v in out.items()}


class UserTarget(SaverAdapter):
    """SaverAdapter over the user's object; `spec` names the function that makes it."""

    api = API

    def __init__(self, spec: str, seed: int = 0, max_to_keep: int = 2, **options):
        super().__init__([], seed=seed, max_to_keep=max_to_keep, **options)
        self.spec = spec
        self.factory = load_factory(spec)
        self.obj = None
        self.generation = 0
        self._restored: dict[str, np.ndarray] | None = None   # set by restore(), cleared by init()

    def _fresh(self):
        obj = make_object(self.factory, self.spec)
        obj.build()
        return obj

    def build(self) -> None:
        self.obj = self._fresh()

    def init(self, generation: int = 1) -> None:
        self.generation = generation
        self._restored = None
        self.obj.update(generation)

    def assign(self, name, value):
        raise UsageError("a user target sets its own values in update(generation)")

    def expected_names(self) -> list[str]:
        return sorted(_as_arrays(self.obj.values(), "values()"))

    def iter_values(self, skip=()):
        src = self._restored if self._restored is not None else _as_arrays(self.obj.values(), "values()")
        for name in sorted(src):
            if name not in skip:
                yield name, src[name]

    def save(self, directory: str) -> SaveResult:
        os.makedirs(directory, exist_ok=True)
        t0 = time.perf_counter()
        self.obj.save(directory, self.generation)
        t = time.perf_counter() - t0
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs)
        return SaveResult(directory, files, t, t)

    def latest(self, directory: str):
        return directory   # the user's restore() finds its own latest checkpoint

    def poison(self) -> None:
        # a restarted process: a new object, nothing carried over from an earlier restore
        self.obj = self._fresh()
        self._restored = {}

    def restore(self, path: str) -> None:
        self._restored = self._restore_into(self.obj, path)

    def _restore_into(self, obj, path: str) -> dict[str, np.ndarray]:
        if os.path.isdir(path):
            out = obj.restore(path)
        else:
            out = self._restore_prefix(obj, path)
        if out is None:
            raise LookupError("restore() found no checkpoint: a restarted job would start from scratch")
        return _as_arrays(out, "restore()")

    @staticmethod
    def _restore_prefix(obj, prefix: str):
        """An older TF checkpoint on its own (the checker's fallback when the latest fails): the
        user's restore() on a directory holding only that prefix's files and a `checkpoint`
        file naming it, i.e. what a user gets after deleting the broken newest by hand."""
        state_dir, base = os.path.split(prefix)
        alone = tempfile.mkdtemp(prefix=".fallback-", dir=os.path.dirname(state_dir) or None)
        try:
            for name in os.listdir(state_dir):
                if name.startswith(base + "."):
                    src, dst = os.path.join(state_dir, name), os.path.join(alone, name)
                    try:
                        os.link(src, dst)
                    except OSError:
                        shutil.copyfile(src, dst)
            with open(os.path.join(alone, "checkpoint"), "w") as f:
                f.write(f'model_checkpoint_path: "{base}"\nall_model_checkpoint_paths: "{base}"\n')
            return obj.restore(alone)
        finally:
            shutil.rmtree(alone, ignore_errors=True)

    def checkpoint_names(self, path: str):
        """The names restore() hands back (the user's format is opaque to the harness)."""
        values = self._restore_into(self._fresh(), path)
        return {name: (tuple(v.shape), v.dtype.name) for name, v in values.items()}
