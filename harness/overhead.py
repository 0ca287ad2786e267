"""How much the harness adds to what it measures.

Interleaves a bare `tf.train.Checkpoint.write` of the live variables with the
harness's own timed save phase (telemetry sampler running) on the same state,
and reports two ratios of medians: the save time the harness reports, and the
whole phase's wall time (bracketing, manifest file, cleanup included).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time

from .session import Scenario, ScenarioSession
from .specs import GraphSpec
from .telemetry.sampler import Sampler


def measure(spec: GraphSpec, repeats: int, workdir: str) -> dict:
    import tensorflow as tf

    bare, harness, reported = [], [], []
    with ScenarioSession(Scenario("tf2-checkpoint", "cpu", spec), workdir) as session:
        session.build()
        session.init()
        session.save()  # first save also records the manifest: keep it out of the comparison
        ckpt = tf.train.Checkpoint(model=session.adapter.root)
        with Sampler() as sampler:
            def bare_write(i):
                bare_dir = os.path.join(workdir, f"bare-{i}")
                t0 = time.perf_counter()
                ckpt.write(os.path.join(bare_dir, "ckpt"))
                bare.append(time.perf_counter() - t0)
                shutil.rmtree(bare_dir, ignore_errors=True)

            def harness_save(i):
                t0 = time.perf_counter()
                sampler.start()
                reported.append(session.save().done_seconds)
                sampler.stop()
                harness.append(time.perf_counter() - t0)

            for i in range(repeats):
                # alternate who goes first, and start each from a clean page cache (sync, untimed),
                # so neither pays for the other's write-back
                for step in ((bare_write, harness_save) if i % 2 == 0 else (harness_save, bare_write)):
                    os.sync()
                    step(i)
        state = session.state_bytes
    return {
        "state_bytes": state,
        "repeats": repeats,
        "bare_median_s": statistics.median(bare),
        # what the harness reports as the save phase, vs the bare loop
        "bare_min_s": min(bare),
        "reported_min_s": min(reported),
        "reported_median_s": statistics.median(reported),
        "reported_ratio": statistics.median(reported) / statistics.median(bare),
        # the whole phase as the harness runs it (sampler, bracketing, manifest file, cleanup)
        "phase_wall_median_s": statistics.median(harness),
        "phase_wall_ratio": statistics.median(harness) / statistics.median(bare),
    }
