"""The saving process: a zygote that imports TensorFlow once and forks one trial
process per crash trial.

Each trial makes saves 1..k-1 of a CrashTarget, then save k on command; that
save is what the harness kills, traces or starves of disk. Forking after the
import (before any TF op runs) turns a ~5 s start into a fraction of a second,
which is what makes dozens of kill trials affordable.

Run as `python -m harness.faults.saver_child FD` by harness/child.py; FD is
its channel to the harness (harness/faults/saver_control.py drives it). Trial
sockets arrive over it with SCM_RIGHTS.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time


def _finish_pending(adapter) -> None:
    pending = getattr(adapter, "finish_pending", None)
    if pending is not None:
        pending()


def _save(adapter, directory: str, generation: int):
    if adapter.api == "tf1-saver":
        adapter.options["save_step"] = generation  # model.ckpt-<g>, as training code does
    t0 = time.perf_counter()
    result = adapter.save(directory)
    return result, time.perf_counter() - t0


class Trial:
    """One trial: its own adapter, its own state directory."""

    def __init__(self, channel, target):
        self.ch = channel
        self.target = target
        self.adapter = None

    def prepare(self, msg: dict) -> dict:
        from ..judge.manifest import Manifest
        from .target import manifest_name

        if self.adapter is not None:
            self.adapter.close()
        self.adapter = self.target.make_adapter()
        directory, manifests = msg["dir"], msg["manifest_dir"]
        os.makedirs(manifests, exist_ok=True)
        seconds = 0.0
        paths = []
        for g in range(1, self.target.k):
            self.adapter.init(g)
            Manifest.from_adapter(self.adapter, generation=g).write(manifests, manifest_name(g))
            result, seconds = _save(self.adapter, directory, g)
            paths.append(result.path)
        _finish_pending(self.adapter)  # an async save k-1 is on disk before save k starts
        k = self.target.k
        self.adapter.init(k)  # save k's values, not yet saved
        Manifest.from_adapter(self.adapter, generation=k).write(manifests, manifest_name(k))
        return {"ok": True, "paths": paths, "save_seconds": seconds}

    def save(self, msg: dict) -> dict:
        from ..judge.core import error_summary
        from .state import normalize_name

        limit = msg.get("fsize_limit")
        old = resource.getrlimit(resource.RLIMIT_FSIZE)
        if limit:
            # a write past the limit fails with EFBIG instead of killing us with SIGXFSZ
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), old[1]))
        try:
            result, seconds = _save(self.adapter, msg["dir"], self.target.k)
            if hasattr(self.adapter, "finish_pending"):
                # an async save returned with its write still going on: say so now (a kill may be
                # planned for this moment), then wait for the write to end
                self.ch.send({"event": "returned", "path": result.path, "seconds": seconds})
                t0 = time.perf_counter()
                self.adapter.finish_pending()
                return {"ok": True, "path": result.path, "seconds": seconds,
                        "done_seconds": seconds + time.perf_counter() - t0}
            return {"ok": True, "path": result.path, "seconds": seconds}
        except Exception as e:  # the save's own error is the finding (disk full)
            return {"ok": False, "error": normalize_name(error_summary(e, msg["dir"]))}
        finally:
            if limit:
                resource.setrlimit(resource.RLIMIT_FSIZE, old)

    def plant(self, msg: dict) -> dict:
        from .planted import rewrite_checkpoint

        changed = rewrite_checkpoint(msg["prefix"], msg["kind"], self.target.api)
        return {"ok": True, "changed": changed}

    def serve(self) -> None:
        from ..child import ChannelClosed

        handlers = {"prepare": self.prepare, "save": self.save, "plant": self.plant}
        while True:
            try:
                msg = self.ch.recv()
            except ChannelClosed:
                return
            cmd = msg.get("cmd")
            if cmd == "exit":
                return
            if cmd == "go":  # the harness is ready (e.g. strace attached): start save k
                msg = {**msg.get("save", {}), "cmd": "save"}
                cmd = "save"
            try:
                reply = handlers[cmd](msg)
            except Exception as e:
                from ..judge.core import error_summary
                reply = {"ok": False, "error": error_summary(e)}
            self.ch.send({"cmd": cmd, **reply})


def _run_trial(fd: int, target_dict: dict) -> None:
    from ..child import Channel
    from .target import CrashTarget

    code = 0
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # SIGINT trials: KeyboardInterrupt
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        Trial(Channel.from_fd(fd), CrashTarget.from_dict(target_dict)).serve()
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _reap(pid: int, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return {"status": None, "gone": True}
        if done:
            return {"status": os.waitstatus_to_exitcode(status)}
        if time.monotonic() > deadline:
            return {"status": None}
        time.sleep(0.005)


def main(argv: list[str]) -> int:
    from ..child import ChannelClosed, child_channel

    ch = child_channel(argv)
    import tensorflow as tf  # once, before any fork; no op runs here

    from .. import devices  # noqa: F401  (imported now so trials fork with it loaded)
    from ..judge import manifest, restore  # noqa: F401
    from ..savers import get_adapter
    from . import planted  # noqa: F401
    for api in ("tf2-manager", "tf1-saver", "keras-weights", "keras-model", "savedmodel"):
        get_adapter(api)
    try:
        tf.keras.Model  # noqa: B018  (loads Keras now: trials of the Keras targets fork with it)
    except Exception:  # no usable Keras: only the Keras targets will fail, with their own error
        pass
    ch.send({"event": "hello", "tf_version": tf.__version__, "pid": os.getpid()})
    while True:
        try:
            msg, fd = ch.recv_with_fd()
        except ChannelClosed:
            break
        cmd = msg.get("cmd")
        if cmd == "fork":
            pid = os.fork()
            if pid == 0:
                ch.close()
                _run_trial(fd, msg["target"])
            os.close(fd)
            ch.send({"pid": pid})
        elif cmd == "wait":
            ch.send(_reap(int(msg["pid"]), float(msg.get("timeout", 10))))
        elif cmd == "exit":
            break
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # skip TF's slow interpreter teardown: nothing is left to flush
