"""The long-lived checking process: one TensorFlow import, many restores.

Restoring each crash state in a fresh Python would pay TF's import (seconds)
per state. The worker instead keeps one adapter per target and, per state:
asks the API for its latest checkpoint, poisons the live variables, restores,
and compares fingerprints with the manifests of every save; if the latest
fails it tries the older checkpoints still on disk. classify.decide() turns the
attempts into an outcome.

The harness side (`Checker`) gives every state a timeout. A worker that dies
mid-restore makes that state `crash`, one that overruns makes it `hang`; either
way it is killed with its process group and a fresh one starts for the next
state. Restore attempts are cached by the content digest of the checkpoint's
files: the same bytes restore the same way, and most states share their older
checkpoints.

Run as `python -m harness.faults.checker FD` by harness/child.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

from ..child import ChannelClosed, Child, ChildOwner, child_channel, exit_text
from ..outcomes import Outcome, Verdict, worst
from .apis import finders
from .classify import Attempt, decide
from .target import CrashTarget, manifest_name

DEFAULT_TIMEOUT = 60.0
WARM_TIMEOUT = 180.0   # building a target's model the first time


# -- worker side (TensorFlow imported) ------------------------------------------------
class _Context:
    def __init__(self):
        self.adapters = {}
        self.manifests = {}
        self.attempts = {}   # (target key, prefix digest) -> Attempt as dict

    def adapter(self, target: CrashTarget):
        key = json.dumps(target.to_dict(), sort_keys=True)
        if key not in self.adapters:
            self.adapters[key] = target.make_adapter()
        return key, self.adapters[key]

    def manifest_set(self, directory: str, k: int) -> dict:
        from ..judge.manifest import Manifest

        if directory not in self.manifests:
            self.manifests[directory] = {g: Manifest.load(os.path.join(directory, manifest_name(g)))
                                         for g in range(1, k + 1)}
        return self.manifests[directory]


def _judge_values(adapter, manifests: dict, k: int) -> tuple[int | None, str]:
    """(the completed save the live state equals, or None with the judge's account of how it
    differs from save k and from save k-1)."""
    from ..judge.core import judge
    from ..judge.restore import expected_digests, live_fingerprints

    uninit = set(adapter.uninitialized())
    live = live_fingerprints(adapter, skip=uninit)
    verdicts = {}
    for g in range(k, 0, -1):
        v = judge(expected_digests(manifests[g]), live, uninitialized=uninit)
        if v.outcome is Outcome.COMPLETE:
            return g, ""
        verdicts[g] = v
    return None, "; ".join(f"vs save {g}: {verdicts[g].detail}" for g in (k, k - 1) if g in verdicts)


def _attempt(ctx, key, adapter, state_dir, rel, digest, manifests, k, channel) -> Attempt:
    from ..judge.core import error_summary
    from .state import normalize_name

    cache_key = (key, id(manifests), digest) if digest else None
    if cache_key in ctx.attempts:
        return Attempt.from_dict({**ctx.attempts[cache_key], "path": rel})
    channel.send({"event": "attempt", "path": rel})
    adapter.poison_fast()
    try:
        adapter.restore(os.path.join(state_dir, rel))
    except Exception as e:  # a failed restore is a finding
        att = Attempt(rel, False, normalize_name(error_summary(e, state_dir)))
    else:
        try:
            gen, why = _judge_values(adapter, manifests, k)
            att = Attempt(rel, True, generation=gen, mismatch=why)
        except Exception as e:  # reading values back failed: the restore did not really work
            att = Attempt(rel, False, "after restore: " + normalize_name(error_summary(e, state_dir)))
    if cache_key:
        ctx.attempts[cache_key] = att.to_dict()
    return att


def _sort_key(rel: str):
    tail = rel.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else -1, rel)


def _finders(target: CrashTarget, adapter) -> list[tuple[str, object]]:
    """[(name, find(directory) -> path or None)]: each way a user finds the latest checkpoint;
    name '' for the adapter's own latest() when the API has no other."""
    names = finders(target.api)
    if not names:
        return [("", adapter.latest)]
    import tensorflow as tf

    table = {
        "tf.train.latest_checkpoint": tf.train.latest_checkpoint,
        # the path the `checkpoint` file names, not checked for existence (restore_or_initialize uses it)
        "CheckpointManager.latest_checkpoint": lambda d: tf.train.CheckpointManager(
            adapter.ckpt, d, max_to_keep=target.max_to_keep).latest_checkpoint,
    }
    return [(n, table[n]) for n in names]


def _judge_with(find, ctx, key, adapter, state_dir, digests, manifests, k, channel, memo: dict) -> dict:
    """Verdict and attempts for one way of finding the latest checkpoint. `memo` holds the
    state's attempts by path, so a path two finders both try is restored once."""
    from ..judge.core import error_summary
    from .state import normalize_name

    def attempt(rel: str, digest) -> Attempt:
        if rel not in memo:
            memo[rel] = _attempt(ctx, key, adapter, state_dir, rel, digest, manifests, k, channel)
        return memo[rel]

    latest_rel, latest_error, latest = None, "", None
    try:
        found = find(state_dir)
        if found:
            latest_rel = os.path.relpath(found, state_dir)
            if latest_rel.startswith(".."):  # judge the state's own files only
                latest_rel, latest_error = None, f"the checkpoint state file points outside the directory: {found}"
    except Exception as e:  # e.g. an unreadable `checkpoint` state file
        latest_error = normalize_name(error_summary(e, state_dir))
    if latest_rel is not None:
        latest = attempt(latest_rel, digests.get(latest_rel))
    older = []
    if latest is None or not latest.restored:
        for rel in sorted(digests, key=_sort_key, reverse=True):
            if rel == latest_rel:
                continue
            att = attempt(rel, digests[rel])
            older.append(att)
            if att.restored and att.generation is not None:
                break
    verdict = decide(k, latest, latest_error, older)
    if verdict.outcome is Outcome.ROLLBACK:   # the new save may be whole on disk, only not named
        for rel in sorted((r for r in digests if _sort_key(r) > _sort_key(latest_rel)), key=_sort_key, reverse=True):
            att = attempt(rel, digests[rel])
            if att.restored and att.generation == k:
                verdict = Verdict(verdict.outcome, f"{verdict.detail}; {rel} on disk holds save {k} whole, but "
                                  f"the checkpoint file does not name it: recoverable by hand (restore {rel})")
                break
    return {"verdict": verdict, "latest": latest, "latest_error": latest_error, "older": older}


def check_state(ctx: _Context, req: dict, channel) -> dict:
    target = CrashTarget.from_dict(req["target"])
    key, adapter = ctx.adapter(target)
    k = target.k
    manifests = ctx.manifest_set(req["manifest_dir"], k)
    state_dir = req["state_dir"]
    digests = req.get("prefix_digests", {})
    memo: dict = {}
    judged = [(name, _judge_with(find, ctx, key, adapter, state_dir, digests, manifests, k, channel, memo))
              for name, find in _finders(target, adapter)]
    bad = worst(j["verdict"].outcome for _, j in judged)
    name, pick = next((n, j) for n, j in judged if j["verdict"].outcome is bad)
    detail = pick["verdict"].detail
    if len(judged) > 1:   # name the finder behind the verdict, and what the others made of the state
        others = ", ".join(f"{n}: {j['verdict'].outcome.value}" for n, j in judged if n != name)
        detail = f"found by {name}: {detail} [{others}]"
    latest = pick["latest"]
    return {"event": "result", "outcome": bad.value, "detail": detail,
            "latest": latest.to_dict() if latest else None, "latest_error": pick["latest_error"],
            "older": [a.to_dict() for a in pick["older"]],
            "finders": {n: j["verdict"].outcome.value for n, j in judged if n}}


def worker_main(argv: list[str]) -> int:
    channel = child_channel(argv)
    import tensorflow as tf

    ctx = _Context()
    channel.send({"event": "hello", "tf_version": tf.__version__, "pid": os.getpid()})
    while True:
        try:
            req = channel.recv()
        except ChannelClosed:
            return 0
        if req.get("cmd") == "exit":
            return 0
        if req.get("cmd") == "warm":  # build the model now, outside any timed check
            try:
                ctx.adapter(CrashTarget.from_dict(req["target"]))
                channel.send({"event": "warm"})
            except Exception as e:
                from ..judge.core import error_summary
                channel.send({"event": "failed", "error": error_summary(e)})
            continue
        try:
            channel.send(check_state(ctx, req, channel))
        except ChannelClosed:
            return 0
        except Exception as e:  # a bug or a bad request: report, stay alive
            from ..judge.core import error_summary
            channel.send({"event": "failed", "error": error_summary(e)})


# -- harness side -------------------------------------------------------------------------
class Checker(ChildOwner):
    """Client of one worker process; replaces the worker when it dies or hangs."""

    def __init__(self, log_path: str, timeout: float = DEFAULT_TIMEOUT):
        self.log_path = log_path
        self.timeout = timeout
        self.child = None
        self.tf_version = ""
        self.restarts = 0
        self.checked = 0
        self.busy_seconds = 0.0

    def start(self) -> "Checker":
        if self.child is not None:
            return self
        from .saver_control import start_tf_child

        # held before it is up, so that close() from another thread can stop a start
        self.child = Child("harness.faults.checker", self.log_path, what="checking")
        try:
            self.tf_version = start_tf_child(self.child).get("tf_version", "")
        except BaseException:
            self.child = None
            raise
        return self

    def _kill(self) -> int | None:
        code = self.child.kill() if self.child is not None else None
        self.child = None
        return code

    def warm(self, target: CrashTarget) -> None:
        """Build the target's model in the worker ahead of the first state."""
        self.start()
        self.ch.send({"cmd": "warm", "target": target.to_dict()})
        msg = self.ch.recv(WARM_TIMEOUT)
        if msg.get("event") != "warm":
            raise RuntimeError(f"the checker could not build {target.api}: {msg.get('error')}")

    def check(self, target: CrashTarget, state_dir: str, manifest_dir: str,
              prefix_digests: dict[str, str]) -> tuple[Verdict, dict]:
        """Outcome of one materialized state, and the attempts behind it."""
        self.start()
        req = {"cmd": "check", "target": target.to_dict(), "state_dir": os.path.abspath(state_dir),
               "manifest_dir": os.path.abspath(manifest_dir), "prefix_digests": prefix_digests}
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        current = "the latest checkpoint"
        try:
            self.ch.send(req)
            while True:
                msg = self.ch.recv(deadline - time.monotonic())
                if msg.get("event") == "attempt":
                    current = msg["path"]
                    continue
                if msg.get("event") == "failed":
                    raise RuntimeError(f"checker failed on {state_dir}: {msg.get('error')}")
                return Verdict(Outcome(msg["outcome"]), msg["detail"]), msg
        except TimeoutError:
            self._kill()
            self.restarts += 1
            return Verdict(Outcome.HANG, f"restoring {current} did not finish within {self.timeout:.0f}s "
                                         f"(checker killed)"), {}
        except ChannelClosed:
            self.child.wait(5)   # let it finish dying: its own exit status, not our SIGKILL
            log_tail = self.child.log_tail()
            code = self._kill()
            self.restarts += 1
            return Verdict(Outcome.CRASH, f"the restoring process died ({exit_text(code)}) while restoring "
                                          f"{current}" + (f": {log_tail}" if log_tail else "")), {}
        finally:
            self.checked += 1
            self.busy_seconds += time.monotonic() - t0

    def close(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == "__main__":
    code = worker_main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # skip TF's slow interpreter teardown: nothing is left to flush
