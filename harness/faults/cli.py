"""`ckpt-harness crash` and `ckpt-harness replay`: argument checks and printing only."""

from __future__ import annotations

import os
import shutil

from ..errors import UsageError
from ..fsio import ensure_writable_dir
from ..specs import GraphSpec
from ..units import format_bytes, parse_positive_int, parse_size

MAX_IN_MEMORY_BYTES = 256 * 1024**2   # mutate and diskfull hold their states in memory
IN_MEMORY_MODES = ("mutate", "diskfull")
DISK_FACTOR = 4   # disk a kill or trace run needs, in checkpoints: saves kept, the recorded one, a state


def config_from_args(args):
    from .campaign import CRASH_APIS, DEFAULT_APIS, CrashConfig
    from .apis import KERAS3_ONLY, MUTATE_APIS
    from . import strace

    target = getattr(args, "target", None)
    if target:
        from ..savers.user import API as USER_API, parse_spec
        if args.api:
            raise UsageError("--target replaces --api: give one or the other")
        if args.mode == "mutate":
            raise UsageError("--target works with --mode kill, diskfull or trace (mutate damages TF "
                             "checkpoint files the harness wrote itself)")
        parse_spec(target)
        apis = (USER_API,)
    else:
        apis = tuple(dict.fromkeys(args.api or DEFAULT_APIS))
        for api in apis:
            if api not in CRASH_APIS:
                raise UsageError(f"crash does not support api {api!r}; choose from {', '.join(CRASH_APIS)}")
            if getattr(args, "keras", None) == "2" and api in KERAS3_ONLY:
                raise UsageError(f"{api} is a Keras 3 target (tf-keras's BackupAndRestore has no "
                                 "double_checkpoint); drop --keras 2")
            if args.mode == "mutate" and api not in MUTATE_APIS:
                raise UsageError(f"--mode mutate damages TF checkpoint bundles; {api} is not one (use kill, "
                                 f"diskfull or trace, or mutate with {', '.join(MUTATE_APIS)})")
    size = parse_size(args.size)
    if args.mode in IN_MEMORY_MODES and size > MAX_IN_MEMORY_BYTES:
        raise UsageError(f"--size {args.size} is too large for --mode {args.mode} (its states are held in "
                         f"memory); use at most {format_bytes(MAX_IN_MEMORY_BYTES)}, or --mode kill or trace")
    n_vars = parse_positive_int(args.vars, "--vars")
    trials = parse_positive_int(args.trials if args.trials is not None else "8", "--trials")
    if args.mode == "trace":
        strace.require()
    if args.model != "process" and args.mode != "trace":
        raise UsageError("--model applies to --mode trace only")
    spec = GraphSpec(n_vars=n_vars, state_bytes=size, seed=args.seed)
    out = ensure_writable_dir(args.out or os.path.join("results", "crash"), "results directory")
    if args.mode not in IN_MEMORY_MODES:
        free = shutil.disk_usage(out).free
        if free < DISK_FACTOR * size:
            raise UsageError(f"--size {args.size} needs about {format_bytes(DISK_FACTOR * size)} free under "
                             f"{out} (saves kept, the recorded save, one crash state); {format_bytes(free)} free")
    user_target = ""
    if target:   # last: it imports TensorFlow and the user's module to check the protocol
        from ..savers.user import check_spec
        user_target = check_spec(target)
    return CrashConfig(mode=args.mode, apis=apis, model=args.model, trials=trials, seed=args.seed,
                       spec=spec, out=out, quiet=bool(args.quiet), user_target=user_target)


# only with --mode task-*: argument name -> its flag
TASK_FAULT_OPTIONS = {"task": "--task", "point": "--point", "settings": "--fail-fast/--tf-defaults",
                      "timeout": "--timeout"}


def crash_main(args) -> int:
    from ..distributed.strategy import parse_strategy
    from .campaign import Campaign

    strategy = parse_strategy(getattr(args, "strategy", None))
    if strategy.distributed or str(args.mode).startswith("task-"):   # task faults on a cluster
        if not strategy.distributed:
            raise UsageError(f"--mode {args.mode} faults a task of a cluster: give --strategy multi-worker:N "
                             f"or parameter-server:W,P")
        from ..distributed.faults import main as task_faults_main
        return task_faults_main(args, strategy)
    given = [flag for name, flag in TASK_FAULT_OPTIONS.items() if getattr(args, name, None) is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: only for task faults (--mode task-kill, task-freeze "
                         f"or task-absent with --strategy multi-worker:N or parameter-server:W,P)")
    cfg = config_from_args(args)
    campaign = Campaign(cfg)
    if cfg.user_target:
        campaign.extra_meta["target"] = cfg.user_target
    campaign.run()
    print(campaign.summary())
    return 0


def replay_main(args) -> int:
    from .cases import load_case, replay

    target = load_case(args.case_dir).get("target") or {}
    if target.get("keras") in ("2", "3"):   # judge it under the Keras it was recorded with
        from ..tfenv import select_keras
        select_keras(target["keras"])
    user = target.get("user")
    if user:   # the user's save code must still be where the case says, or the checker cannot load it
        from ..savers.user import check_spec
        check_spec(user)
    verdict, case = replay(args.case_dir)
    recorded = case["outcome"]
    same = verdict.outcome.value == recorded
    # the outcome decides; a detail that differs (another error, another cause) is said too
    same_detail = verdict.detail == case.get("detail", "")
    status = ("same as recorded" if same and same_detail else
              "same outcome as recorded, another detail" if same else "DIFFERENT from the recorded " + recorded)
    print(f"replayed {args.case_dir}: {verdict.outcome.value} ({status})")
    print(f"  api {case['api']}, mode {case['mode']}, model {case.get('model', '')}; fault: {case['fault']}")
    print(f"  detail: {verdict.detail}")
    if not same_detail:
        print(f"  recorded detail: {case.get('detail', '')}")
    return 0 if same else 1
