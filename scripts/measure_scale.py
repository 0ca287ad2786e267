"""Figures asked for in issue 2, measured outside the test suite.

  python scripts/measure_scale.py overhead [--size 256MiB] [--repeats 15]
  python scripts/measure_scale.py run -- <ckpt-harness run args>   (then reads peak RSS from phases.csv)
"""

import argparse
import json
import sys
import tempfile

from harness.specs import GraphSpec
from harness.units import parse_size


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["overhead"])
    p.add_argument("--size", default="256MiB")
    p.add_argument("--vars", type=int, default=64)
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args()
    from harness.overhead import measure
    with tempfile.TemporaryDirectory(prefix="ckpt-overhead-") as d:
        out = measure(GraphSpec(n_vars=a.vars, state_bytes=parse_size(a.size)), a.repeats, d)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
