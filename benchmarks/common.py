"""Shared parameters and helpers of the asv suite.

Nothing here imports TensorFlow at module level: asv imports the suite to
discover it (and a forkserver would pre-import it), while TensorFlow must be
imported, and its devices configured, inside the measured process only.

Environment variables:
    CKPT_BENCH_GPU=0|1     force GPU presence off/on (default: NVML sees a GPU)
    CKPT_BENCH_LARGE=1     GPU-machine sizes (64MiB and 1GiB, 64 and 4096 vars)
    CKPT_BENCH_APIS=a,b    restrict the APIs (e.g. for a fast smoke pass)
    CKPT_BENCH_STRATEGIES=a,b  restrict the strategies of bench_strategies.py
    CKPT_BENCH_DIR=DIR     where checkpoints are written [the system temp dir]
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import statistics
import tempfile

try:  # present in every asv environment; absent only when the suite is imported bare
    from asv_runner.benchmarks.mark import SkipNotImplemented, skip_for_params
except ImportError:  # pragma: no cover
    SkipNotImplemented = NotImplementedError  # noqa: what asv reads as "skipped"

    def skip_for_params(_skips):
        return lambda func: func


def _gpu_present() -> bool:
    """Decided without a CUDA context: an explicit env var, else NVML's device count."""
    forced = os.environ.get("CKPT_BENCH_GPU", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    from harness.devices import visible_gpu_count
    return visible_gpu_count() > 0


HAVE_GPU = _gpu_present()
LARGE = os.environ.get("CKPT_BENCH_LARGE", "") == "1"

# Literal and append-only, as asv params must be (a reordered or renamed value breaks the
# comparison with the committed history); a new adapter goes at the end. tests/test_timing.py
# checks that every runnable adapter is here.
ALL_APIS = ["tf2-checkpoint", "tf2-restore-on-create", "tf2-manager", "tf1-saver", "keras-weights",
            "keras-model", "keras-modelcheckpoint", "savedmodel", "tf2-sharded", "async-checkpoint"]
APIS = [a.strip() for a in os.environ.get("CKPT_BENCH_APIS", "").split(",") if a.strip()] or ALL_APIS
ALL_STRATEGIES = ["none", "mirrored:2", "multi-worker:2", "parameter-server:1,1"]   # append-only
STRATEGIES = [s.strip() for s in os.environ.get("CKPT_BENCH_STRATEGIES", "").split(",") if s.strip()] \
    or ALL_STRATEGIES
SIZES = ["64MiB", "1GiB"] if LARGE else ["4MiB"]
N_VARS = [64, 4096] if LARGE else [32]
DEVICES = ["cpu", "gpu"]

# the grid of most classes: API x state size x variable count x device
GRID_PARAMS = [APIS, SIZES, N_VARS, DEVICES]
GRID_NAMES = ["api", "state_size", "n_vars", "device"]


def gpu_skips(params: list[list], names: list[str]) -> list[tuple]:
    """Every parameter combination that asks for a GPU, when this machine has none."""
    if HAVE_GPU or "device" not in names:
        return []
    i = names.index("device")
    return [combo for combo in itertools.product(*params) if combo[i].startswith("gpu")]


def skip_gpu_without_gpu(params=GRID_PARAMS, names=GRID_NAMES):
    """Decorator: asv skips the GPU combinations (no setup, no process) on a CPU-only machine."""
    return skip_for_params(gpu_skips(params, names))


def require_device(device: str) -> None:
    # fallback for runners that ignore skip_for_params: asv treats this as "skipped"
    if device.startswith("gpu") and not HAVE_GPU:
        raise SkipNotImplemented("no GPU on this machine")


# -- sessions ----------------------------------------------------------------
# With the spawn launch method every process runs one benchmark with one
# parameter combination, while asv re-runs setup() before every sample. The
# session (TensorFlow import, model build) is made once per process and kept
# here, so a sample's setup only does that sample's own preparation.
_SESSIONS: dict[tuple, object] = {}


def scenario(api: str, state_size: str, n_vars: int, device: str):
    from harness.session import Scenario
    from harness.specs import GraphSpec
    from harness.units import parse_size

    return Scenario(api=api, device=device, spec=GraphSpec(n_vars=int(n_vars), state_bytes=parse_size(state_size)))


def session(api: str, state_size: str, n_vars: int, device: str, *, saved: bool = False):
    """The process's built and initialised ScenarioSession (saved once if asked)."""
    key = (api, state_size, n_vars, device)
    s = _SESSIONS.get(key)
    if s is None:
        from harness.session import ScenarioSession

        workdir = tempfile.mkdtemp(prefix="ckpt-bench-", dir=os.environ.get("CKPT_BENCH_DIR"))
        try:
            s = ScenarioSession(scenario(api, state_size, n_vars, device), workdir)
            s.build()
            s.init()
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        _SESSIONS[key] = s
    if saved and s.last_save is None:
        s.save()
        s.make_durable()  # write back, so cold restores can really drop the cache
    return s


def bare_script() -> str:
    """scripts/bare_save.py of the checkout the suite runs from (not part of the wheel)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "bare_save.py")


def finish_save(bench) -> None:
    """asv teardown after a save sample: the untimed finish (fingerprints, manifest)."""
    s = getattr(bench, "s", None)  # absent when setup skipped the combination
    if s is not None and s.last_save is not None and not s.save_pending:
        s.finish_save()


def check_restore(bench) -> None:
    """asv teardown after a restore sample: raise unless the oracle judges it complete,
    so an incomplete restore fails the benchmark instead of recording its time."""
    s = getattr(bench, "s", None)
    if s is None:
        return
    verdict = s.verify()
    if not verdict.ok:
        raise RuntimeError(f"restore not complete: {verdict.outcome}: {verdict.detail}")


def check_rows(rows) -> list[dict]:
    """run_scenario rows of one combination, or RuntimeError when any restore or verify of
    it was not judged complete (its figures would describe work that was not done)."""
    from harness.phases import incomplete_restores

    if isinstance(rows, str):  # the error that stopped the scenario
        raise RuntimeError(rows)
    why = incomplete_restores(rows)
    if why:
        raise RuntimeError(why)
    return rows


def strategy_timings(strategy: str, state_size: str, n_vars: int, rounds: int) -> dict[str, float] | str:
    """The chief's median `save` and `restore_warm` seconds over `rounds` rounds of a local
    cluster of `strategy` (harness/distributed/run.py, the rounds of `run --strategy`), or the
    reason as a string when a round was not judged complete (its timings are not recorded)."""
    from harness.distributed.run import ClusterRun
    from harness.distributed.strategy import parse_strategy
    from harness.outcomes import Outcome
    from harness.specs import GraphSpec
    from harness.units import parse_size

    spec = parse_strategy(strategy)
    workdir = tempfile.mkdtemp(prefix="ckpt-bench-", dir=os.environ.get("CKPT_BENCH_DIR"))
    times: dict[str, list[float]] = {"save": [], "restore_warm": []}
    try:
        with ClusterRun(spec, GraphSpec(n_vars=int(n_vars), state_bytes=parse_size(state_size)),
                        os.path.join(workdir, "cluster"), deadline=600.0) as run:
            for r in range(rounds):
                rows, verdict = run.round(r)
                if verdict.outcome is not Outcome.COMPLETE:
                    return f"round {r} was {verdict.outcome}: {verdict.detail}"
                for row in rows:
                    if row["task"] == spec.chief() and row["phase"] in times:
                        times[row["phase"]].append(row["seconds"])
    except Exception as e:   # a cluster that did not start or a task that failed: no figure
        return f"{type(e).__name__}: {e}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"save": median(times["save"]), "restore": median(times["restore_warm"])}


@atexit.register
def _remove_workdirs() -> None:
    # Only the files: the process is ending anyway, and closing adapters here can
    # deadlock (TensorFlow's own exit hook has already stopped the async-checkpoint
    # thread that Checkpoint.sync() would wait for).
    for s in _SESSIONS.values():
        shutil.rmtree(s.workdir, ignore_errors=True)
    _SESSIONS.clear()


def median(values) -> float:
    return float(statistics.median(values))
