"""The measured process: runs one scenario and reports on a JSON-lines channel.

Started by harness/runner.py as `python -m harness.worker JOB.json`. Keeping the
measured process separate from the measuring one gives each scenario a fresh
TensorFlow (device configuration, memory peaks, ru_maxrss of its own), and lets
the runner kill it cleanly on Ctrl-C or a timeout.

Channel (one JSON object per line, on the original stdout):
  {"event": "hello", "tf_version": ..., "devices": [...]}
  {"event": "phase", ...}           progress, one per timed phase
  {"event": "rows", "rows": [...]}  the finished scenario's rows
  {"event": "error", "kind": "usage"|"resource"|"internal", "message": ...}
"""

from __future__ import annotations

import json
import os
import sys


def _channel():
    # TF and friends may print to fd 1; keep the channel clean by moving it aside
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    chan = _channel()

    def send(obj):
        chan.write(json.dumps(obj, default=str) + "\n")
        chan.flush()

    from .errors import HarnessError, ResourceError
    try:
        with open(argv[0]) as f:
            job = json.load(f)
        from .phases import run_scenario
        from .session import Scenario

        scenario = Scenario.from_dict(job["scenario"])
        from .tfenv import import_tensorflow
        tf = import_tensorflow()
        send({"event": "hello", "tf_version": tf.__version__,
              "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]})
        rows = run_scenario(scenario, job["workdir"], int(job["repeats"]), progress=send)
        send({"event": "rows", "rows": rows})
        return 0
    except HarnessError as e:
        send({"event": "error", "kind": "resource" if isinstance(e, ResourceError) else "usage", "message": str(e)})
        return 2
    except MemoryError:
        send({"event": "error", "kind": "resource", "message": "out of memory"})
        return 3
    except Exception as e:
        import traceback
        traceback.print_exc()  # to stderr, which the runner keeps in a log file
        send({"event": "error", "kind": "internal", "message": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
