"""The manifest: per-variable fingerprints recorded beside a checkpoint at save time.

Fingerprints are computed one variable at a time from the live model, so
recording one never holds a second copy of the state. A manifest can also be
recomputed from the spec alone (`Manifest.expected`), since values are a pure
function of (seed, generation, name).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from ..results import atomic_write_json, check_version

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
READABLE_MANIFEST_VERSIONS = (1,)


# numpy computes dtype.name afresh on every access (about 7 us); at 100,000 variables
# the two lookups per variable were a fifth of the fingerprinting time
_DTYPE_NAMES: dict = {}


def _name_of(dtype) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = dtype.name
    return name


def fingerprint(array) -> str:
    """Digest of a tensor's exact bytes, dtype and shape (bit-identical or not)."""
    a = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{_name_of(a.dtype)}|{a.shape}|".encode())
    h.update(memoryview(a.reshape(-1).view(np.uint8)) if a.size else b"")
    return h.hexdigest()


def dtype_name(array) -> str:
    return _name_of(np.asarray(array).dtype)


@dataclass
class Entry:
    shape: tuple[int, ...]
    dtype: str
    digest: str

    @property
    def nbytes(self) -> int:
        itemsize = {"float32": 4, "bfloat16": 2, "int64": 8, "int32": 4, "float64": 8, "float16": 2}.get(self.dtype, 4)
        return int(np.prod(self.shape, dtype=np.int64)) * itemsize if self.shape else itemsize


@dataclass
class Manifest:
    entries: dict[str, Entry]
    api: str = ""
    generation: int = 1
    seed: int = 0
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_values(cls, pairs, **kw) -> "Manifest":
        entries = {}
        for name, v in pairs:
            a = np.asarray(v)
            entries[name] = Entry(a.shape, _name_of(a.dtype), fingerprint(a))
        return cls(entries, **kw)

    @classmethod
    def from_adapter(cls, adapter, generation: int = 1, **meta) -> "Manifest":
        return cls.from_values(adapter.iter_values(), api=adapter.api, generation=generation,
                               seed=adapter.seed, meta=meta)

    @classmethod
    def expected(cls, variables, seed: int, generation: int = 1, api: str = "") -> "Manifest":
        """What a save of `generation` must hold, recomputed from the spec (no optimizer state)."""
        from ..specs import values
        return cls.from_values(((v.name, values(v, seed, generation)) for v in variables),
                               api=api, generation=generation, seed=seed)

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())

    def to_dict(self) -> dict:
        return {
            "manifest_version": MANIFEST_VERSION,
            "api": self.api, "generation": self.generation, "seed": self.seed,
            "created": time.time(), "meta": self.meta,
            "entries": {k: {"shape": list(e.shape), "dtype": e.dtype, "digest": e.digest}
                        for k, e in self.entries.items()},
        }

    def write(self, directory: str, name: str = MANIFEST_NAME, durable: bool = True) -> str:
        path = os.path.join(directory, name)
        atomic_write_json(path, self.to_dict(), durable)
        return path

    @classmethod
    def load(cls, path: str) -> "Manifest":
        if os.path.isdir(path):
            path = os.path.join(path, MANIFEST_NAME)
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read manifest {path}: {e}") from None
        if not isinstance(d, dict):
            raise UsageError(f"cannot read manifest {path}: not a JSON object")
        check_version(d.get("manifest_version"), READABLE_MANIFEST_VERSIONS, "manifest_version", path)
        try:
            entries = {k: Entry(tuple(e["shape"]), e["dtype"], e["digest"]) for k, e in d["entries"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UsageError(f"cannot read manifest {path}: {e}") from None
        return cls(entries, api=d.get("api", ""), generation=d.get("generation", 1),
                   seed=d.get("seed", 0), meta=d.get("meta", {}))
