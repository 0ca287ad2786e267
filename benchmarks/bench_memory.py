"""What a save's peak memory is made of: the process before the save, and the save itself.

asv's `peakmem_save` is the whole process's peak: TensorFlow's import, the model and
the save together, so a move across TensorFlow versions cannot say which grew. These
tracks split it, from one fresh process per environment (`setup_cache`):
  rss_after_import   RSS right after `import tensorflow` (and the harness)
  rss_before_save    RSS with the model built and initialised, right before the save
  save_growth        peak RSS during the save (the kernel's VmHWM, reset before it) minus
                     rss_before_save
All in MiB; one tf2-checkpoint scenario on CPU at the suite's size.
"""

from .common import SIZES, N_VARS

_MIB = 1 << 20


def _measure() -> dict:
    import psutil

    from harness.tfenv import import_tensorflow

    proc = psutil.Process()
    import_tensorflow()
    after_import = proc.memory_info().rss
    from harness.telemetry.sampler import Sampler

    from .common import session
    s = session("tf2-checkpoint", SIZES[0], N_VARS[0], "cpu")
    s.prepare_save()
    before = proc.memory_info().rss
    with Sampler() as sampler:
        sampler.start()
        s.save_call()
        peak = sampler.stop().peak_rss_bytes
    s.finish_save()
    # no figure from a save that does not restore: poison, restore, judge (after the measurement)
    s.prepare_restore(cold=False)
    s.restore_call()
    verdict = s.verify()
    if not verdict.ok:
        raise RuntimeError(f"restore not complete: {verdict.outcome}: {verdict.detail}")
    return {"rss_after_import": after_import / _MIB, "rss_before_save": before / _MIB,
            "save_growth": max(0, peak - before) / _MIB}


class SaveMemory:
    rounds = 1
    timeout = 600

    def setup_cache(self):
        return _measure()

    def track_rss_after_import(self, m):
        return m["rss_after_import"]
    track_rss_after_import.unit = "MiB"

    def track_rss_before_save(self, m):
        return m["rss_before_save"]
    track_rss_before_save.unit = "MiB"

    def track_save_growth(self, m):
        return m["save_growth"]
    track_save_growth.unit = "MiB"
