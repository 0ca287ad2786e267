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
    user: str = ""   # `crash --target`: the user's module:function / file.py:function (api "user")
    keras: str = field(default_factory=lambda: _keras_now())   # "3" or "2" (tf-keras): replay uses the same

    @property
    def seed(self) -> int:
        return self.spec.seed

    def to_dict(self) -> dict:
        d = {"api": self.api, "spec": self.spec.to_dict(), "k": self.k,
             "max_to_keep": self.max_to_keep, "device": self.device}
        if self.user:
            d["user"] = self.user
        d["keras"] = self.keras
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CrashTarget":
        return cls(api=d["api"], spec=GraphSpec.from_dict(d["spec"]), k=int(d.get("k", DEFAULT_K)),
                   max_to_keep=int(d.get("max_to_keep", DEFAULT_MAX_TO_KEEP)), device=d.get("device", "cpu"),
                   user=str(d.get("user") or ""), keras=str(d.get("keras") or _keras_now()))

    def make_adapter(self):
        """Build the API's adapter (imports TensorFlow); call after devices.configure()."""
        from .. import devices
        from ..savers import get_adapter
        from ..specs import layout

        tf_devices = devices.configure(self.device)
        if self.user:
            from ..savers.user import UserTarget
            adapter = UserTarget(self.user, seed=self.spec.seed, max_to_keep=self.max_to_keep)
            adapter.build()
            return adapter
        from .apis import adapter_options
        adapter = get_adapter(self.api)(layout(self.spec), tf_devices, optimizer=self.spec.optimizer,
                                        seed=self.spec.seed, max_to_keep=self.max_to_keep,
                                        **adapter_options(self.api))
        adapter.build()
        return adapter


def _keras_now() -> str:
    from ..tfenv import legacy_keras
    return "2" if legacy_keras() else "3"


def manifest_name(generation: int) -> str:
    return f"gen-{generation}.json"
