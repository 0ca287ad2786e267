"""`--strategy` values: parsing and the tasks each needs (no TensorFlow here).

    none                     today's single-process path (harness/runner.py)
    mirrored:N               MirroredStrategy over N logical CPUs, one process
    multi-worker:N           MultiWorkerMirroredStrategy, N worker processes (worker:0 is the chief)
    parameter-server:W,P     ParameterServerStrategy: a chief (the only client: it builds, saves,
                             restores and verifies), W worker and P ps servers; the variables live
                             on the ps tasks, each of which writes its own shard of a save
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from .launcher import TaskId

KINDS = ("none", "mirrored", "multi-worker", "parameter-server")
_RE = re.compile(r"^(none|mirrored|multi-worker|parameter-server)(?::(\d+)(?:,(\d+))?)?$")
MAX_REPLICAS = 16
MAX_WORKERS = 8
MAX_PS = 8
_HINT = "use none, mirrored:N, multi-worker:N or parameter-server:WORKERS,PS"


@dataclass(frozen=True)
class StrategySpec:
    kind: str       # one of KINDS
    count: int = 1  # logical devices (mirrored) or worker processes (multi-worker, parameter-server)
    ps: int = 0     # parameter-server tasks (parameter-server)

    @property
    def label(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "parameter-server":
            return f"{self.kind}:{self.count},{self.ps}"
        return f"{self.kind}:{self.count}"

    @property
    def distributed(self) -> bool:
        return self.kind != "none"

    @property
    def multi_process(self) -> bool:
        return self.kind in ("multi-worker", "parameter-server")

    def tasks(self) -> list[TaskId]:
        if self.kind == "multi-worker":
            return [TaskId("worker", i) for i in range(self.count)]
        if self.kind == "parameter-server":
            return ([TaskId("chief", 0)] + [TaskId("worker", i) for i in range(self.count)]
                    + [TaskId("ps", i) for i in range(self.ps)])
        return [TaskId("chief", 0)]

    def chief(self) -> str:
        return self.tasks()[0].label

    def clients(self) -> list[str]:
        """The tasks that hold the model and take part in every round (the others only serve)."""
        if self.kind == "parameter-server":
            return [self.chief()]
        return [t.label for t in self.tasks()]


def parse_strategy(text: str | None) -> StrategySpec:
    if text is None:
        return StrategySpec("none")
    m = _RE.match(str(text).strip().lower())
    if not m:
        raise UsageError(f"unknown strategy {text!r}; {_HINT}")
    kind, num, second = m.group(1), m.group(2), m.group(3)
    if kind == "none":
        if num is not None:
            raise UsageError("strategy none takes no count")
        return StrategySpec("none")
    if kind == "parameter-server":
        if num is None or second is None:
            raise UsageError("strategy parameter-server needs WORKERS,PS, e.g. parameter-server:2,2")
        workers, ps = int(num), int(second)
        if not 1 <= workers <= MAX_WORKERS or not 1 <= ps <= MAX_PS:
            raise UsageError(f"parameter-server needs 1 to {MAX_WORKERS} workers and 1 to {MAX_PS} ps "
                             f"tasks, got {workers},{ps}")
        return StrategySpec(kind, workers, ps)
    if num is None or second is not None:
        raise UsageError(f"strategy {kind} needs one count, e.g. {kind}:2")
    n = int(num)
    if kind == "mirrored" and not 1 <= n <= MAX_REPLICAS:
        raise UsageError(f"mirrored needs 1 to {MAX_REPLICAS} logical CPUs, got {n}")
    if kind == "multi-worker" and not 1 <= n <= MAX_WORKERS:
        raise UsageError(f"multi-worker needs 1 to {MAX_WORKERS} worker processes, got {n}")
    return StrategySpec(kind, n)
