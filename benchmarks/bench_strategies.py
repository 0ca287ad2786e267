"""Save and restore time per tf.distribute strategy, on the same state.

Each combination starts a local cluster (harness/distributed: every task a process on
127.0.0.1; `none` and `mirrored` are one process) and runs ROUNDS rounds of `ckpt-harness run
--strategy`: every task sets the state, saves, passes the barrier (multi-worker), restores the
latest checkpoint and fingerprints it; each round is judged, and one not `complete` fails the
combination instead of recording a number.

What is timed, in the chief (the figure reported is the median over the rounds):
  save      CheckpointManager.save (multi-worker: the chief's own save, which runs alongside the
            other workers' saves into workertemp_<i>/; parameter-server: the chief drives the
            ps tasks, which write their shards)
  restore   tf.train.latest_checkpoint + Checkpoint.read + assert_existing_objects_matched
Confounds: every task of a cluster shares this machine's cores (multi-worker:2 runs two
TensorFlow runtimes on 2 cores), gRPC over loopback, and the page cache (the restore reads
what was just written). Cluster start-up is not timed.
"""

from __future__ import annotations

from .common import STRATEGIES, strategy_timings

ROUNDS = 3
N_VARS = 16


class Strategies:
    params = [STRATEGIES, ["1MiB", "16MiB"]]   # both lists append-only (common.py)
    param_names = ["strategy", "state_size"]
    timeout = 1800

    def setup_cache(self):
        # one cluster per combination, for both figures: a start costs seconds, a round far less
        return {(s, size): strategy_timings(s, size, N_VARS, ROUNDS)
                for s in self.params[0] for size in self.params[1]}

    def _get(self, cache, strategy, state_size, what):
        got = cache[(strategy, state_size)]
        if isinstance(got, str):
            raise RuntimeError(got)
        return got[what]

    def track_save_seconds(self, cache, strategy, state_size):
        return self._get(cache, strategy, state_size, "save")
    track_save_seconds.unit = "seconds"

    def track_restore_seconds(self, cache, strategy, state_size):
        return self._get(cache, strategy, state_size, "restore")
    track_restore_seconds.unit = "seconds"
