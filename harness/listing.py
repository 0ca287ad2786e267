"""`ckpt-harness list`: what can be run here. Never imports TensorFlow."""

from __future__ import annotations

from . import models
from .devices import visible_gpu_count
from .runner import DEFAULT_APIS, DEFAULT_SIZES, DEFAULT_VARS
from .savers import API_NAMES, describe
from .specs import DTYPES, SHAPE_MIXES
from .units import format_bytes


def main(args) -> int:
    print("APIs:")
    width = max(map(len, API_NAMES)) + 1
    for api in API_NAMES:
        print(f"  {api:<{width}} {describe(api)}")
    n = visible_gpu_count()
    print("\nDevices:")
    print("  cpu               the CPU")
    print("  multi-cpu:N       N logical CPU devices, variables placed round-robin")
    if n:
        for i in range(n):
            print(f"  gpu:{i:<13} NVIDIA GPU {i} (gpu = gpu:0)")
    else:
        print("  gpu, gpu:N        (no NVIDIA GPU visible here)")
    print(f"\nShape mixes: {', '.join(SHAPE_MIXES)}")
    print(f"Dtypes: {', '.join(DTYPES)}")
    print("\nModels (--model NAME: a real architecture's variable layout, the harness's values; docs/models.md):")
    for m in models.summary():
        print(f"  {m['name']:<17} {m['params']:>13,} params {format_bytes(m['bytes']):>9} "
              f"{m['n_vars']:>4} vars  {m['description']}")
    print(f"\nDefault `ckpt-harness run`: APIs {', '.join(DEFAULT_APIS)} on cpu, "
          f"{' and '.join(DEFAULT_SIZES)} in {DEFAULT_VARS} variables each (mixed shapes), "
          f"{len(DEFAULT_APIS) * len(DEFAULT_SIZES)} scenarios, 3 repeats")
    return 0
