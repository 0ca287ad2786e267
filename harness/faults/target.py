"""What a crash campaign saves: one API, one graph spec, and which save crashes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..specs import GraphSpec

# save k crashes after saves 1..k-1 completed; with max_to_keep=2, save 3 also
# deletes save 1, so the crash window covers the manager's cleanup too
DEFAULT_K = 3
DEFAULT_MAX_TO_KEEP = 2


@dataclass(frozen=True)
class CrashTarget:
    api: str
    spec: GraphSpec = field(default_factory=lambda: GraphSpec(n_vars=16, state_bytes=256 * 1024))
    k: int = DEFAULT_K
    max_to_keep: int = DEFAULT_MAX_TO_KEEP
    device: str = "cpu"

    @property
    def seed(self) -> int:
        return self.spec.seed

    def to_dict(self) -> dict:
        return {"api": self.api, "spec": self.spec.to_dict(), "k": self.k,
                "max_to_keep": self.max_to_keep, "device": self.device}

    @classmethod
    def from_dict(cls, d: dict) -> "CrashTarget":
        return cls(api=d["api"], spec=GraphSpec.from_dict(d["spec"]), k=int(d.get("k", DEFAULT_K)),
                   max_to_keep=int(d.get("max_to_keep", DEFAULT_MAX_TO_KEEP)), device=d.get("device", "cpu"))

    def make_adapter(self):
        """Build the API's adapter (imports TensorFlow); call after devices.configure()."""
        from .. import devices
        from ..savers import get_adapter
        from ..specs import layout

        tf_devices = devices.configure(self.device)
        adapter = get_adapter(self.api)(layout(self.spec), tf_devices, optimizer=self.spec.optimizer,
                                        seed=self.spec.seed, max_to_keep=self.max_to_keep)
        adapter.build()
        return adapter


def manifest_name(generation: int) -> str:
    return f"gen-{generation}.json"
