"""`ckpt-harness list`: what can be run here. Never imports TensorFlow."""

from __future__ import annotations

from .devices import visible_gpu_count
from .runner import DEFAULT_APIS, DEFAULT_SIZE, DEFAULT_VARS
from .savers import API_NAMES, describe
from .specs import DTYPES, SHAPE_MIXES


def main(args) -> int:
    print("APIs:")
    for api in API_NAMES:
        print(f"  {api:<17} {describe(api)}")
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
    print(f"\nDefault `ckpt-harness run`: APIs {', '.join(DEFAULT_APIS)} on cpu, "
          f"{DEFAULT_SIZE} in {DEFAULT_VARS} variables (mixed shapes), 3 repeats")
    return 0
