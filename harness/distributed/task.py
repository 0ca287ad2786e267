"""One task of a tf.distribute cluster: `python -m harness.distributed.task FD JOB.json`.

Started by harness/distributed/launcher.py through harness/child.py. The job file
names the task ("worker:1"), the strategy, the graph spec, the checkpoint directory,
the environment to run under (TF_CONFIG, no_proxy, GRPC_FAIL_FAST: set here before
TensorFlow is imported), the task's deadline and, for fault injection, a named point
to stop at (`pause_at`).

Messages (JSON lines on FD):
  {"event": "hello", "task", "pid"}                 at once, before TensorFlow is imported
  {"event": "ready", "task", "tf_version", "rows"}  strategy built, variables built (rows:
                                                    the `strategy` and `build` phases)
  {"event": "round", "task", "round", "rows", "digests", "error", "restored"}
                                                    one save/restore round done
  {"event": "paused", "task", "point"}              stopped at `pause_at` (it stays there
                                                    until {"cmd": "continue"} or "exit")
  {"event": "error", "task", "kind", "message"}
Commands: {"cmd": "round", "round": R, "generation": G, "barrier": bool, "delay_save": S,
"pause_at": POINT (optional: stop at that point in this round only)}, {"cmd": "resume"} (restore the
latest checkpoint without saving first; answered by {"event": "resumed", "digests", "error",
"restored"}), {"cmd": "exit"}, and for the chief of parameter-server {"cmd": "connect"} (every server is up:
build the strategy). Under parameter-server the worker and ps tasks only run a gRPC server
(`ready` once it listens) and the chief alone builds, saves, restores and verifies: the
variables live on the ps tasks, each of which writes its own shard of every save.

A round: set every variable to the values of save G; the chief fingerprints them into
`manifest-gG.json`, saves with a CheckpointManager into the checkpoint directory, while a
non-chief saves into `workertemp_<index>/` and deletes it (TF's documented pattern: every
worker takes part in the save, only the chief's is kept); then the barrier (the
coordination service's `wait_at_barrier`) unless the round turns it off; then every task
overwrites its state, restores the directory's latest checkpoint and fingerprints every
variable on every replica it holds. The harness judges those digests (verdict.py).

Points where `pause_at` can stop a task: start, ready, before_save, after_save,
before_restore.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time

POINTS = ("start", "ready", "before_save", "after_save", "before_restore")
MAX_TO_KEEP = 5
WATCHDOG_GRACE_S = 30.0
POISON_GENERATION = 0   # saves are numbered from 1: this state equals no save


def _die_with_parent() -> None:
    """SIGKILL this task when the harness dies, even by SIGKILL (Linux only)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        if os.getppid() == 1:   # the parent died before prctl
            os._exit(1)
    except OSError:
        pass


def _watchdog(seconds: float) -> None:
    """Leave at the task's own deadline, whatever TensorFlow is doing."""
    def run():
        time.sleep(max(0.0, seconds))
        os._exit(124)
    threading.Thread(target=run, name="deadline", daemon=True).start()


class Task:
    def __init__(self, ch, job: dict):
        self.ch, self.job = ch, job
        self.label = job["task"]
        self.pause_at = job.get("pause_at")
        self.round_pause = None   # a point to stop at in the current round only (faults.py)
        self.ckpt_dir = job["ckpt_dir"]

    # -- messages and points -----------------------------------------------------
    def send(self, obj: dict) -> None:
        self.ch.send(dict(obj, task=self.label))

    def point(self, name: str) -> None:
        if name not in (self.pause_at, self.round_pause):
            return
        from ..child import ChannelClosed
        self.send({"event": "paused", "point": name})
        while True:   # stays here until the harness kills its group, lets it go on, or tells it to exit
            try:
                cmd = self.ch.recv()
            except ChannelClosed:
                os._exit(1)
            if cmd.get("cmd") == "continue":   # faults.py has armed strace at a point inside the save
                return
            if cmd.get("cmd") == "exit":
                os._exit(0)

    # -- setup -------------------------------------------------------------------
    def setup(self) -> None:
        from ..specs import GraphSpec, layout
        from ..tfenv import import_tensorflow
        from ..telemetry.sampler import Sampler

        self.tf = tf = import_tensorflow()
        self.spec = GraphSpec.from_dict(self.job["spec"])
        self.variables = layout(self.spec)
        self.kind = self.job["strategy"]["kind"]
        self.count = int(self.job["strategy"]["count"])
        self.sampler = Sampler().__enter__()
        self.rows: list[dict] = []
        self.is_chief = self.label == self.job["chief"]
        if self.kind == "parameter-server" and not self.is_chief:
            self.timed("strategy", 0, self._serve_ps_task)
            self.send({"event": "ready", "tf_version": tf.__version__, "rows": self._take_rows()})
            self.point("ready")
            return
        if self.kind == "parameter-server":   # the harness says when every server is up
            self._wait_for("connect")
        self.timed("strategy", 0, self._make_strategy)
        self.timed("build", 0, self._build)
        self.send({"event": "ready", "tf_version": tf.__version__, "rows": self._take_rows(),
                   "replicas": self.strategy.num_replicas_in_sync, "placement": self.placement()})
        self.point("ready")

    def placement(self) -> dict[str, int]:
        """How many variables live on each task ("ps:1"; "local" for this process's devices)."""
        import re
        counts: dict[str, int] = {}
        for var in self.vars.values():
            m = re.search(r"/job:([^/]+)/replica:\d+/task:(\d+)", var.device or "")
            where = f"{m.group(1)}:{m.group(2)}" if m else "local"
            counts[where] = counts.get(where, 0) + 1
        return counts

    def _wait_for(self, command: str) -> None:
        cmd = self.ch.recv()
        if cmd.get("cmd") == "exit":
            os._exit(0)
        if cmd.get("cmd") != command:
            raise ValueError(f"expected the command {command!r}, got {cmd!r}")

    def _serve_ps_task(self):
        """A worker or ps task of ParameterServerStrategy: a gRPC server the chief drives
        (its threads serve while this task waits for the harness's commands)."""
        tf = self.tf
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        job, index = self.label.split(":")
        self.server = tf.distribute.Server(resolver.cluster_spec(), job_name=job, task_index=int(index),
                                           protocol="grpc", start=True)

    def _make_strategy(self):
        tf = self.tf
        if self.kind == "none":   # the default strategy: the baseline the others are set beside
            self.strategy = tf.distribute.get_strategy()
        elif self.kind == "mirrored":
            from ..devices import configure
            devices = configure(f"multi-cpu:{self.count}") if self.count > 1 else ["/device:CPU:0"]
            self.strategy = tf.distribute.MirroredStrategy(
                devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
        elif self.kind == "multi-worker":
            timeout = self.job["collective_timeout_s"]   # None: TF's default (no timeout)
            options = tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=None if timeout is None else float(timeout))
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        elif self.kind == "parameter-server":
            self.strategy = tf.distribute.experimental.ParameterServerStrategy(
                tf.distribute.cluster_resolver.TFConfigClusterResolver())
        else:
            raise ValueError(f"unknown strategy kind {self.kind!r}")

    def _build(self):
        from ..savers.tf2 import build_module_tree
        tf = self.tf
        with self.strategy.scope():
            self.root, self.vars = build_module_tree(self.variables, lambda _i: None)
        self.ckpt = tf.train.Checkpoint(model=self.root)
        if self.is_chief:
            directory = self.ckpt_dir
        else:   # TF's pattern: a non-chief saves into a temporary dir of its own, then deletes it
            directory = os.path.join(self.ckpt_dir, f"workertemp_{self.label.split(':')[1]}")
        self.save_dir = directory
        self.manager = tf.train.CheckpointManager(self.ckpt, directory, max_to_keep=MAX_TO_KEEP)

    # -- timing ------------------------------------------------------------------
    def timed(self, phase: str, repeat: int, fn, **extra) -> dict:
        self.sampler.start()
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        row = dict(phase=phase, repeat=repeat, seconds=seconds, task=self.label,
                   **self.sampler.stop().as_row(), **extra)
        self.rows.append(row)
        return row

    def _take_rows(self) -> list[dict]:
        rows, self.rows = self.rows, []
        return rows

    # -- one round ---------------------------------------------------------------
    def _assign(self, generation: int) -> None:
        from ..specs import values
        for v in self.variables:
            self.vars[v.name].assign(values(v, self.spec.seed, generation))

    def _save(self, generation: int, delay: float) -> None:
        if self.is_chief and delay > 0:
            time.sleep(delay)   # the planted race: the chief's save finishes late
        self.manager.save(checkpoint_number=generation)
        if not self.is_chief:
            shutil.rmtree(self.save_dir, ignore_errors=True)

    def _barrier(self, round_no: int) -> None:
        from tensorflow.python.eager import context
        timeout = self.job["collective_timeout_s"]
        if timeout is None:   # TF's defaults: no timeout of ours; the task's deadline bounds it
            timeout = float(self.job["deadline_s"]) + WATCHDOG_GRACE_S
        context.context().wait_at_barrier(f"ckpt-harness-save-{round_no}", int(float(timeout) * 1000))

    def _restore(self, out: dict) -> None:
        path = self.tf.train.latest_checkpoint(self.ckpt_dir)
        out["restored"] = os.path.basename(path) if path else None
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {self.ckpt_dir}")
        self.ckpt.read(path).assert_existing_objects_matched()

    def digests(self) -> dict[str, dict[str, str]]:
        """unit -> variable -> fingerprint; a unit is this task, or each of its replicas when it
        holds several (mirrored), labelled `task/replica:i`."""
        from ..judge.manifest import fingerprint
        units: dict[str, dict[str, str]] = {}
        for name, var in self.vars.items():
            parts = list(getattr(var, "values", (var,)))
            for i, part in enumerate(parts):
                unit = self.label if len(parts) == 1 else f"{self.label}/replica:{i}"
                units.setdefault(unit, {})[name] = fingerprint(part.numpy())
        return units

    def run_round(self, cmd: dict) -> None:
        from ..judge.core import error_summary
        from ..judge.manifest import Manifest

        r, gen = int(cmd["round"]), int(cmd["generation"])
        self.round_pause = cmd.get("pause_at")
        self.timed("init", r, lambda: self._assign(gen))
        if self.is_chief:   # what is saved, fingerprinted before the save (untimed)
            Manifest.from_values(((n, v.numpy()) for n, v in self.vars.items()),
                                 api="tf2-manager", generation=gen, seed=self.spec.seed).write(
                self.ckpt_dir, name=f"manifest-g{gen}.json", durable=False)
        self.point("before_save")
        self.timed("save", r, lambda: self._save(gen, float(cmd.get("delay_save", 0))))
        self.point("after_save")
        if cmd.get("barrier", True) and self.kind == "multi-worker":
            self.timed("barrier", r, lambda: self._barrier(r))
        self._assign(POISON_GENERATION)   # a restore that writes nothing cannot pass
        self.point("before_restore")
        out: dict = {"error": None, "restored": None}

        def restore():
            try:
                self._restore(out)
            except Exception as e:   # a failed restore is a verdict, not a dead task
                out["error"] = error_summary(e, self.ckpt_dir)
        self.timed("restore_warm", r, restore)
        digests = {}
        self.timed("verify", r, lambda: digests.update(self.digests()))
        self.send({"event": "round", "round": r, "generation": gen, "rows": self._take_rows(),
                   "digests": digests, **out})

    def resume(self) -> None:
        """A restart after a fault: restore the directory's latest checkpoint into a poisoned
        state and report what every replica holds (no save first)."""
        from ..judge.core import error_summary
        self._assign(POISON_GENERATION)
        out: dict = {"error": None, "restored": None}
        try:
            self._restore(out)
        except Exception as e:   # a failed restore is a verdict, not a dead task
            out["error"] = error_summary(e, self.ckpt_dir)
        self.send({"event": "resumed", "digests": self.digests(), **out})

    def serve(self) -> None:
        while True:
            cmd = self.ch.recv()
            if cmd.get("cmd") == "exit":
                return
            if cmd.get("cmd") == "round":
                self.run_round(cmd)
            elif cmd.get("cmd") == "resume":
                self.resume()
            else:
                raise ValueError(f"unknown command {cmd!r}")


def main(argv: list[str]) -> int:
    from ..child import ChannelClosed, child_channel

    ch = child_channel(argv)
    with open(argv[1]) as f:
        job = json.load(f)
    _die_with_parent()
    # the harness's deadline comes first and reports it; this one is for a harness that is gone
    _watchdog(float(job["deadline_s"]) + WATCHDOG_GRACE_S
              - (time.time() - float(job.get("started_at", time.time()))))
    os.environ.update(job.get("env", {}))   # TF_CONFIG, no_proxy, GRPC_FAIL_FAST: before TF
    task = Task(ch, job)
    try:
        task.send({"event": "hello", "pid": os.getpid()})
        task.point("start")
        task.setup()
        task.serve()
        return 0
    except ChannelClosed:
        return 1   # the harness went away
    except Exception as e:
        import traceback
        traceback.print_exc()   # into the log
        first = str(e).splitlines()[0] if str(e) else ""
        try:
            task.send({"event": "error", "kind": "internal", "message": f"{type(e).__name__}: {first}"})
        except ChannelClosed:
            pass
        return 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)   # skip TF's slow teardown (and its collective shutdown hangs)
