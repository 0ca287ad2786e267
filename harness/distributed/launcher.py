"""A local tf.distribute cluster: every task a process of its own on 127.0.0.1.

`LocalCluster` picks a free port per task (bind to port 0, all held until every port
is chosen so two tasks never get the same one), writes one job file per task (its
TF_CONFIG and the environment it must run under) and starts each task with
harness/child.py's `Child` (`python -m harness.distributed.task FD JOB`): a session
and process group of its own, a socket channel to the harness, its output in a log.

Guarantees, whatever way the harness leaves (a normal close, an exception, the
cluster's wall-clock deadline, Ctrl-C or SIGTERM turned into KeyboardInterrupt by
`sigterm_as_interrupt`): every task's process group is SIGKILLed and every task
reaped before `close()` returns; the job files and logs live in a directory the
caller owns. Tasks also guard themselves (harness/distributed/task.py): they die
with the harness (PR_SET_PDEATHSIG) and exit at their own deadline.

Every receive is bounded by the deadline: `ClusterTimeout` (a TimeoutError) when it
passes, so a cluster whose tasks hang inside TensorFlow never hangs the harness.

The environment each task gets on top of the harness's: TF_CONFIG, no_proxy and
NO_PROXY for loopback (a set http_proxy hung gRPC start-up) and
GRPC_FAIL_FAST=use_caller. The task sets them before it imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

from ..child import ChannelClosed, Child, ChildFailed, exit_text

TASK_MODULE = "harness.distributed.task"
HOST = "127.0.0.1"
LOOPBACK_ENV = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
                "GRPC_FAIL_FAST": "use_caller"}


class ClusterTimeout(TimeoutError):
    """The cluster's wall-clock deadline passed while the harness waited for a task."""


class TaskFailed(RuntimeError):
    """A task died, closed its channel or reported an error."""

    def __init__(self, task: str, message: str):
        super().__init__(f"{task}: {message}")
        self.task = task


@dataclass(frozen=True)
class TaskId:
    job: str     # "chief", "worker" or "ps"
    index: int

    @property
    def label(self) -> str:
        return f"{self.job}:{self.index}"


def free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 right now (each socket is held until all are chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster_spec(tasks: list[TaskId], ports: list[int]) -> dict:
    spec: dict[str, list[str]] = {}
    for t, port in zip(tasks, ports):
        spec.setdefault(t.job, []).append(f"{HOST}:{port}")
    return spec


class LocalCluster:
    """Start `tasks` (in-process strategies use one task and no TF_CONFIG), talk to them, and
    kill them all on close. `job` is what every task gets (the scenario, the strategy...);
    `deadline` the wall-clock seconds the whole cluster may live; `per_task` adds entries to
    one task's job (by label), such as a point to stop at."""

    def __init__(self, tasks: list[TaskId], job: dict, workdir: str, deadline: float,
                 use_tf_config: bool = True, module: str = TASK_MODULE,
                 per_task: dict[str, dict] | None = None):
        if not tasks:
            raise ValueError("a cluster needs at least one task")
        self.tasks = list(tasks)
        self.job = job
        self.workdir = workdir
        self.deadline_s = float(deadline)
        self.use_tf_config = use_tf_config
        self.module = module
        self.per_task = per_task or {}   # label -> extra job entries (e.g. pause_at) for that task
        self.children: dict[str, Child] = {}
        self.pids: dict[str, int] = {}
        self.deadline = None

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.tasks]

    def log_path(self, label: str) -> str:
        return os.path.join(self.workdir, f"task-{label.replace(':', '-')}.log")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def start(self) -> None:
        """Start every task and wait for each one's hello (sent before it imports
        TensorFlow, so the tasks import it side by side). On any failure, or Ctrl-C,
        the tasks started so far are killed before this raises."""
        os.makedirs(self.workdir, exist_ok=True)
        self.deadline = time.monotonic() + self.deadline_s
        ports = free_ports(len(self.tasks))
        spec = cluster_spec(self.tasks, ports)
        try:
            for t in self.tasks:
                env = dict(LOOPBACK_ENV)
                if self.use_tf_config:
                    env["TF_CONFIG"] = json.dumps({"cluster": spec, "task": {"type": t.job, "index": t.index}})
                job = dict(self.job, **self.per_task.get(t.label, {}), task=t.label, env=env,
                           deadline_s=self.deadline_s, started_at=time.time())
                path = os.path.join(self.workdir, f"job-{t.label.replace(':', '-')}.json")
                with open(path, "w") as f:
                    json.dump(job, f)
                child = Child(self.module, self.log_path(t.label), args=(path,), what=f"task {t.label}")
                self.children[t.label] = child
                try:
                    hello = child.start(max(1.0, self.remaining()))
                except ChildFailed as e:
                    if e.timed_out:
                        raise ClusterTimeout(f"task {t.label} did not start within the deadline") from None
                    raise TaskFailed(t.label, str(e)) from None
                self._check(t.label, hello)
                self.pids[t.label] = child.pid
        except BaseException:
            self.close(grace=0)
            raise

    def _check(self, label: str, msg: dict) -> dict:
        if msg.get("event") == "error":
            raise TaskFailed(label, msg.get("message", "error"))
        return msg

    def send(self, label: str, obj: dict) -> None:
        try:
            self.children[label].send(obj)
        except ChannelClosed:
            raise TaskFailed(label, self._death(label)) from None

    def send_all(self, obj: dict, labels=None) -> None:
        for label in self.labels if labels is None else labels:
            self.send(label, obj)

    def recv(self, label: str) -> dict:
        """The next message of one task, within the deadline; its error messages raise."""
        left = self.remaining()
        if left <= 0:
            raise ClusterTimeout(f"the cluster's deadline of {self.deadline_s:.0f}s passed")
        try:
            msg = self.children[label].recv(left)
        except TimeoutError:
            raise ClusterTimeout(f"the cluster's deadline of {self.deadline_s:.0f}s passed "
                                 f"waiting for {label}") from None
        except ChannelClosed:
            raise TaskFailed(label, self._death(label)) from None
        return self._check(label, msg)

    def recv_event(self, label: str, event: str, on_other=None) -> dict:
        """Messages of one task up to the first of kind `event` (others go to `on_other`)."""
        while True:
            msg = self.recv(label)
            if msg.get("event") == event:
                return msg
            if on_other is not None:
                on_other(label, msg)

    def gather(self, event: str, on_other=None, labels=None) -> dict[str, dict]:
        """One `event` message from every task (or those of `labels`), by task label."""
        return {label: self.recv_event(label, event, on_other)
                for label in (self.labels if labels is None else labels)}

    def _death(self, label: str) -> str:
        child = self.children[label]
        code = child.wait(2.0)
        tail = child.log_tail()
        return f"ended ({exit_text(code)})" + (f": {tail}" if tail else "") + f"; log: {child.log_path}"

    def close(self, grace: float = 5.0) -> dict[str, int | None]:
        """Ask every task to exit, give them `grace` seconds together, then SIGKILL every
        task's process group and reap each task. Returns each task's exit status."""
        codes = {}
        if grace > 0:
            for child in self.children.values():
                if child.hello and child.ch is not None and child.proc.poll() is None:
                    try:
                        child.send({"cmd": "exit"})
                    except ChannelClosed:
                        pass
            end = time.monotonic() + grace
            for child in self.children.values():
                child.wait(max(0.0, end - time.monotonic()))
        for label, child in self.children.items():
            codes[label] = child.kill()
        return codes

    def __enter__(self) -> "LocalCluster":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # after an error or an interrupt nothing is asked: the tasks may be stuck in TF
        self.close(grace=5.0 if exc_type is None else 0)
