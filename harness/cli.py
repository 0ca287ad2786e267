"""Command line: parsing only. Each command lives in its own module and is
imported when it runs, so `--help` and `list` never import TensorFlow."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import HarnessError
from .savers import API_NAMES  # the registry; importing it does not import TensorFlow
from .faults.apis import CRASH_APIS  # nor does this

# command -> "module:function"; the function takes the parsed args, returns an exit code
COMMANDS = {
    "run": "harness.runner:main",
    "list": "harness.listing:main",
    "crash": "harness.faults.cli:crash_main",
    "replay": "harness.faults.cli:replay_main",
    "catalog": "harness.catalog.cli:catalog_main",
    "diagnose": "harness.catalog.cli:diagnose_main",
    "compare-tf": "harness.report.cli:compare_tf_main",
    "report": "harness.report.cli:report_main",
    "profile": "harness.profile.cli:main",
}

# commands that use TensorFlow in this process (run, crash and replay use it only in their workers)
_TF_COMMANDS = {"catalog", "diagnose"}



class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(2, f"ckpt-harness: error: {message}\n")


def _add_scenario_args(p: argparse.ArgumentParser, *, default_size: str | None, default_vars: int | None):
    p.add_argument("--api", action="append", metavar="A",
                   help=f"save/restore API, repeatable ({', '.join(API_NAMES)})")
    p.add_argument("--device", default="cpu", metavar="D",
                   help="cpu, gpu, gpu:N, or multi-cpu:N (N logical CPU devices) [cpu]")
    p.add_argument("--size", default=default_size, metavar="SIZE", help="total state size, e.g. 64MiB, 8GiB")
    p.add_argument("--vars", default=default_vars, metavar="N", help="number of variables")
    p.add_argument("--shape-mix", default=None, metavar="M", help="mixed, few-large or many-small [mixed]")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="a real architecture's variable layout instead of --vars/--size/--shape-mix "
                        "(`ckpt-harness list` names them)")
    p.add_argument("--dtype", action="append", metavar="T", help="float32 (default), bfloat16, int64; repeatable")
    p.add_argument("--optimizer", action="store_true", help="add Adam slots and a step after one real training step")
    p.add_argument("--seed", default=0, type=int, help="seed of the deterministic values [0]")
    p.add_argument("--out", default=None, metavar="DIR", help="results directory [results/runs]")


def _add_keras_arg(p: argparse.ArgumentParser):
    p.add_argument("--keras", default=None, choices=["3", "2"],
                   help="Keras 3, or 2 = tf-keras (legacy Keras, TF_USE_LEGACY_KERAS=1; extra [keras2]) "
                        "[as the environment says]")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ckpt-harness", description="Benchmark and stress harness for TensorFlow save/restore.")
    parser.add_argument("--version", action="version", version=f"ckpt-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="time build/init/save/restore/verify for scenarios")
    _add_scenario_args(p, default_size=None, default_vars=None)
    p.add_argument("--repeat", default="3", metavar="N", help="repeats of each phase [3]")
    p.add_argument("--scratch", default=None, metavar="DIR",
                   help="where checkpoints are written (the filesystem under test) [a temp dir inside the run dir]")
    p.add_argument("--timeout", default="3600", metavar="S", help="seconds allowed per scenario [3600]")
    p.add_argument("--max-to-keep", default="2", metavar="N", help="tf2-manager max_to_keep [2]")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    _add_keras_arg(p)
    p.add_argument("--strategy", default="none", metavar="S",
                   help="tf.distribute strategy: none, mirrored:N (N logical CPUs), multi-worker:N "
                        "(N worker processes on 127.0.0.1) or parameter-server:W,P [none]; "
                        "see docs/distributed.md")
    p.add_argument("--cluster-from-env", action="store_true",
                   help="be ONE task of a multi-worker cluster that an external launcher started, with "
                        "TF_CONFIG set per task; --out must be shared by all tasks (docs/distributed.md)")
    p.add_argument("--run-id", default=None, metavar="ID",
                   help="with --cluster-from-env: joined to TF_CONFIG's cluster to name the run; give "
                        "each launch its own (e.g. the Slurm job id) [none]")
    p.add_argument("--no-barrier", action="store_true", help=argparse.SUPPRESS)  # tests: the barrier race
    p.add_argument("--chief-save-delay", default=0.0, type=float, help=argparse.SUPPRESS)  # tests: plant it

    sub.add_parser("list", help="list APIs, devices, shape mixes and the default scenarios")

    p = sub.add_parser("crash", help="crash injection: kill, mutate, diskfull, trace; task faults on a cluster")
    p.add_argument("--mode", required=True,
                   choices=["kill", "mutate", "diskfull", "trace", "task-kill", "task-freeze", "task-absent"])
    p.add_argument("--api", action="append", metavar="A",
                   help=f"API, repeatable ({', '.join(CRASH_APIS)}) [tf2-manager]")
    p.add_argument("--target", default=None, metavar="SPEC",
                   help="crash-test your own save code: module:function or path/to/file.py:function "
                        "(docs/crash.md, 'Your own save code'); replaces --api")
    p.add_argument("--model", default="process", choices=["process", "power"],
                   help="crash model for trace mode [process]")
    p.add_argument("--trials", default=None, metavar="N",
                   help="trials for kill mode / samples for mutate [8]; trials of a task fault [1]")
    p.add_argument("--seed", default=0, type=int)
    p.add_argument("--size", default="1MiB", metavar="SIZE", help="state size of the checkpoint [1MiB]")
    p.add_argument("--vars", default="16", metavar="N", help="number of variables [16]")
    p.add_argument("--out", default=None, metavar="DIR", help="results directory [results/crash]")
    p.add_argument("--quiet", action="store_true")
    _add_keras_arg(p)
    g = p.add_argument_group("task faults (--mode task-*, docs/distributed.md)")
    g.add_argument("--strategy", default="none", metavar="S", help="multi-worker:N or parameter-server:W,P for a task fault [none]")
    g.add_argument("--task", default=None, metavar="T", help="the task to fault: chief, worker:N or ps:N")
    g.add_argument("--point", default=None, metavar="P",
                   help="where in the round: before_save (default), before_merge, during_merge, "
                        "before_checkpoint_update (inside the save, with strace; multi-worker), after_save or "
                        "before_restore")
    ff = g.add_mutually_exclusive_group()
    ff.add_argument("--fail-fast", dest="settings", action="store_const", const="fail-fast",
                    help="collective and barrier timeouts set by the harness (default)")
    ff.add_argument("--tf-defaults", dest="settings", action="store_const", const="tf-defaults",
                    help="TensorFlow's defaults: no collective timeout")
    g.add_argument("--timeout", default=None, metavar="S",
                   help="seconds the harness waits after the fault for the other tasks to react "
                        "[fail-fast: collective timeout + 30; tf-defaults: 120]")

    p = sub.add_parser("replay", help="re-run the oracle on a recorded crash case")
    p.add_argument("case_dir", metavar="CASE_DIR")

    p = sub.add_parser("catalog", help="reproduce the causes of 'uninitialized value' restore failures")
    p.add_argument("--out", default=None, metavar="DIR", help="results directory [results/catalog]")
    _add_keras_arg(p)

    p = sub.add_parser("diagnose", help="check a checkpoint, or compare it with the model that fails to load it")
    p.add_argument("ckpt", metavar="CKPT", help="checkpoint prefix or directory with a 'checkpoint' file")
    p.add_argument("--against", metavar="TARGET",
                   help="another checkpoint, a TF1 .meta file, or module:function that builds the model")

    p = sub.add_parser("compare-tf", help="table of asv results: benchmark x TensorFlow version")
    p.add_argument("results_dir", nargs="?", default=None, metavar="RESULTS_DIR", help="asv results dir [results/asv]")
    p.add_argument("--baseline", default=None, metavar="VERSION", help="TF version the ratios are relative to [oldest]")
    p.add_argument("--out", default=None, metavar="FILE", help="CSV output [RESULTS_DIR/compare-tf.csv]")

    p = sub.add_parser("profile", help="fit fixed / per-variable / per-byte save and restore cost per API")
    p.add_argument("--api", action="append", metavar="A", help="API, repeatable [tf2-checkpoint]")
    p.add_argument("--sizes", default=None, metavar="S,S,...", help="state sizes [4MiB,16MiB,64MiB]")
    p.add_argument("--vars", default=None, metavar="N,N,...", help="variable counts [16,256,2048]")
    p.add_argument("--at-vars", default=None, metavar="N",
                   help="variable count at which the dominant term is named [the sweep's median]")
    p.add_argument("--model", action="append", metavar="M",
                   help="a real model's layout instead of --sizes/--vars, repeatable (each model is one point: "
                        "the terms are fitted only when the models tell them apart)")
    p.add_argument("--repeat", default="2", metavar="N", help="repeats of each point [2]")
    p.add_argument("--device", default="cpu", metavar="D", help="cpu, gpu, gpu:N, multi-cpu:N [cpu]")
    p.add_argument("--shape-mix", default="mixed", metavar="M", help="mixed, few-large or many-small [mixed]")
    p.add_argument("--seed", default=0, type=int, help="seed of the deterministic values [0]")
    p.add_argument("--no-strace", action="store_true", help="skip the strace breakdown of one save per API")
    p.add_argument("--out", default=None, metavar="DIR", help="results directory [results/runs]")
    p.add_argument("--scratch", default=None, metavar="DIR", help="where checkpoints are written [inside the run dir]")
    p.add_argument("--timeout", default="3600", metavar="S", help="seconds allowed per scenario [3600]")
    p.add_argument("--quiet", action="store_true", help="no progress display")

    p = sub.add_parser("report", help="self-contained HTML report of run/crash results")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    p.add_argument("--out", default=None, metavar="FILE", help="HTML file [RUN_DIR/report.html]")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.command == "run" and getattr(args, "run_id", None) is not None and not args.cluster_from_env:
        parser.error("--run-id is only for --cluster-from-env")
    if args.command == "run" and args.cluster_from_env and not str(args.strategy).strip().lower().startswith(
            "multi-worker"):
        parser.error("--cluster-from-env needs --strategy multi-worker:N (N: the tasks in TF_CONFIG)")
    module_name, func_name = COMMANDS[args.command].split(":")
    try:
        if getattr(args, "keras", None):   # before anything imports TF; children inherit it
            from .tfenv import select_keras
            select_keras(args.keras)
        if args.command in _TF_COMMANDS:
            from .tfenv import import_tensorflow
            import_tensorflow()
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)
    except HarnessError as e:
        print(f"ckpt-harness: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ckpt-harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
