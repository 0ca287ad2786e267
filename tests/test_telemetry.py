"""Per-phase telemetry: peaks belong to their phase, and no thread competes with the phase.

No TensorFlow here: the sampler measures the process it runs in, whatever that does.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from harness.telemetry import sampler

_MIB = 1 << 20
kernel_only = pytest.mark.skipif(not sampler.reset_peak_rss(),
                                 reason="this kernel refuses to reset the peak RSS (/proc/self/clear_refs)")


def _touch(n_bytes: int) -> None:
    """Make the process's RSS rise by n_bytes for a moment, then give it back."""
    a = np.ones(n_bytes // 8, dtype=np.float64)
    assert a[-1] == 1.0
    del a


@kernel_only
def test_a_phase_peak_is_its_own_and_not_an_earlier_phases():
    """A 256 MiB spike in phase A; phase B allocates nothing. Without the reset at B's start
    (a running peak such as ru_maxrss), B would report A's spike."""
    with sampler.Sampler() as s:
        s.start()
        _touch(256 * _MIB)
        a = s.stop()
        s.start()
        b = s.stop()
    assert a.peak_rss_source == b.peak_rss_source == "kernel"
    assert a.peak_rss_bytes - b.peak_rss_bytes > 200 * _MIB, (a.peak_rss_bytes, b.peak_rss_bytes)
    assert b.ru_maxrss_bytes >= a.peak_rss_bytes - 4 * _MIB  # the running peak still holds the spike


@kernel_only
def test_a_spike_freed_before_the_phase_ends_is_still_its_peak():
    with sampler.Sampler() as s:
        s.start()
        base = sampler.kernel_peak_rss()
        _touch(128 * _MIB)
        t = s.stop()
    assert t.peak_rss_bytes - base > 120 * _MIB


def test_a_phase_cpu_time_resolves_a_few_milliseconds():
    """A 40 ms save must not read 0.03, 0.04 or 0.05 s: Linux's /proc process times (psutil's
    cpu_times) count 10 ms ticks, so a 3 ms phase of pure CPU would read 0 or 0.01 s."""
    with sampler.Sampler() as s:
        for _ in range(3):
            s.start()
            t0 = time.process_time()
            while time.process_time() - t0 < 0.003:  # 3 ms of the process's CPU
                pass
            cpu = s.stop().cpu_seconds
            assert 0.003 <= cpu < 0.008, cpu


@kernel_only
def test_no_polling_thread_runs_without_a_gpu():
    """On a 2-core machine a thread polling every 5 ms slowed a Python-bound phase by about 20 %;
    with the kernel's peak and no GPU to poll there is no thread at all."""
    before = {t.name for t in threading.enumerate()}
    with sampler.Sampler() as s:
        assert s.kernel_rss
        s.start()
        assert "telemetry" not in {t.name for t in threading.enumerate()} - before
        s.stop()


def test_where_the_reset_is_refused_rss_is_sampled(monkeypatch, tmp_path):
    """A kernel (or container) that refuses the reset: RSS is polled, and the rows say so."""
    monkeypatch.setattr(sampler, "_CLEAR_REFS", str(tmp_path / "missing" / "clear_refs"))
    with sampler.Sampler() as s:
        assert not s.kernel_rss
        assert "telemetry" in {t.name for t in threading.enumerate()}
        s.start()
        _touch(64 * _MIB)
        t = s.stop()
    assert t.peak_rss_source == "sampled" and t.peak_rss_bytes > 0
