"""Graph specs: what variables a scenario has, and their deterministic values.

A spec is a small value object; `layout()` expands it into VarSpecs (logical
name, shape, dtype). Values are a pure function of (seed, generation, name), so
the expected content of any save can be recomputed variable by variable
without keeping a second copy of the state in memory. `generation` lets the
crash tools make save k differ from save k-1.

A spec is either synthetic (n_vars, state_bytes, shape_mix, dtypes) or names a
real architecture (`model`, see harness/models/): then the layout (names,
shapes, dtypes) is that model's and n_vars/state_bytes are derived from it;
the values are the harness's own either way.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass

import numpy as np

from . import models
from .errors import UsageError

SHAPE_MIXES = ("mixed", "few-large", "many-small")
MODEL_SHAPE_MIX = "model"   # the shape_mix of a spec whose layout is a real model's
DTYPES = ("float32", "bfloat16", "int64")
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "int64": 8}
_MAX_COLS = 1024


@dataclass(frozen=True)
class VarSpec:
    name: str                 # logical name, "/"-separated scopes, e.g. "s01/s03/v000042"
    shape: tuple[int, ...]
    dtype: str
    frozen: bool = False      # not trainable in the real architecture (e.g. batch-norm statistics)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * _ITEMSIZE[self.dtype]

    @property
    def trainable(self) -> bool:
        return self.dtype != "int64" and not self.frozen


@dataclass(frozen=True)
class GraphSpec:
    n_vars: int = 256
    state_bytes: int = 64 * 1024**2
    shape_mix: str | None = "mixed"   # None: mixed (a model spec: "model")
    dtypes: tuple[str, ...] = ("float32",)
    scope_depth: int = 2          # nested name scopes above each variable
    scope_fanout: int = 8         # sub-scopes per scope
    optimizer: bool = False       # Adam slots + step after one real training step
    seed: int = 0
    model: str | None = None      # a real architecture's layout (harness/models/) instead of a synthetic one

    def __post_init__(self):
        if self.model is not None:
            self._take_model_layout()   # the layouts file was checked when it was read
            return
        if self.shape_mix is None:
            object.__setattr__(self, "shape_mix", "mixed")
        if self.n_vars <= 0:
            raise UsageError(f"--vars must be positive, got {self.n_vars}")
        if self.state_bytes <= 0:
            raise UsageError("state size must be positive")
        if self.shape_mix not in SHAPE_MIXES:
            raise UsageError(f"unknown shape mix {self.shape_mix!r}; choose from {', '.join(SHAPE_MIXES)}")
        for d in self.dtypes:
            if d not in DTYPES:
                raise UsageError(f"unknown dtype {d!r}; choose from {', '.join(DTYPES)}")
        if self.state_bytes < self.n_vars * 8:
            raise UsageError(f"state of {self.state_bytes} bytes is too small for {self.n_vars} variables")

    def _take_model_layout(self):
        """n_vars, state_bytes, shape_mix and dtypes become the model's (frozen dataclass: set once here)."""
        m = models.get(models.check_name(self.model))
        own = tuple(dict.fromkeys(v.dtype for v in m.variables))
        if tuple(self.dtypes) not in (("float32",), own):
            raise UsageError(f"--dtype does not apply to --model {self.model}: its layout fixes every "
                             f"variable's dtype ({', '.join(own)})")
        if self.shape_mix not in (None, "mixed", MODEL_SHAPE_MIX):
            raise UsageError(f"--shape-mix does not apply to --model {self.model}: its layout fixes the shapes")
        for field, value in (("n_vars", len(m.variables)), ("state_bytes", m.bytes),
                             ("shape_mix", MODEL_SHAPE_MIX), ("dtypes", own)):
            object.__setattr__(self, field, value)

    def replace(self, **kw) -> "GraphSpec":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["dtypes"] = list(self.dtypes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GraphSpec":
        d = dict(d)
        d["dtypes"] = tuple(d.get("dtypes", ("float32",)))
        return cls(**d)

    @property
    def label(self) -> str:
        from .units import format_bytes
        opt = "+adam" if self.optimizer else ""
        if self.model is not None:
            return f"{self.model}-{format_bytes(self.state_bytes)}{opt}"
        return f"{self.n_vars}v-{format_bytes(self.state_bytes)}-{self.shape_mix}{opt}"


def _scope_path(i: int, depth: int, fanout: int) -> str:
    digits = []
    k = i
    for _ in range(depth):
        digits.append(k % fanout)
        k //= fanout
    # outermost scope first: s0 changes slowest
    return "/".join(f"s{level}_{d:02d}" for level, d in enumerate(reversed(digits)))


def _byte_weights(spec: GraphSpec) -> np.ndarray:
    n = spec.n_vars
    if spec.shape_mix == "many-small":
        return np.ones(n)
    if spec.shape_mix == "few-large":
        n_large = max(1, n // 10)
        w = np.full(n, 0.1 / max(1, n - n_large))
        w[:n_large] = 0.9 / n_large
        if n_large == n:
            w[:] = 1.0
        return w
    # mixed: sizes spread log-uniformly over three decades
    rng = np.random.default_rng([spec.seed, 7])
    return np.exp(rng.uniform(0.0, math.log(1000.0), n))


def _shape_for(elements: int) -> tuple[int, ...]:
    if elements < 64:
        return (elements,)
    cols = min(_MAX_COLS, elements)
    return (elements // cols, cols)


def layout(spec: GraphSpec) -> list[VarSpec]:
    """Expand a spec into its variables. Deterministic for a given spec."""
    if spec.model is not None:
        return [VarSpec(v.name, v.shape, v.dtype, frozen=not v.trainable) for v in models.get(spec.model).variables]
    w = _byte_weights(spec)
    w = w / w.sum()
    out = []
    for i in range(spec.n_vars):
        dtype = spec.dtypes[i % len(spec.dtypes)]
        elements = max(1, int(spec.state_bytes * w[i]) // _ITEMSIZE[dtype])
        scope = _scope_path(i, spec.scope_depth, spec.scope_fanout)
        name = f"{scope}/v{i:06d}" if scope else f"v{i:06d}"
        out.append(VarSpec(name, _shape_for(elements), dtype))
    return out


def total_bytes(variables: list[VarSpec]) -> int:
    return sum(v.nbytes for v in variables)


def _rng(seed: int, generation: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, generation & 0xFFFFFFFF, zlib.crc32(name.encode())])


def values(var: VarSpec, seed: int, generation: int = 1) -> np.ndarray:
    """The deterministic content of `var` for save number `generation`."""
    rng = _rng(seed, generation, var.name)
    if var.dtype == "int64":
        arr = rng.integers(-(2**40), 2**40, size=var.shape, dtype=np.int64)
    else:
        arr = rng.random(size=var.shape, dtype=np.float32) * 2.0 - 1.0
        if var.dtype == "bfloat16":
            import ml_dtypes  # ships with TensorFlow
            arr = arr.astype(ml_dtypes.bfloat16)
    return arr
