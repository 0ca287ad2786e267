"""One scenario in the measured process: an adapter plus timed phase methods.

Used by the runner's worker (harness/phases.py) and directly by the asv
benchmarks. Each method times exactly its phase and nothing else. Save and
restore are split into an untimed preparation (removing the previous save,
poisoning, os.sync, cache eviction), the timed API call, and for a save an
untimed finish (fingerprints, manifest), so that the worker and asv run the
same code around the same timed call.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

from . import devices, roofline
from .fsio import drop_cache, fsync_paths
from .judge.restore import compare
from .judge.manifest import Manifest
from .outcomes import Verdict
from .savers import check_api, get_adapter
from .specs import GraphSpec, layout, total_bytes


@dataclass(frozen=True)
class Scenario:
    api: str
    device: str = "cpu"
    spec: GraphSpec = field(default_factory=GraphSpec)
    max_to_keep: int = 2

    @property
    def name(self) -> str:
        return f"{self.api}/{self.device}/{self.spec.label}"

    def to_dict(self) -> dict:
        return {"api": self.api, "device": self.device, "spec": self.spec.to_dict(),
                "max_to_keep": self.max_to_keep}

    @classmethod
    def from_dict(cls, d: dict) -> "Scenario":
        return cls(api=d["api"], device=d.get("device", "cpu"), spec=GraphSpec.from_dict(d["spec"]),
                   max_to_keep=int(d.get("max_to_keep", 2)))


@dataclass
class SaveTiming:
    return_seconds: float
    done_seconds: float
    path: str
    files: list[str]


class ScenarioSession:
    """Build/init/save/restore/verify one scenario; TF is imported here, not before."""

    def __init__(self, scenario: Scenario, workdir: str):
        check_api(scenario.api)
        self.scenario = scenario
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.tf_devices = devices.configure(scenario.device)  # before any TF op
        self.variables = layout(scenario.spec)
        self.adapter = None
        self.manifest: Manifest | None = None
        self.last_save: SaveTiming | None = None
        self._saves = 0
        self._last_dir = None
        self._next_dir = None

    # -- phases ----------------------------------------------------------------
    def release(self) -> None:
        """Drop the model (its adapter closed first). TensorFlow frees each variable here:
        about 4 s at 100,000 variables, which is no part of building the next model."""
        if self.adapter is not None:
            self.adapter.close()
            self.adapter = None

    def build(self) -> float:
        """Create the model (zero-filled variables); a previous model is dropped first."""
        self.release()
        cls = get_adapter(self.scenario.api)
        spec = self.scenario.spec
        t0 = time.perf_counter()
        self.adapter = cls(self.variables, self.tf_devices, optimizer=spec.optimizer, seed=spec.seed,
                           max_to_keep=self.scenario.max_to_keep)
        self.adapter.build()
        return time.perf_counter() - t0

    def init(self, generation: int = 1) -> float:
        t0 = time.perf_counter()
        self.adapter.init(generation)
        t = time.perf_counter() - t0
        self.manifest = None  # state changed: fingerprint again at the next save
        return t

    def save_dir(self) -> str:
        # the manager keeps its own history in one directory; the others get a fresh one per save
        if self.scenario.api == "tf2-manager":
            return os.path.join(self.workdir, "manager")
        return os.path.join(self.workdir, f"save-{self._saves}")

    # A save is three steps, so that the worker and asv time the same thing: prepare_save
    # (untimed), save_call (the timed API call), finish_save (untimed: manifest).
    def prepare_save(self, sync: bool = True) -> str:
        """Remove the previous save, make the next directory, then flush dirty pages.

        Removing first and syncing after matters: on ext4 (mounted with `discard` here) a
        removal left for the journal to commit during the timed write slowed it by up to
        1.6x; synced before the write, it is paid here.
        """
        if self._last_dir and self.scenario.api != "tf2-manager":
            shutil.rmtree(self._last_dir, ignore_errors=True)  # keep disk use at one checkpoint
            self._last_dir = None
        self._saves += 1
        self._next_dir = self.save_dir()
        os.makedirs(self._next_dir, exist_ok=True)
        if sync:
            os.sync()
        return self._next_dir

    def save_call(self) -> SaveTiming:
        """The timed part: the API's own save call into the prepared directory, nothing else."""
        if self._next_dir is None:
            raise RuntimeError("save_call() needs prepare_save() first")
        directory, self._next_dir = self._next_dir, None
        self._last_dir = directory
        result = self.adapter.save(directory)
        self.last_save = SaveTiming(result.return_seconds, result.done_seconds, result.path, result.files)
        return self.last_save

    @property
    def save_pending(self) -> bool:
        """prepare_save() ran and its save_call() has not."""
        return self._next_dir is not None

    def record_manifest(self) -> Manifest:
        """Fingerprint the live state, once per state (init() forgets it)."""
        if self.manifest is None:
            self.manifest = Manifest.from_adapter(self.adapter, meta={"scenario": self.scenario.to_dict()})
        return self.manifest

    def write_manifest(self) -> None:
        # no fsync: it would flush the fresh checkpoint too and spoil the durable-save timing
        self.record_manifest().write(self._last_dir, durable=False)

    def finish_save(self) -> None:
        self.record_manifest()
        self.write_manifest()

    def save(self) -> SaveTiming:
        """All three steps; only the API call is in the returned timing."""
        self.prepare_save()
        timing = self.save_call()
        self.finish_save()
        return timing

    def make_durable(self) -> float:
        """fsync the last save's files and their directories; returns the extra seconds."""
        t0 = time.perf_counter()
        fsync_paths(self.last_save.files)
        return time.perf_counter() - t0

    # A restore likewise: prepare_restore (untimed), restore_call (timed).
    def prepare_restore(self, cold: bool = False, sync: bool = True, poison: bool = True) -> None:
        """Overwrite the live state (so a restore that writes nothing cannot pass), flush
        dirty pages, and for a cold restore evict the checkpoint from the page cache.
        `poison=False`: the caller has overwritten the state itself (`poison()`)."""
        if poison:
            self.poison()
        if sync:
            os.sync()
        if cold:
            drop_cache(self.last_save.files)

    def poison(self) -> None:
        """The oracle's guard before a restore: overwrite every live variable."""
        self.adapter.poison()

    def restore_call(self) -> float:
        """The timed part: the API's own restore call; returns its seconds."""
        t0 = time.perf_counter()
        self.adapter.restore(self.last_save.path)
        return time.perf_counter() - t0

    def restore(self, cold: bool = False) -> float:
        self.prepare_restore(cold)
        return self.restore_call()

    def verify(self) -> Verdict:
        return compare(self.adapter, self.manifest, self.last_save.path)

    def roofline(self) -> dict[str, float]:
        return roofline.measure(os.path.join(self.workdir, "roofline"), self.state_bytes)

    # -- facts -----------------------------------------------------------------
    @property
    def state_bytes(self) -> int:
        """Bytes of tensors the checkpoint holds (optimizer slots included once known)."""
        return self.manifest.total_bytes if self.manifest else total_bytes(self.variables)

    def close(self) -> None:
        if self.adapter is not None:
            self.adapter.close()
            self.adapter = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

