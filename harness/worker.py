"""The measured process: runs one scenario and reports over its channel.

Started by harness/runner.py through harness/child.py as
`python -m harness.worker FD JOB.json`. Keeping the measured process separate
from the measuring one gives each scenario a fresh TensorFlow (device
configuration, memory peaks, ru_maxrss of its own), and lets the runner kill
it cleanly on Ctrl-C, SIGTERM or a timeout.

Messages (JSON lines on the socket FD; stdout and stderr are the log file):
  {"event": "hello", "tf_version": ..., "gpus": [...], "pid": ...}   TF imported
  {"event": "phase", ...}           progress, one per timed phase
  {"event": "oracle", ...}          the oracle's untimed work in no phase (step "fingerprint" of a
                                    state, "poison" before a restore; wall_seconds)
  {"event": "rows", "rows": [...]}  the finished scenario's rows
  {"event": "error", "kind": "usage"|"resource"|"internal", "message": ...}
An error may come instead of the hello (a bad job fails before TF is imported).
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    from .child import child_channel

    ch = child_channel(argv)
    from .errors import HarnessError, ResourceError
    try:
        with open(argv[1]) as f:
            job = json.load(f)
        from .phases import run_scenario
        from .session import Scenario

        scenario = Scenario.from_dict(job["scenario"])
        from .tfenv import import_tensorflow
        tf = import_tensorflow()
        ch.send({"event": "hello", "tf_version": tf.__version__, "pid": os.getpid(),
                 "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]})
        rows = run_scenario(scenario, job["workdir"], int(job["repeats"]), progress=ch.send)
        ch.send({"event": "rows", "rows": rows})
        return 0
    except HarnessError as e:
        ch.send({"event": "error", "kind": "resource" if isinstance(e, ResourceError) else "usage",
                 "message": str(e)})
        return 2
    except MemoryError:
        ch.send({"event": "error", "kind": "resource", "message": "out of memory"})
        return 3
    except Exception as e:
        import traceback
        traceback.print_exc()  # into the log; the runner quotes its last line
        first = str(e).splitlines()[0] if str(e) else ""
        ch.send({"event": "error", "kind": "internal", "message": f"{type(e).__name__}: {first}"})
        return 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the rows are sent: skip TF's slow interpreter teardown
