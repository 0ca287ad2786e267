"""Variable layouts of real architectures, read from layouts.json.

The file is written offline by scripts/model_layouts.py (Keras applications and
keras_hub backbones built with fresh weights, nothing downloaded); this module
only reads it, so neither Keras applications nor keras_hub are needed to run a
model's layout. Values are never taken from a model: the harness fills every
variable with its own deterministic values (harness/specs.py).

Real variable paths ("block1a_dwconv/depthwise_kernel", "conv1/kernel:0") are
mapped to names every API adapter accepts (`safe_names`): each "/"-separated
part becomes a Python identifier that does not shadow an attribute of the
classes the adapters hang scopes and variables on. The mapping is deterministic
and keeps the real name readable; `ModelVar.real_name` keeps the original.

Low-level: imports nothing from the harness but its errors.
"""

from __future__ import annotations

import functools
import json
import keyword
import os
import re
from dataclasses import dataclass

from ..errors import HarnessError, UsageError

FORMAT = "ckpt-harness-model-layouts"
FORMAT_VERSION = 1
LAYOUTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layouts.json")
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "int64": 8}   # the dtypes harness/specs.py can fill

# "vars" is the group Keras's .weights.h5 gives each layer's own weights: a scope of that name
# collides with it ("name already exists"), whatever the Keras version
_ALWAYS_RESERVED = frozenset({"vars"})
_TENSOR_SUFFIX = re.compile(r":\d+$")
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class ModelVar:
    name: str                     # the harness's name: valid for every API adapter
    real_name: str                # the path Keras gave the variable
    shape: tuple[int, ...]
    dtype: str
    trainable: bool


@dataclass(frozen=True)
class ModelLayout:
    name: str
    description: str
    source: str                   # how the architecture was built
    params: int
    bytes: int
    variables: tuple[ModelVar, ...]


# -- name mapping -------------------------------------------------------------------------
def safe_component(part: str, reserved: frozenset[str] | set[str] = frozenset()) -> str:
    """One path component as an identifier that is no keyword and not in `reserved`."""
    out = _NOT_IDENT.sub("_", part)
    if not out or not out[0].isalpha():
        out = "x" + out          # a leading digit is no identifier; a leading "_" is private to Keras
    if keyword.iskeyword(out) or out in reserved or out in _ALWAYS_RESERVED:
        out += "_"
    return out


def safe_names(real_names: list[str], reserved: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Map real variable paths to unique "/"-separated identifier paths, in order.

    Besides each component (`safe_component`), two conflicts are resolved: a variable
    whose name is also the scope of another variable (its leaf gets "_var"), and two
    paths that map to the same name (later ones get "_2", "_3", ...).
    """
    mapped = []
    for real in real_names:
        parts = [p for p in _TENSOR_SUFFIX.sub("", real).split("/") if p]
        if not parts:
            raise HarnessError(f"model variable with an empty name: {real!r}")
        mapped.append([safe_component(p, reserved) for p in parts])
    scopes = {"/".join(parts[:k]) for parts in mapped for k in range(1, len(parts))}
    seen: dict[str, int] = {}
    out = []
    for parts in mapped:
        name = "/".join(parts)
        if name in scopes:
            name += "_var"
        base = name
        while name in seen or name in scopes:
            seen[base] = seen.get(base, 1) + 1
            name = f"{base}_{seen[base]}"
        seen[name] = 1
        out.append(name)
    return out


# -- the layouts file -----------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _document(path: str = LAYOUTS_FILE) -> dict:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise HarnessError(f"cannot read the model layouts {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HarnessError(f"{path} is not a model layouts file (format {FORMAT!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise HarnessError(f"{path} has layouts format version {doc.get('format_version')!r}; this harness "
                           f"reads version {FORMAT_VERSION} (regenerate it with scripts/model_layouts.py)")
    return doc


def names(path: str = LAYOUTS_FILE) -> list[str]:
    return list(_document(path)["models"])


def summary(path: str = LAYOUTS_FILE) -> list[dict]:
    """Per model: name, description, source, params, bytes, n_vars (no variable list)."""
    return [{"name": k, **{f: v for f, v in m.items() if f != "variables"}}
            for k, m in _document(path)["models"].items()]


def provenance(path: str = LAYOUTS_FILE) -> dict:
    """How the layouts were obtained: the script and the library versions it ran with."""
    doc = _document(path)
    return {"generated_by": doc.get("generated_by"), "format_version": doc["format_version"],
            "versions": doc.get("versions", {})}


def check_name(name: str, path: str = LAYOUTS_FILE) -> str:
    known = names(path)
    if name not in known:
        raise UsageError(f"unknown model {name!r}; choose from {', '.join(known)}")
    return name


@functools.lru_cache(maxsize=None)
def get(name: str, path: str = LAYOUTS_FILE) -> ModelLayout:
    """The layout of model `name` with harness names (UsageError for an unknown name)."""
    check_name(name, path)
    doc = _document(path)
    m = doc["models"][name]
    reserved = frozenset(doc.get("reserved_names", ()))
    raw = m["variables"]
    mapped = safe_names([r[0] for r in raw], reserved)
    out = []
    for new, (real, shape, dtype, trainable) in zip(mapped, raw):
        if dtype not in _ITEMSIZE:
            raise HarnessError(f"model {name}: variable {real} has dtype {dtype}, which the harness cannot fill")
        out.append(ModelVar(new, real, tuple(int(d) for d in shape), dtype, bool(trainable)))
    layout = ModelLayout(name, m.get("description", ""), m.get("source", ""), int(m["params"]), int(m["bytes"]),
                         tuple(out))
    counted = sum(_size(v.shape) * _ITEMSIZE[v.dtype] for v in out)
    if counted != layout.bytes:
        raise HarnessError(f"model {name}: its variables hold {counted} bytes, the file says {layout.bytes}")
    return layout


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def metadata(used: list[str | None], path: str = LAYOUTS_FILE) -> dict:
    """For a run's metadata.json: which models its scenarios used and how their layouts were
    obtained ({} when every scenario was synthetic)."""
    wanted = list(dict.fromkeys(n for n in used if n))
    if not wanted:
        return {}
    by_name = {m["name"]: m for m in summary(path)}
    return {"layouts": provenance(path), **{n: by_name[n] for n in wanted}}
