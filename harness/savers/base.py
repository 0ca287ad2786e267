"""The interface every save/restore API adapter implements.

An adapter owns one model built from a list of VarSpecs. It speaks in logical
variable names (the VarSpec names, plus "<var>@adam_m", "<var>@adam_v",
"optimizer/beta1_power", "optimizer/beta2_power" and "step" for optimizer
state), so the oracle can compare any API's checkpoint with any manifest.
"""

from __future__ import annotations

import abc
import glob
import os
from dataclasses import dataclass, field
from typing import Collection, Iterator

import numpy as np

from ..errors import UsageError
from ..specs import VarSpec, values

SLOT_SUFFIXES = ("@adam_m", "@adam_v")
OPTIMIZER_GLOBALS = ("optimizer/beta1_power", "optimizer/beta2_power", "step")
LEARNING_RATE = 1e-3


@dataclass
class SaveResult:
    path: str                      # what restore() takes (prefix, file or directory)
    files: list[str] = field(default_factory=list)   # files this save wrote, for fsync/cache drop
    return_seconds: float = 0.0    # until the API call returned
    done_seconds: float = 0.0      # until the checkpoint was complete (differs for async)


class SaverAdapter(abc.ABC):
    api = ""
    supports_optimizer = True

    def __init__(self, variables: list[VarSpec], devices=("/device:CPU:0",), optimizer: bool = False,
                 seed: int = 0, max_to_keep: int = 2, **options):
        if optimizer and not self.supports_optimizer:
            raise UsageError(f"{self.api} does not save optimizer state; drop --optimizer for this API")
        self.variables = list(variables)
        self.devices = list(devices) or ["/device:CPU:0"]
        self.optimizer = optimizer
        self.seed = seed
        self.max_to_keep = max_to_keep
        self.options = options

    # -- names ---------------------------------------------------------------
    def trained(self) -> list[VarSpec]:
        """Variables the optimizer updates: float32 ones (Adam slots for bf16/int64 are not portable)
        that the real architecture trains (batch-norm statistics get no slots, as in Keras)."""
        return [v for v in self.variables if v.dtype == "float32" and not v.frozen] if self.optimizer else []

    def expected_names(self) -> list[str]:
        names = [v.name for v in self.variables]
        if self.optimizer:
            for v in self.trained():
                names += [v.name + s for s in SLOT_SUFFIXES]
            names += list(OPTIMIZER_GLOBALS)
        return names

    def device_for(self, index: int) -> str:
        return self.devices[index % len(self.devices)]

    # -- lifecycle -------------------------------------------------------------
    @abc.abstractmethod
    def build(self) -> None:
        """See the module docstring."""

    def init(self, generation: int = 1) -> None:
        """Give every variable its deterministic values; with an optimizer, one real Adam step."""
        for v in self.variables:
            self.assign(v.name, values(v, self.seed, generation))
        if self.optimizer:
            self.train_step()

    @abc.abstractmethod
    def assign(self, name: str, value: np.ndarray) -> None:
        """See the module docstring."""

    def train_step(self) -> None:
        raise UsageError(f"{self.api} has no optimizer to step")

    @abc.abstractmethod
    def save(self, directory: str) -> SaveResult:
        """See the module docstring."""

    @abc.abstractmethod
    def latest(self, directory: str) -> str | None:
        """See the module docstring."""

    @abc.abstractmethod
    def poison(self) -> None:
        """Overwrite the live state so a restore that writes nothing cannot pass as complete."""

    def poison_fast(self) -> None:
        """poison() for tight loops (checking many crash states): may keep per-model state
        that poison() throws away, as long as no saved value can survive it."""
        self.poison()

    @abc.abstractmethod
    def restore(self, path: str) -> None:
        """See the module docstring."""

    @abc.abstractmethod
    def iter_values(self, skip: Collection[str] = ()) -> Iterator[tuple[str, np.ndarray]]:
        """See the module docstring."""

    @abc.abstractmethod
    def checkpoint_names(self, path: str) -> dict[str, tuple[tuple[int, ...], str]]:
        """Logical name -> (shape, dtype) of what the checkpoint at `path` holds.

        Keys this adapter cannot map come back as "?<raw key>" so they count as unexpected.
        """

    def uninitialized(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def files_with_prefix(prefix: str, extra: tuple[str, ...] = ()) -> list[str]:
    out = sorted(glob.glob(glob.escape(prefix) + ".*"))
    d = os.path.dirname(prefix)
    out += [os.path.join(d, e) for e in extra if os.path.exists(os.path.join(d, e))]
    return out


def tf_dtype_name(dtype) -> str:
    name = getattr(dtype, "name", str(dtype))
    return {"bfloat16": "bfloat16", "float32": "float32", "int64": "int64"}.get(name, name)
