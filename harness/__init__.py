"""ckpt-harness: benchmark and stress harness for TensorFlow save/restore.

Pipeline, one sub-package per stage:
    specs (graph specs) -> savers (one adapter per API) -> phases + telemetry
    -> oracle -> faults -> results + report
Importing this package never imports TensorFlow.
"""

__version__ = "0.1.0"
