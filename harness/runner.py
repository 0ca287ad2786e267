"""`ckpt-harness run`: the measuring process.

Validates every input before starting, runs each scenario in its own worker
process (harness/worker.py), shows progress, writes phases.csv after every
finished scenario (atomically) and metadata.json, and on Ctrl-C, SIGTERM or a
timeout kills the worker's process group and removes its scratch directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

import psutil

from . import metadata, models
from .child import ChannelClosed, Child, ChildFailed, exit_text, sigterm_as_interrupt
from .devices import check_available, parse_device
from .errors import ResourceError, UsageError, finish_command
from .fsio import ensure_writable_dir
from .phases import incomplete_restores
from .results import PHASE_COLUMNS, atomic_write_csv, atomic_write_json, new_run_id
from .savers import check_api
from .session import Scenario
from .specs import GraphSpec, layout, total_bytes
from .summary import print_summary
from .units import format_bytes, parse_positive_int, parse_size

# The default run: 3 APIs x 2 sizes, under two minutes on 2 cores. (tf2-manager, the fourth
# API of the former one-size default, writes as tf2-checkpoint does; it is one --api away.)
DEFAULT_APIS = ("tf2-checkpoint", "tf1-saver", "async-checkpoint")
DEFAULT_SIZES = ("16MiB", "64MiB")   # two sizes: the report's throughput-vs-size plot is a line
DEFAULT_VARS = 256
DEFAULT_OUT = os.path.join("results", "runs")
_TF_OVERHEAD_BYTES = 1 << 30


def plan(args) -> list[Scenario]:
    apis = [check_api(a) for a in (args.api or DEFAULT_APIS)]
    req = parse_device(args.device)
    check_available(req)
    specs = graph_specs(args)
    max_to_keep = parse_positive_int(args.max_to_keep, "--max-to-keep")
    return [Scenario(api, req.label, spec, max_to_keep) for spec in specs for api in apis]


def graph_specs(args) -> list[GraphSpec]:
    """The graph specs of `run`: --model's layout, or synthetic ones (default: DEFAULT_SIZES)."""
    dtypes = tuple(args.dtype or ("float32",))
    model = getattr(args, "model", None)
    if model is not None:
        given = [flag for flag, value in (("--vars", args.vars), ("--size", args.size),
                                          ("--shape-mix", args.shape_mix)) if value is not None]
        if given:
            raise UsageError(f"--model {model} fixes the layout; drop {', '.join(given)}")
        return [GraphSpec(model=model, dtypes=dtypes, optimizer=args.optimizer, seed=args.seed)]
    sizes = [args.size] if args.size is not None else list(DEFAULT_SIZES)
    n_vars = parse_positive_int(args.vars if args.vars is not None else DEFAULT_VARS, "--vars")
    return [GraphSpec(n_vars=n_vars, state_bytes=parse_size(size), shape_mix=args.shape_mix, dtypes=dtypes,
                      optimizer=args.optimizer, seed=args.seed) for size in sizes]


# What a worker's peak RSS grows by, calibrated on measured peaks (tests/test_specs_units.py
# holds them): per byte of state about 2.4x (values made in NumPy, then TensorFlow's copy; a
# restore reads the checkpoint's tensors while the variables still hold theirs), and per
# variable about 50-60 KiB of TensorFlow objects (100,000 variables of 512 MiB peaked at 6.8 GiB)
_RAM_PER_STATE_BYTE = 2.5
_RAM_PER_VARIABLE = 64 << 10


def needs(scenario: Scenario) -> tuple[int, int]:
    """(RAM bytes, disk bytes) a scenario needs at its peak, estimated before starting."""
    variables = layout(scenario.spec)
    params = total_bytes(variables)
    ckpt = params * (3 if scenario.spec.optimizer else 1)   # Adam: m and v per parameter
    ram = ckpt + (params if scenario.spec.optimizer else 0)  # gradients during the step
    per_byte = _RAM_PER_STATE_BYTE * (1.6 if scenario.api == "savedmodel" else 1.0)
    ram = int(ram * per_byte) + _RAM_PER_VARIABLE * len(variables) + _TF_OVERHEAD_BYTES
    keep = scenario.max_to_keep if scenario.api == "tf2-manager" else 1
    disk = ckpt * keep + params + (64 << 20)  # checkpoints kept + the roofline's raw file
    return ram, disk


def check_resources(scenarios: list[Scenario], scratch: str) -> None:
    avail_ram = psutil.virtual_memory().available
    free_disk = shutil.disk_usage(scratch).free
    for sc in scenarios:
        ram, disk = needs(sc)
        if ram > avail_ram:
            raise ResourceError(f"{sc.name} needs about {format_bytes(ram)} of RAM but only "
                                f"{format_bytes(avail_ram)} is available")
        if disk > free_disk:
            raise ResourceError(f"{sc.name} needs about {format_bytes(disk)} of disk in {scratch} but only "
                                f"{format_bytes(free_disk)} is free")


class Progress:
    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet

    def say(self, text: str):
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def event(self, i: int, ev: dict):
        if ev.get("event") == "phase":
            outcome = f" {ev['outcome']}" if ev.get("outcome") else ""
            self.say(f"  [{i}/{self.total}] {ev['scenario']}  {ev['phase']:<13} r{ev['repeat']}  "
                     f"{ev['seconds']:.3f}s{outcome}")


def run_one(scenario, index, scratch, repeats, timeout, progress, meta) -> list[dict]:
    workdir = tempfile.mkdtemp(prefix="scenario-", dir=scratch)
    job = os.path.join(workdir, "job.json")
    with open(job, "w") as f:
        json.dump({"scenario": scenario.to_dict(), "workdir": os.path.join(workdir, "ckpt"),
                   "repeats": repeats}, f)
    worker = Child("harness.worker", os.path.join(scratch, f"worker-{index}.log"), args=(job,), what="worker")
    deadline = time.monotonic() + timeout
    rows = None
    try:
        try:
            ev = worker.start(timeout)
            while True:
                rows = _on_event(ev, index, progress, meta) or rows
                ev = worker.recv(deadline - time.monotonic())
        except ChildFailed as e:
            if not e.timed_out:
                raise RuntimeError(f"the worker ended before it was ready ({exit_text(e.exit_code)}: "
                                   f"{e.log_tail or 'no output'})") from None
            raise TimeoutError(f"{scenario.name} exceeded --timeout {timeout:.0f}s") from None
        except TimeoutError:
            raise TimeoutError(f"{scenario.name} exceeded --timeout {timeout:.0f}s") from None
        except ChannelClosed:  # the worker is done (or dead): its exit code tells which
            pass
        code = worker.wait(5)
        if rows is None or code != 0:
            raise RuntimeError(f"the worker ended before finishing ({exit_text(code)}: "
                               f"{worker.log_tail() or 'no output'})")
        return rows
    finally:
        worker.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _on_event(ev: dict, index: int, progress: Progress, meta: dict) -> list[dict] | None:
    """Act on one message of the worker; returns the rows when they come."""
    kind = ev.get("event")
    if kind == "hello":
        meta.setdefault("tensorflow_runtime_version", ev["tf_version"])
        meta.setdefault("tensorflow_gpus", ev["gpus"])
    elif kind == "phase":
        progress.event(index, ev)
    elif kind == "rows":
        return ev["rows"]
    elif kind == "error":
        if ev["kind"] in ("usage", "resource"):
            raise ResourceError(ev["message"])
        raise RuntimeError(ev["message"])
    return None


def verdict_failure(scenario: Scenario, rows: list[dict]) -> str | None:
    """One line when any restore or verify of the scenario was not judged `complete`."""
    why = incomplete_restores(rows)
    return f"{scenario.name}: {why}" if why else None


def run_all(scenarios, run_dir, scratch, repeats, timeout, progress, meta, rows: list, failures: list) -> None:
    """Each scenario in a worker of its own; its rows join `rows` (phases.csv rewritten after
    each) and what failed joins `failures`. A KeyboardInterrupt goes to the caller."""
    run_id = meta["run_id"]
    for i, sc in enumerate(scenarios, 1):
        progress.say(f"[{i}/{len(scenarios)}] {sc.name}")
        try:
            got = run_one(sc, i, scratch, repeats, timeout, progress, meta)
        except (TimeoutError, RuntimeError) as e:
            failures.append(f"{sc.name}: {e}")
            progress.say(f"  failed: {e}")
            continue
        for r in got:
            r["run_id"] = run_id
        rows.extend(got)
        atomic_write_csv(os.path.join(run_dir, "phases.csv"), rows, PHASE_COLUMNS)
        judged = verdict_failure(sc, got)
        if judged:
            failures.append(judged)
            progress.say(f"  failed: {judged}")


def main(args) -> int:
    from .distributed.strategy import parse_strategy
    strategy = parse_strategy(getattr(args, "strategy", None))
    if strategy.distributed:   # one cluster of tasks instead of one worker per scenario
        from .distributed.run import main as distributed_main
        return distributed_main(args, strategy)
    scenarios = plan(args)
    repeats = parse_positive_int(args.repeat, "--repeat")
    timeout = float(parse_positive_int(args.timeout, "--timeout"))
    out_root = ensure_writable_dir(args.out or DEFAULT_OUT, "output directory")
    scratch_root = ensure_writable_dir(args.scratch, "scratch directory") if args.scratch else out_root
    check_resources(scenarios, scratch_root)

    run_id = new_run_id("run")
    run_dir = os.path.join(out_root, run_id)
    os.makedirs(run_dir)
    scratch = tempfile.mkdtemp(prefix=".scratch-", dir=args.scratch and scratch_root or run_dir)
    meta = metadata.collect(run_dir, run_id=run_id, kind="run", repeats=repeats,
                            scenarios=[s.to_dict() for s in scenarios],
                            models=models.metadata([s.spec.model for s in scenarios]),
                            scratch_filesystem=metadata.filesystem_type(scratch), status="running")
    meta_path = os.path.join(run_dir, "metadata.json")
    atomic_write_json(meta_path, meta)
    progress = Progress(len(scenarios), args.quiet)
    progress.say(f"ckpt-harness run {run_id}: {len(scenarios)} scenario(s) x {repeats} repeat(s) -> {run_dir}")

    rows: list[dict] = []
    failures = []
    status = "complete"
    with sigterm_as_interrupt():  # SIGTERM unwinds like Ctrl-C: worker killed, scratch removed
        try:
            run_all(scenarios, run_dir, scratch, repeats, timeout, progress, meta, rows, failures)
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            metadata.finish(meta, meta_path, status, failures)
    if rows:
        print_summary(rows)
    return finish_command(run_dir, status, failures, "results of finished scenarios kept", "scenario failed: ")
