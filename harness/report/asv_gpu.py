"""asv on a GPU machine: derive a GPU config from asv.conf.json.

asv pins every matrix entry with == and drops extras, so the CPU config's
`tensorflow-cpu` cannot simply become `tensorflow[and-cuda]`. The GPU config
instead pins `tensorflow` and adds an install step that, inside each asv
environment, installs `tensorflow[and-cuda]` at the version already there
(which brings the CUDA/cuDNN wheels matching that TensorFlow).

    python -m harness.report.asv_gpu config [--tf VERSION ...] [--out FILE]
    python -m harness.report.asv_gpu cuda-extras   (run by asv's install_command)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ..errors import HarnessError, UsageError

CUDA_EXTRAS_STEP = "in-dir={env_dir} python -m harness.report.asv_gpu cuda-extras"


def strip_json_comments(text: str) -> str:
    """Drop // line comments outside strings (asv.conf.json allows them, json does not)."""
    out, i, in_string = [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def load_conf(path) -> dict:
    try:
        return json.loads(strip_json_comments(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read asv config {path}: {e}") from None


def gpu_conf(conf: dict, tf_versions: list[str] | None = None) -> dict:
    """The CPU config with tensorflow-cpu swapped for tensorflow + its CUDA extras."""
    conf = json.loads(json.dumps(conf))  # deep copy
    req = conf.get("matrix", {}).get("req", {})
    versions = tf_versions or req.get("tensorflow-cpu") or req.get("tensorflow")
    if not versions:
        raise UsageError("asv config has no tensorflow-cpu/tensorflow entry in matrix.req")
    new_req = {k: v for k, v in req.items() if k not in ("tensorflow-cpu", "tensorflow")}
    new_req["tensorflow"] = list(versions)  # last: TensorFlow decides numpy
    conf.setdefault("matrix", {})["req"] = new_req
    steps = list(conf.get("install_command") or [])
    if CUDA_EXTRAS_STEP not in steps:
        steps.append(CUDA_EXTRAS_STEP)
    conf["install_command"] = steps
    return conf


def install_cuda_extras() -> int:
    """pip install tensorflow[and-cuda]==<the installed tensorflow> into this interpreter."""
    from importlib import metadata

    try:
        version = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        raise UsageError("no 'tensorflow' distribution installed here") from None
    cmd = [sys.executable, "-m", "pip", "install", f"tensorflow[and-cuda]=={version}"]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report.asv_gpu")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("config", help="write the GPU variant of asv.conf.json")
    p.add_argument("--base", default="asv.conf.json")
    p.add_argument("--tf", action="append", metavar="VERSION", help="TensorFlow versions [those of --base]")
    p.add_argument("--out", default="asv.gpu.conf.json",
                   help="written beside --base, since asv resolves paths from the config's dir")
    sub.add_parser("cuda-extras", help="install tensorflow[and-cuda] at the installed version")
    args = parser.parse_args(argv)
    try:
        if args.command == "cuda-extras":
            return install_cuda_extras()
        conf = gpu_conf(load_conf(args.base), args.tf)
        Path(args.out).write_text(json.dumps(conf, indent=4) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    except HarnessError as e:
        print(f"asv_gpu: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
