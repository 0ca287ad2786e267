"""The measured child of syscalls.py: one scenario, one save to be traced.

`python -m harness.profile.save_child FD JOB.json` (started through harness/child.py).
It builds and initialises the scenario, makes one untimed save first (TensorFlow's one-time
costs: kernels, save functions), prepares the traced save (previous one removed, os.sync),
then says "ready" with its pid. The parent attaches `strace -c` and answers "go"; the child
makes the save call alone and reports its wall time, then waits for "exit".

Messages: hello {tf_version, pid}; {"event": "ready", "pid"}; {"event": "saved", "seconds",
"state_bytes"}; or {"event": "error", "message"}.
"""

from __future__ import annotations

import json
import os
import sys
import time

WAIT = 600.0   # seconds for the parent's next word (attaching strace to a busy process is slow)


def main(argv: list[str]) -> int:
    from ..child import child_channel

    ch = child_channel(argv)
    session = None
    try:
        with open(argv[1]) as f:
            job = json.load(f)
        from ..session import Scenario, ScenarioSession
        from ..tfenv import import_tensorflow

        scenario = Scenario.from_dict(job["scenario"])
        tf = import_tensorflow()
        ch.send({"event": "hello", "tf_version": tf.__version__, "pid": os.getpid()})
        session = ScenarioSession(scenario, job["workdir"])
        session.build()
        session.init()
        session.save()           # untimed, untraced: the process's first save pays one-time costs
        session.make_durable()
        session.prepare_save()   # removes that save and syncs, as a timed save starts
        ch.send({"event": "ready", "pid": os.getpid()})
        if ch.recv(WAIT).get("cmd") != "go":
            return 0
        t0 = time.perf_counter()
        session.save_call()
        seconds = time.perf_counter() - t0
        ch.send({"event": "saved", "seconds": seconds, "state_bytes": session.state_bytes})
        ch.recv(WAIT)            # "exit" once the parent has detached strace
        return 0
    except Exception as e:
        import traceback
        traceback.print_exc()    # into the log
        first = str(e).splitlines()[0] if str(e) else ""
        try:
            ch.send({"event": "error", "message": f"{type(e).__name__}: {first}"})
        except Exception:
            pass
        return 1
    finally:
        if session is not None:
            session.close()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
