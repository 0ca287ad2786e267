"""`ckpt-harness profile`: sweep, fit, strace breakdown, files, printed table."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile

from .. import metadata
from ..child import sigterm_as_interrupt
from ..devices import check_available, parse_device
from ..errors import ResourceError, UsageError, finish_command
from ..fsio import ensure_writable_dir
from ..results import atomic_write_csv, atomic_write_json, new_run_id
from ..runner import Progress, check_resources, run_all
from ..savers import check_api
from ..session import Scenario
from ..specs import GraphSpec
from ..units import format_bytes, parse_positive_int, parse_size
from . import syscalls
from .fileformat import (FIT_COLUMNS, FIT_FILE, POINT_COLUMNS, POINTS_FILE, PROFILE_FORMAT,
                         SYSCALL_COLUMNS, SYSCALLS_FILE)
from .sweep import grid_specs, model_specs, plan, points, roofline_gbps
from .terms import DOMINANT_AT, fit_rows

DEFAULT_APIS = ("tf2-checkpoint",)
DEFAULT_SIZES = "4MiB,16MiB,64MiB"
DEFAULT_VARS = "16,256,2048"
DEFAULT_OUT = os.path.join("results", "runs")   # ignored by git, like run results


def _list(text: str, what: str, parse) -> list[int]:
    items = [t for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"{what} needs a comma-separated list, got {text!r}")
    return sorted({parse(t.strip()) for t in items})


def parse_grid(sizes_text: str, vars_text: str) -> tuple[list[int], list[int]]:
    """(sizes, variable counts); refuses a grid that cannot tell the three terms apart."""
    sizes = _list(sizes_text, "--sizes", parse_size)
    n_vars = _list(vars_text, "--vars", lambda t: parse_positive_int(t, "--vars"))
    if len(sizes) < 2 or len(n_vars) < 2:
        raise UsageError(f"profile needs at least 2 distinct sizes and 2 distinct variable counts to tell the "
                         f"fixed, per-variable and per-byte costs apart (got {len(sizes)} size(s), "
                         f"{len(n_vars)} variable count(s))")
    return sizes, n_vars


def _fmt(v, spec: str, scale: float = 1.0) -> str:
    if v in (None, "") or v != v:
        return "-"
    if v == float("inf"):
        return "inf"
    return format(float(v) * scale, spec)


def print_table(fits: list[dict], calls: list[dict], at_vars: int) -> None:
    head = (f"  {'op':<13}{'fixed ms':>10}{'us/var':>9}{'GB/s asym':>11}{'roofline':>10}{'of roof':>9}"
            f"{'R2':>7}{'med|res|':>10}  {'dominant 64MiB':<19}{'dominant 1GiB':<19}")
    for api in dict.fromkeys(r["api"] for r in fits):
        print(f"\n{api}  (dominant terms at {at_vars} variables)")
        print(head)
        for r in (r for r in fits if r["api"] == api):
            if r.get("note"):
                print(f"  {r['op']:<13}{r['note']}")
                continue
            dom = ["{} {}".format(r[f"dominant_{k}"], _fmt(r[f"dominant_{k}_share"], ".0%")) for k in DOMINANT_AT]
            print(f"  {r['op']:<13}{_fmt(r['fixed_seconds'], '.1f', 1e3):>10}{_fmt(r['per_var_seconds'], '.1f', 1e6):>9}"
                  f"{_fmt(r['gbps_asymptote'], '.3f'):>11}{_fmt(r['roofline_gbps'], '.3f'):>10}"
                  f"{_fmt(r.get('roofline_fraction'), '.0%'):>9}{_fmt(r['r2'], '.3f'):>7}"
                  f"{_fmt(r['median_abs_residual_pct'], '.1f'):>9}%  {dom[0]:<19}{dom[1]:<19}"
                  + (f" (clamped to 0: {r['clamped']})" if r.get("clamped") else ""))
        for c in (c for c in calls if c["api"] == api):
            where = f"{format_bytes(c['state_bytes'])} in {c['n_vars']} variables"
            if c.get("note"):
                print(f"  strace save of {where}: {c['note']}")
                continue
            print(f"  strace save of {where}: wall {c['wall_seconds']:.3f}s = write {c['write_seconds']:.3f} "
                  f"+ fsync {c['fsync_seconds']:.3f} + open/rename/close {c['open_rename_seconds']:.3f} "
                  f"+ read {c['read_seconds']:.3f} + TF compute/Python {c['tf_compute_python_seconds']:.3f}"
                  f" -> dominant: {c['dominant']}"
                  + (" (system call time summed over threads exceeds the wall time)" if c.get("overlap") else ""))


def main(args) -> int:
    apis = [check_api(a) for a in (args.api or DEFAULT_APIS)]
    req = parse_device(args.device)
    check_available(req)
    if args.model:
        given = [flag for flag, value in (("--sizes", args.sizes), ("--vars", args.vars)) if value is not None]
        if given:
            raise UsageError(f"--model fixes the variable count and the size; drop {', '.join(given)}")
        specs = model_specs(args.model, args.seed)   # the terms are fitted only if the models identify them
        sizes, n_vars = sorted({s.state_bytes for s in specs}), sorted({s.n_vars for s in specs})
    else:
        sizes, n_vars = parse_grid(args.sizes or DEFAULT_SIZES, args.vars or DEFAULT_VARS)
        specs = grid_specs(sizes, n_vars, args.shape_mix, args.seed)
    repeats = parse_positive_int(args.repeat, "--repeat")
    timeout = float(parse_positive_int(args.timeout, "--timeout"))
    at_vars = (parse_positive_int(args.at_vars, "--at-vars") if args.at_vars is not None
               else int(statistics.median_low(n_vars)))
    scenarios = plan(apis, req.label, specs)
    # the traced save: the largest size at at_vars (a model run: the largest model)
    spec = (max(specs, key=lambda sp: sp.state_bytes) if args.model else
            GraphSpec(n_vars=min(at_vars, max(n_vars)), state_bytes=max(sizes), shape_mix=args.shape_mix,
                      seed=args.seed))
    traced = [Scenario(api, req.label, spec) for api in apis]
    out_root = ensure_writable_dir(args.out or DEFAULT_OUT, "output directory")
    scratch_root = ensure_writable_dir(args.scratch, "scratch directory") if args.scratch else out_root
    check_resources(scenarios, scratch_root)

    run_id = new_run_id("profile")
    run_dir = os.path.join(out_root, run_id)
    os.makedirs(run_dir)
    scratch = tempfile.mkdtemp(prefix=".scratch-", dir=args.scratch and scratch_root or run_dir)
    meta = metadata.collect(run_dir, run_id=run_id, kind="profile", profile_format=PROFILE_FORMAT,
                            repeats=repeats, apis=apis, sizes=sizes, n_vars=n_vars, at_vars=at_vars,
                            models=list(dict.fromkeys(args.model or [])),
                            scenarios=[s.to_dict() for s in scenarios],
                            scratch_filesystem=metadata.filesystem_type(scratch), status="running")
    meta_path = os.path.join(run_dir, "metadata.json")
    atomic_write_json(meta_path, meta)
    progress = Progress(len(scenarios), args.quiet)
    progress.say(f"ckpt-harness profile {run_id}: {len(scenarios)} scenario(s) x {repeats} repeat(s) -> {run_dir}")

    rows: list[dict] = []
    failures: list[str] = []
    calls: list[dict] = []
    status = "complete"
    with sigterm_as_interrupt():
        try:
            # a scenario whose restore was not complete fails the command; its points leave the fit
            run_all(scenarios, run_dir, scratch, repeats, timeout, progress, meta, rows, failures)
            if not args.no_strace:
                for sc in traced:
                    progress.say(f"strace: one save of {sc.name}")
                    try:
                        calls.append(syscalls.breakdown(sc, scratch, timeout))
                    except ResourceError as e:   # e.g. ptrace not permitted here: skip, say why
                        calls.append(syscalls.skipped(sc, f"no breakdown: {e}"))
                    except RuntimeError as e:
                        failures.append(f"strace save of {sc.name}: {e}")
                        calls.append(syscalls.skipped(sc, f"failed: {e}"))
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            pts = points(rows, {sc.name: sc.spec.state_bytes for sc in scenarios})
            fits = []
            for api in apis:
                fits += fit_rows(run_id, api, pts, roofline_gbps([r for r in rows if r["api"] == api]), at_vars)
            atomic_write_csv(os.path.join(run_dir, POINTS_FILE), [dict(p.as_row(), run_id=run_id) for p in pts],
                             POINT_COLUMNS)
            atomic_write_csv(os.path.join(run_dir, FIT_FILE), fits, FIT_COLUMNS)
            if calls:
                atomic_write_csv(os.path.join(run_dir, SYSCALLS_FILE), calls, SYSCALL_COLUMNS)
            metadata.finish(meta, meta_path, status, failures)
    print_table(fits, calls, at_vars)
    return finish_command(run_dir, status, failures, "the points measured so far are kept and fitted",
                          "profile failed: ")
