"""How much the harness adds to what it measures, each side in its own process.

The bare side is scripts/bare_save.py: TensorFlow and NumPy only, the same
variables with the same values, previous save removed, os.sync(), then
Checkpoint.write timed alone (and with `read`, Checkpoint.read). The harness
side is `python -m harness.overhead JOB`: harness.phases.run_scenario as the
worker of `ckpt-harness run` runs it, reporting each phase's rows and the wall
time of the whole phase (preparation, sync, telemetry, API call, manifest).

Both in one process would share TensorFlow's caches, the allocator and the
page cache, and could not show what the harness's process state costs.

This module is at the top of the import graph: it imports the harness (lazily),
nothing of the harness imports it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

# in a source checkout; an installed harness (asv) is handed the path
BARE_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "bare_save.py")

# harness phase -> the bare script's list of seconds for the same API call
BARE_KEY = {"build": "build_s", "init": "init_s", "save": "write_s", "restore_warm": "read_s"}


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # a source checkout's harness, also when it is not installed
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def run_bare(size: str, n_vars: int, repeats: int, workdir: str, *, read: bool = False,
             rebuild: bool = False, shape_mix: str = "mixed", script: str | None = None,
             timeout: float = 3600) -> dict:
    """One bare process; its JSON (build_s, init_s, write_s, read_s lists and more).

    rebuild: a new model every repeat, as the harness builds one per repeat.
    """
    script = script or BARE_SCRIPT
    if not os.path.exists(script):
        raise FileNotFoundError(f"bare script not found: {script}")
    cmd = [sys.executable, script, "--vars", str(n_vars), "--size", size, "--repeats", str(repeats),
           "--dir", workdir, "--shape-mix", shape_mix] + (["--read"] if read else []) \
        + (["--rebuild"] if rebuild else [])
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"bare script failed (exit {p.returncode}): {p.stderr.strip()[-1500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_harness(size: str, n_vars: int, repeats: int, workdir: str, *, shape_mix: str = "mixed",
                api: str = "tf2-checkpoint", warmup: bool = True, timeout: float = 3600) -> dict:
    """One harness process running run_scenario; {"rows": [...], "phases": [progress events]}.

    Raises when any restore was not judged complete: a figure from a restore that
    restored nothing is no figure.
    """
    from .phases import incomplete_restores
    from .session import Scenario
    from .specs import GraphSpec
    from .units import parse_size

    scenario = Scenario(api, "cpu", GraphSpec(n_vars=int(n_vars), state_bytes=parse_size(size),
                                             shape_mix=shape_mix))
    d = tempfile.mkdtemp(prefix="overhead-", dir=workdir)
    try:
        job = os.path.join(d, "job.json")
        out = os.path.join(d, "result.json")
        with open(job, "w") as f:
            json.dump({"scenario": scenario.to_dict(), "workdir": os.path.join(d, "ckpt"),
                       "repeats": int(repeats), "warmup": warmup, "out": out}, f)
        p = subprocess.run([sys.executable, "-m", "harness.overhead", job], capture_output=True, text=True,
                           env=_env(), timeout=timeout)
        if p.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"harness process failed (exit {p.returncode}): {p.stderr.strip()[-1500:]}")
        with open(out) as f:
            res = json.load(f)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    why = incomplete_restores(res["rows"])
    if why:
        raise RuntimeError(f"harness process: {why}")
    return res


def harness_seconds(res: dict, phase: str) -> tuple[list[float], list[float]]:
    """(reported seconds, whole-phase wall seconds) of `phase`, one per repeat."""
    reported = [r["seconds"] for r in res["rows"] if r["phase"] == phase]
    wall = [e["wall_seconds"] for e in res["phases"] if e.get("phase") == phase and "wall_seconds" in e]
    return reported, wall


def compare_save(size: str, n_vars: int, *, rounds: int = 3, repeats: int = 5, workdir: str | None = None,
                 shape_mix: str = "mixed", script: str | None = None, bare_rebuild: bool = False) -> dict:
    """Reported save and whole save phase over the bare write, medians over `rounds` process
    pairs (alternating which goes first). The bare script's first write in each process is
    left out: it pays the one-time costs that the harness's untimed warm-up round pays.
    bare_rebuild: the bare script builds a new model before every write, as the harness does
    every repeat (by default it saves one model again and again)."""
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="ckpt-overhead-")
    bare, reported, wall, per_round, bare_cpu, cpu = [], [], [], [], [], []
    rounds_saves = []  # (bare saves, reported saves) of each round, for the interval
    try:
        for k in range(rounds):
            got = {}
            for who in (("bare", "harness") if k % 2 == 0 else ("harness", "bare")):
                if who == "bare":
                    b = run_bare(size, n_vars, repeats + 1, workdir, shape_mix=shape_mix, script=script,
                                 rebuild=bare_rebuild)
                    got[who] = b["write_s"][1:]
                    bare_cpu += b["write_cpu_s"][1:]
                else:
                    h = run_harness(size, n_vars, repeats, workdir, shape_mix=shape_mix)
                    got[who] = harness_seconds(h, "save")
                    cpu += [r["cpu_seconds"] for r in h["rows"] if r["phase"] == "save"]
            bare += got["bare"]
            reported += got["harness"][0]
            wall += got["harness"][1]
            per_round.append(statistics.median(got["harness"][0]) / statistics.median(got["bare"]))
            rounds_saves.append((got["bare"], got["harness"][0]))
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    b = statistics.median(bare)
    w = statistics.median(wall) if wall else float("nan")
    return {"size": size, "n_vars": int(n_vars), "rounds": rounds, "repeats": repeats,
            "bare_median_s": b, "reported_median_s": statistics.median(reported),
            "reported_ratio": statistics.median(reported) / b, "per_round_ratio": per_round,
            "reported_ratio_ci95": ratio_interval(rounds_saves),
            "phase_wall_median_s": w, "phase_wall_ratio": w / b,
            # process CPU seconds of the same saves: less moved by other processes' load
            "bare_cpu_median_s": statistics.median(bare_cpu), "reported_cpu_median_s": statistics.median(cpu),
            "cpu_ratio": statistics.median(cpu) / statistics.median(bare_cpu)}


def ratio_interval(rounds_saves: list, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of median(reported) / median(bare) by resampling whole rounds.

    Rounds, not single saves, are resampled: saves of one process share its state (heap,
    page cache, what else ran then), so they are not independent draws, and a round-to-round
    spread of 10-20 % is what this VM shows. Fewer than 2 rounds give (nan, nan).
    """
    import random

    if len(rounds_saves) < 2:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        pick = [rng.choice(rounds_saves) for _ in rounds_saves]
        ratios.append(statistics.median(x for _, h in pick for x in h)
                      / statistics.median(x for b, _ in pick for x in b))
    ratios.sort()
    return (ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1])


def measure(spec, repeats: int, workdir: str) -> dict:
    """compare_save for a GraphSpec (scripts/measure_scale.py); float32 specs only."""
    if tuple(spec.dtypes) != ("float32",) or spec.optimizer:
        raise ValueError("the bare script builds float32 variables without an optimizer")
    return compare_save(f"{spec.state_bytes}B", spec.n_vars, rounds=max(1, repeats // 5), repeats=5,
                        workdir=workdir, shape_mix=spec.shape_mix)


def _child(job_path: str) -> int:
    """The measured harness process (what harness/worker.py runs), result to a file."""
    from .phases import run_scenario
    from .session import Scenario
    from .tfenv import import_tensorflow

    with open(job_path) as f:
        job = json.load(f)
    import_tensorflow()
    events = []
    rows = run_scenario(Scenario.from_dict(job["scenario"]), job["workdir"], int(job["repeats"]),
                        progress=events.append, warmup=bool(job.get("warmup", True)))
    with open(job["out"], "w") as f:
        json.dump({"rows": rows, "phases": [e for e in events if e.get("event") == "phase"],
                   "oracle": [e for e in events if e.get("event") == "oracle"]}, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
