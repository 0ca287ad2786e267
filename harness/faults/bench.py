"""Crash-state checking speed, for the asv track benchmark and the closing figures.

`states_per_second` runs one small crash campaign and returns the distinct
states judged per second of checking (materialize + restore attempts +
compare + case folder). TensorFlow's start-up in the two child processes is
excluded: it is paid once per run, not per state. The target is >= 20 states/s
for a small checkpoint on a 2-core machine.
"""

from __future__ import annotations

import shutil
import tempfile

from ..specs import GraphSpec
from ..units import parse_size


def states_per_second(api: str = "tf2-manager", mode: str = "trace", model: str = "power",
                      size: str = "256KiB", n_vars: int = 16, trials: int = 4, seed: int = 0,
                      index_offsets: int | None = 64) -> float:
    """States/s of one quiet campaign in `mode`. Trace needs strace: without it this raises
    (ResourceError) rather than measure another mode under the same name."""
    from . import strace
    from .campaign import Campaign, CrashConfig

    if mode == "trace":
        strace.require()
    out = tempfile.mkdtemp(prefix="ckpt-crash-bench-")
    try:
        cfg = CrashConfig(mode=mode, apis=(api,), model=model if mode == "trace" else "process",
                          trials=trials, seed=seed,
                          spec=GraphSpec(n_vars=n_vars, state_bytes=parse_size(size), seed=seed),
                          out=out, quiet=True, index_offsets=index_offsets)
        return Campaign(cfg).run().states_per_second
    finally:
        shutil.rmtree(out, ignore_errors=True)
