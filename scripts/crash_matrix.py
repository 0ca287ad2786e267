#!/usr/bin/env python3
"""The crash safety matrix: every crash target, kill and trace modes, in several environments.

    python scripts/crash_matrix.py [--env VERSION:KERAS ...] [--trials N] [--size SIZE] [--vars N]
                                   [--seed S] [--modes kill,trace-process,trace-power] [--out DIR]

Default environments: 2.21.0:3 (TensorFlow 2.21.0 with Keras 3), 2.21.0:2 (the same TensorFlow
with tf-keras, `--keras 2`) and 2.16.2:3. For each environment and each mode (`kill` with
--trials points, `trace` with the process and with the power crash model) one
`ckpt-harness crash` campaign runs every target of harness.faults.apis.CRASH_APIS. When a
campaign stops at a target (an error, a timeout), that target becomes a row saying why and the
targets after it run in a new campaign: nothing is dropped silently.

Which Python runs an environment (as scripts/catalog_all_tf.sh): $PYTHON (default: the Python
running this script) when its TensorFlow is that version, else $VENV_DIR/tf-VERSION, made on
first use with `pip install tensorflow-cpu==VERSION h5py psutil pandas nvidia-ml-py` (plus
tf-keras for Keras 2) while the other environments run; without VENV_DIR the venvs go in the
temporary directory removed on exit. The harness always comes from this checkout (PYTHONPATH).

Writes (atomically, after each environment, so an interrupted run keeps the finished ones;
rows of environments not run this time are kept from the previous matrix.csv):
    DIR/matrix.csv       one row per environment x target x mode/model: outcome counts, max
                         orphan bytes, the worst outcome, its cause (fault and detail), the
                         replay command of that worst case, and the commit (`<hash>-dirty` for a
                         tree with uncommitted changes)
    DIR/matrix.txt       the same as Markdown tables, headed by the commit and the date
    DIR/cases/ENV/TARGET-MODE[-MODEL]/   the worst failing case of each row (ckpt-harness replay)
    DIR/states/ENV/MODE[-MODEL].csv      every crash state as the campaigns recorded it
Default DIR: results/crash. Temporary campaign directories are removed on every exit path.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# none of these imports TensorFlow
from harness.child import exit_text, kill_group, last_line, sigterm_as_interrupt  # noqa: E402
from harness.errors import HarnessError, UsageError  # noqa: E402
from harness.faults.apis import CRASH_APIS, KERAS3_ONLY  # noqa: E402
from harness.outcomes import CRASH_STATE, worst  # noqa: E402
from harness.results import atomic_write_csv, atomic_write_json, atomic_write_text  # noqa: E402
from harness.units import format_bytes, parse_positive_int, parse_size  # noqa: E402

DEFAULT_ENVS = ("2.21.0:3", "2.21.0:2", "2.16.2:3")
MODES = {"kill": ("kill", "process"), "trace-process": ("trace", "process"), "trace-power": ("trace", "power")}
DEFAULT_MODES = ("kill", "trace-process", "trace-power")
MAX_TRACE_BYTES = 64 * 1024**2   # what `crash --mode trace` accepts
PACKAGES = ("h5py", "psutil", "pandas", "nvidia-ml-py")
LEAD = ["env", "tf_version", "keras", "keras_version", "target", "mode", "model", "status", "states", "distinct"]
TAIL = ["max_orphan_bytes", "worst", "worst_fault", "worst_detail", "replay", "notes", "wall_seconds", "settings",
        "commit"]
STOP_GRACE = 90.0   # seconds a campaign gets after SIGTERM to clean up its own children


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- environments ---------------------------------------------------------------------------
class Env:
    def __init__(self, spec: str):
        version, sep, keras = spec.partition(":")
        keras = keras if sep else "3"
        if not version or any(not p.isdigit() for p in version.split(".")) or version.count(".") != 2:
            raise UsageError(f"--env {spec!r}: expected VERSION:KERAS with a full TensorFlow version, e.g. 2.21.0:3")
        if keras not in ("3", "2"):
            raise UsageError(f"--env {spec!r}: KERAS is 3 (Keras 3) or 2 (tf-keras)")
        self.version, self.keras = version, keras
        self.name = f"tf-{version}-{'keras3' if keras == '3' else 'tf_keras'}"
        self.python = ""

    @property
    def words(self) -> str:
        return f"TensorFlow {self.version} with {'Keras 3' if self.keras == '3' else 'tf-keras (--keras 2)'}"


def tf_version_of(python: str) -> str:
    """The tensorflow(-cpu) version a Python has, from package metadata (no import), or ''."""
    code = ("from importlib import metadata\n"
            "for d in ('tensorflow-cpu', 'tensorflow'):\n"
            "    try:\n        print(metadata.version(d)); break\n"
            "    except metadata.PackageNotFoundError:\n        pass\n")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def has_tf_keras(python: str) -> bool:
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tf_keras') is None)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Installs:
    """Venvs made in the background (one per TensorFlow version) while other environments run."""

    def __init__(self, base_python: str, venv_dir: str, logs: str):
        self.base, self.venv_dir, self.logs = base_python, venv_dir, logs
        self.procs: dict[str, tuple[subprocess.Popen, str, float]] = {}

    def start(self, version: str, keras2: bool) -> None:
        venv = os.path.join(self.venv_dir, f"tf-{version}")
        py = os.path.join(venv, "bin", "python")
        if version in self.procs or (tf_version_of(py) == version and (not keras2 or has_tf_keras(py))):
            return
        major_minor = ".".join(version.split(".")[:2])
        pkgs = [f"tensorflow-cpu=={version}", *PACKAGES] + ([f"tf-keras=={major_minor}.*"] if keras2 else [])
        os.makedirs(self.venv_dir, exist_ok=True)
        log = os.path.join(self.logs, f"pip-{version}.log")
        script = ('set -e; rm -rf "$2"; "$1" -m venv "$2"; '
                  '"$2/bin/python" -m pip install --quiet --disable-pip-version-check "${@:3}"')
        with open(log, "w") as f:
            proc = subprocess.Popen(["bash", "-c", script, "install", self.base, venv, *pkgs], stdout=f,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[version] = (proc, log, time.monotonic())
        say(f"   installing {' '.join(pkgs)} into {venv} (in the background)")

    def python_for(self, env: Env) -> tuple[str, str]:
        """(python, '') for env, or ('', why not), waiting for its install if one runs."""
        venv = os.path.join(self.venv_dir, f"tf-{env.version}")
        py = os.path.join(venv, "bin", "python")
        if env.version in self.procs:
            proc, log, t0 = self.procs[env.version]
            if proc.poll() is None:
                say(f"   waiting for the install of tensorflow-cpu {env.version} ...")
            rc = proc.wait()
            if rc != 0:
                return "", f"pip install of tensorflow-cpu=={env.version} failed ({exit_text(rc)}): {last_line(log)}"
            say(f"   tensorflow-cpu {env.version} installed in {venv} ({time.monotonic() - t0:.0f} s after start)")
        found = tf_version_of(py)
        if found != env.version:
            return "", f"{py} has tensorflow {found or 'none'}, not {env.version}"
        return py, ""

    def close(self) -> None:
        for proc, _, _ in self.procs.values():
            if proc.poll() is None:
                kill_group(proc)


# -- one campaign -----------------------------------------------------------------------------
class CampaignRun:
    """`python -m harness crash ...` in a session of its own, its output logged and echoed."""

    def __init__(self, python: str, env: Env, mode: str, model: str, apis: list[str], out: str, log: str,
                 opts, timeout: float):
        self.cmd = [python, "-m", "harness", "crash", "--mode", mode] + (["--model", model] if mode == "trace" else [])
        self.cmd += ["--trials", str(opts.trials), "--seed", str(opts.seed), "--size", opts.size,
                     "--vars", str(opts.vars), "--out", out, "--keras", env.keras]
        for api in apis:
            self.cmd += ["--api", api]
        self.out, self.log, self.timeout = out, log, timeout
        self.proc: subprocess.Popen | None = None
        self.timed_out = False

    def run(self) -> int:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(self.log, "w") as f:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        with open(self.log, errors="replace") as echo:
            try:
                while self.proc.poll() is None:
                    self._echo(echo)
                    if time.monotonic() > deadline:
                        self.timed_out = True
                        self.stop()
                        break
                    time.sleep(0.5)
            except KeyboardInterrupt:
                self.stop()
                raise
            finally:
                self._echo(echo)
        return self.proc.returncode

    def _echo(self, f) -> None:
        for line in f.read().splitlines():
            if line.strip():
                say(f"      {line}")

    def stop(self) -> None:
        """SIGTERM (the campaign then kills its own children and writes what it finished);
        the whole group is killed if it has not left after STOP_GRACE seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(STOP_GRACE)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            kill_group(self.proc)

    def why(self, rc: int) -> str:
        if self.timed_out:
            return f"campaign timed out after {self.timeout:.0f} s"
        return f"campaign ended with {exit_text(rc)}: {last_line(self.log, 300) or 'no output'}"

    def results(self) -> tuple[str, dict, list[dict]]:
        """(run dir, metadata, crash.csv rows) of the campaign's run, or ('', {}, [])."""
        metas = sorted(glob.glob(os.path.join(self.out, "*", "metadata.json")))
        if not metas:
            return "", {}, []
        run_dir = os.path.dirname(metas[-1])
        with open(metas[-1]) as f:
            meta = json.load(f)
        path = os.path.join(run_dir, "crash.csv")
        rows = []
        if os.path.exists(path):
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        return run_dir, meta, rows


# -- one matrix row ---------------------------------------------------------------------------
def one_line(text: str, limit: int = 400) -> str:
    return " ".join(str(text).split())[:limit]


def summarize(env: Env, tag: str, api: str, rows: list[dict], meta: dict, run_dir: str, stage: str,
              out_rel: str, commit: str, settings: str) -> dict:
    """The matrix row of one target in one campaign; copies its worst case folder to `stage`."""
    mode, model = MODES[tag]
    per_api = (meta.get("per_api") or {}).get(api, {})
    counts = {o.value: sum(r["outcome"] == o.value for r in rows) for o in CRASH_STATE}
    bad = worst(r["outcome"] for r in rows)
    row = {"env": env.name, "tf_version": meta.get("tensorflow_runtime_version") or env.version,
           "keras": meta.get("keras_flavour", ""), "keras_version": meta.get("keras_version", ""),
           "target": api, "mode": mode, "model": model, "status": "ran", "states": len(rows),
           "distinct": sum(not r.get("duplicate_of") for r in rows),
           "max_orphan_bytes": max((int(r["orphan_bytes"] or 0) for r in rows), default=0),
           "worst": bad.value if bad else "", "notes": " | ".join(per_api.get("notes") or []),
           "wall_seconds": per_api.get("wall_seconds", ""), "settings": settings, "commit": commit, "replay": ""}
    row.update(counts)
    if not rows:
        row["status"], row["notes"] = "no states", "the campaign made no crash state for this target"
        return row
    same = [r for r in rows if r["outcome"] == bad.value]
    pick = next((r for r in same if r.get("case_dir")), None) or next((r for r in same if r.get("similar_case")), same[0])
    row["worst_fault"], row["worst_detail"] = one_line(pick["fault"]), one_line(pick["detail"])
    case_rel = pick.get("case_dir") or pick.get("similar_case") or ""
    if case_rel and os.path.isfile(os.path.join(run_dir, case_rel, "case.json")):
        name = f"{api}-{tag}"
        dst = os.path.join(stage, name)
        shutil.copytree(os.path.join(run_dir, case_rel), dst, symlinks=True)
        with open(os.path.join(dst, "case.json")) as f:
            case = json.load(f)
        if case.get("api") != api:   # a replay of it would judge another target's save
            raise HarnessError(f"{run_dir}: the case {case_rel} of a {api} state is a {case.get('api')} case")
        # the folder a similar state points to has its own fault and detail: report those, as replay shows them
        row["worst_fault"], row["worst_detail"] = one_line(case.get("fault", "")), one_line(case.get("detail", ""))
        rel = os.path.join(out_rel, "cases", env.name, name)
        case["replay"] = f"ckpt-harness replay {rel}"
        atomic_write_json(os.path.join(dst, "case.json"), case)
        row["replay"] = case["replay"]
    return row


def not_run(env: Env, tag: str, api: str, why: str, commit: str, settings: str) -> dict:
    mode, model = MODES[tag]
    return {"env": env.name, "tf_version": env.version, "keras": "keras3" if env.keras == "3" else "tf_keras",
            "target": api, "mode": mode, "model": model, "status": "not run", "notes": one_line(why, 500),
            "settings": settings, "commit": commit}


# -- the tables -------------------------------------------------------------------------------
def outcome_columns(rows: list[dict]) -> list[str]:
    return [o.value for o in CRASH_STATE if any(str(r.get(o.value, "")) not in ("", "0") for r in rows)]


def write_tables(out: str, rows: list[dict], settings: str) -> None:
    words = outcome_columns(rows)
    columns = LEAD + words + TAIL
    atomic_write_csv(os.path.join(out, "matrix.csv"), [{k: r.get(k, "") for k in columns} for r in rows], columns)
    commits = sorted({r.get("commit", "") for r in rows})
    lines = ["# Crash safety matrix", "",
             f"Made by `scripts/crash_matrix.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"harness commit {', '.join(commits)}. {settings}", "",
             "Each row: one `ckpt-harness crash` campaign's states for one target; `worst` is the worst "
             "outcome (harness/outcomes.py order), `cause` the fault and detail of the state shown. "
             "Replay commands run from the repository root; replay a case under the TensorFlow and Keras "
             "of its environment (the case records its Keras; TensorFlow is the one you run it with).", ""]
    envs = list(dict.fromkeys(r["env"] for r in rows))
    for name in envs:
        sub = [r for r in rows if r["env"] == name]
        first = sub[0]
        keras = {"keras3": "Keras", "tf_keras": "tf-keras"}.get(first.get("keras", ""), first.get("keras", ""))
        keras += f" {first['keras_version']}" if first.get("keras_version") else ""
        lines += [f"## {name}: TensorFlow {first['tf_version']}, {keras} (commit {first.get('commit', '')})", ""]
        head = ["target", "mode/model", "states"] + words + ["orphan max", "worst", "cause (fault → detail)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in sub:
            mm = f"{r['mode']}/{r['model']}"
            if r.get("status") != "ran":
                cells = [r["target"], mm, "-"] + ["-"] * len(words) + ["-", f"**{r.get('status')}**",
                                                                       _cell(r.get("notes", ""), 200)]
            else:
                cause = _cell(r.get("worst_fault", ""), 110) + " → " + _cell(r.get("worst_detail", ""), 160)
                cells = [r["target"], mm, str(r["states"])] + [str(r.get(w, "") or 0) for w in words] + [
                    format_bytes(int(r.get("max_orphan_bytes") or 0)), r.get("worst", ""), cause]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Worst case per target:", ""]
        for target in dict.fromkeys(r["target"] for r in sub):
            mine = [r for r in sub if r["target"] == target]
            ran = [r for r in mine if r.get("status") == "ran" and r.get("worst")]
            if not ran:
                lines.append(f"- `{target}`: not run ({_cell(mine[0].get('notes', ''), 160)})")
                continue
            bad = worst(r["worst"] for r in ran)
            r = next(r for r in ran if r["worst"] == bad.value)
            where = f"{r['mode']}/{r['model']}"
            if r.get("replay"):
                lines.append(f"- `{target}`: **{bad.value}** ({where}): `{r['replay']}`")
            else:
                lines.append(f"- `{target}`: {bad.value} at worst ({where}): no failing state")
        lines.append("")
    atomic_write_text(os.path.join(out, "matrix.txt"), "\n".join(lines))


def _cell(text: str, limit: int) -> str:
    text = one_line(text, 10_000).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def commit_name() -> str:
    try:
        short = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                               text=True, timeout=30).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", REPO, "--no-optional-locks", "diff", "--quiet", "HEAD", "--"],
                               capture_output=True, timeout=60).returncode != 0
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return short + ("-dirty" if dirty and short != "unknown" else "")


# -- main -------------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", action="append", metavar="VERSION:KERAS",
                   help=f"TensorFlow version and Keras (3, or 2 = tf-keras), repeatable [{' '.join(DEFAULT_ENVS)}]")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"comma list of {', '.join(MODES)}")
    p.add_argument("--target", action="append", metavar="API", help="crash target, repeatable [all]")
    p.add_argument("--trials", default="12", help="kill points per target [12]")
    p.add_argument("--size", default="256KiB", help="state size [256KiB]")
    p.add_argument("--vars", default="16", help="variables [16]")
    p.add_argument("--seed", default=0, type=int)
    p.add_argument("--timeout", default=900, type=float, help="seconds per campaign [900]")
    p.add_argument("--out", default=os.path.join("results", "crash"), help="results directory [results/crash]")
    args = p.parse_args(argv)
    args.envs = [Env(s) for s in dict.fromkeys(args.env or DEFAULT_ENVS)]
    args.tags = [t.strip() for t in args.modes.split(",") if t.strip()]
    for t in args.tags:
        if t not in MODES:
            raise UsageError(f"--modes: unknown {t!r}; choose from {', '.join(MODES)}")
    args.targets = list(dict.fromkeys(args.target or CRASH_APIS))
    for t in args.targets:
        if t not in CRASH_APIS:
            raise UsageError(f"--target {t!r}: choose from {', '.join(CRASH_APIS)}")
    args.trials = parse_positive_int(args.trials, "--trials")
    args.vars = parse_positive_int(args.vars, "--vars")
    if parse_size(args.size) > MAX_TRACE_BYTES and any(MODES[t][0] == "trace" for t in args.tags):
        raise UsageError(f"--size {args.size}: trace mode takes at most 64MiB")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    return args


def main(argv=None) -> int:
    try:
        opts = parse_args(argv)
    except HarnessError as e:
        print(f"crash_matrix: error: {e}", file=sys.stderr)
        return e.exit_code
    out = os.path.abspath(opts.out)
    out_rel = os.path.relpath(out, REPO) if out.startswith(REPO + os.sep) else out
    os.makedirs(out, exist_ok=True)
    commit = commit_name()
    base_python = os.environ.get("PYTHON") or sys.executable
    tmp = tempfile.mkdtemp(prefix="ckpt-crash-matrix.")
    installs = Installs(base_python, os.environ.get("VENV_DIR") or os.path.join(tmp, "venvs"), tmp)
    settings = (f"kill: `--trials {opts.trials}`; trace: process and power crash models; "
                f"`--size {opts.size} --vars {opts.vars} --seed {opts.seed}`; save 3 crashes after saves 1-2 "
                f"completed (max_to_keep 2).")
    say(f"crash matrix: harness commit {commit}; {len(opts.envs)} environment(s) x {len(opts.tags)} mode(s) x "
        f"{len(opts.targets)} target(s)")
    t_all = time.monotonic()
    status = 0
    current: list[CampaignRun] = []
    all_rows: list[dict] = []   # the rows of the environments finished so far
    step = 0
    try:
        with sigterm_as_interrupt():
            base_version = tf_version_of(base_python)
            for env in opts.envs:   # installs first, so they run while the others campaign
                if base_version != env.version:
                    installs.start(env.version, env.keras == "2")
            for env in opts.envs:
                t_env = time.monotonic()
                say(f"== {env.name}: {env.words}")
                if base_version == env.version:
                    python, why = base_python, ""
                else:
                    python, why = installs.python_for(env)
                rows: list[dict] = []
                stage = os.path.join(tmp, "stage", env.name)
                states_stage = os.path.join(tmp, "states", env.name)
                os.makedirs(stage)
                os.makedirs(states_stage)
                for tag in opts.tags:
                    mode, model = MODES[tag]
                    step += 1
                    row_settings = (f"--trials {opts.trials} " if mode == "kill" else "") + \
                        f"--size {opts.size} --vars {opts.vars} --seed {opts.seed}"
                    say(f"[{step}/{len(opts.envs) * len(opts.tags)}] {env.name} {tag} "
                        f"({time.monotonic() - t_all:.0f} s so far)")
                    if not python:
                        rows += [not_run(env, tag, api, why, commit, row_settings) for api in opts.targets]
                        status = 1
                        continue
                    remaining, attempt, state_rows, metas = list(opts.targets), 0, [], []
                    if env.keras == "2":   # not an error: these targets model Keras 3's callback only
                        rows += [not_run(env, tag, api, f"{api} is a Keras 3 target", commit, row_settings)
                                 for api in remaining if api in KERAS3_ONLY]
                        remaining = [api for api in remaining if api not in KERAS3_ONLY]
                    while remaining:
                        attempt += 1
                        say(f"   {tag}: {' '.join(remaining)}")
                        run = CampaignRun(python, env, mode, model, remaining,
                                          os.path.join(tmp, "runs", env.name, f"{tag}-{attempt}"),
                                          os.path.join(tmp, f"{env.name}-{tag}-{attempt}.log"), opts, opts.timeout)
                        current[:] = [run]
                        rc = run.run()
                        current.clear()
                        run_dir, meta, crash_rows = run.results()
                        started = list((meta.get("per_api") or {}))
                        ok = rc == 0 and not run.timed_out and not meta.get("interrupted")
                        done = [a for a in started if a in remaining] if ok else [a for a in started[:-1] if a in remaining]
                        failed = [] if ok else ([started[-1]] if started else list(remaining))
                        if ok and not done:
                            failed = list(remaining)   # exit 0 without running anything: say so
                        if meta:
                            metas.append(meta)
                        for api in remaining:   # in the order asked, for a stable matrix
                            if api in done:
                                api_rows = [r for r in crash_rows if r["api"] == api]
                                state_rows += api_rows
                                rows.append(summarize(env, tag, api, api_rows, meta, run_dir, stage, out_rel, commit,
                                                     row_settings))
                            elif api in failed:
                                why_not = run.why(rc) if not ok else "the campaign ended without running it"
                                rows.append(not_run(env, tag, api, why_not, commit, row_settings))
                                say(f"   {api} not run ({tag}): {why_not}")
                                status = 1
                        remaining = [a for a in remaining if a not in done and a not in failed]
                    if state_rows:
                        columns = list(state_rows[0])
                        atomic_write_csv(os.path.join(states_stage, f"{tag}.csv"), state_rows, columns)
                    atomic_write_json(os.path.join(states_stage, f"{tag}-metadata.json"), metas)
                # this environment is finished: swap in its cases and states, rewrite the tables
                order = {(t, m): i for i, (t, m) in enumerate((t, MODES[m]) for t in opts.targets for m in opts.tags)}
                rows.sort(key=lambda r: order.get((r["target"], (r["mode"], r["model"])), 0))
                for sub, src in (("cases", stage), ("states", states_stage)):
                    dst = os.path.join(out, sub, env.name)
                    new = dst + ".new"
                    shutil.rmtree(new, ignore_errors=True)
                    shutil.copytree(src, new, symlinks=True)
                    shutil.rmtree(dst, ignore_errors=True)
                    os.rename(new, dst)
                all_rows += rows
                finished = {r["env"] for r in all_rows} | {env.name}
                kept = [r for r in read_rows(os.path.join(out, "matrix.csv")) if r.get("env") not in finished]
                write_tables(out, kept + all_rows, settings)
                say(f"   {env.name} done in {time.monotonic() - t_env:.0f} s -> {out_rel}/matrix.csv, matrix.txt")
    except KeyboardInterrupt:
        say("crash matrix: interrupted; environments finished before are written")
        status = 130
    finally:
        for run in current:
            run.stop()
        installs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"crash matrix: done in {time.monotonic() - t_all:.0f} s (exit {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
