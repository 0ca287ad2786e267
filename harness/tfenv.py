"""Importing TensorFlow without its start-up chatter, and choosing its Keras.

TF's C++ side prints an absl preamble and a oneDNN notice to fd 2 while it
loads, before TF_CPP_MIN_LOG_LEVEL takes effect; a CLI that promises one clear
line on bad input cannot let that through. The chatter is kept and shown only
if the import itself fails.

Keras: TensorFlow 2.16+ routes `tf.keras` to Keras 3 unless the environment
says TF_USE_LEGACY_KERAS=1, which routes it to tf-keras (legacy Keras 2).
`select_keras` sets that variable in this process before TensorFlow is
imported; every child the harness starts inherits its environment
(child.child_env), so the worker, the saving zygote and the checker all use
the same Keras. `keras_info` says which one, without importing TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile

from .errors import UsageError

LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"
_TRUE = ("true", "True", "1")   # the values TensorFlow itself accepts


def import_tensorflow():
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    with tempfile.TemporaryFile() as chatter:
        saved = os.dup(2)
        os.dup2(chatter.fileno(), 2)
        try:
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            chatter.seek(0)
            sys.stderr.write(chatter.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


def legacy_keras() -> bool:
    """True when TensorFlow in this environment routes tf.keras to tf-keras (Keras 2)."""
    return os.environ.get(LEGACY_KERAS_ENV) in _TRUE


def select_keras(flavour: str) -> None:
    """`--keras 2|3`: set TF_USE_LEGACY_KERAS for this process and its children.

    Must run before TensorFlow is imported (it reads the variable once); Keras 2 needs the
    tf_keras package (extra [keras2])."""
    if flavour not in ("2", "3"):
        raise UsageError(f"--keras {flavour!r}: choose 3 (Keras 3) or 2 (tf-keras)")
    want_legacy = flavour == "2"
    if "tensorflow" in sys.modules and legacy_keras() != want_legacy:
        raise UsageError(f"--keras {flavour}: TensorFlow is already imported with the other Keras")
    if want_legacy and importlib.util.find_spec("tf_keras") is None:
        raise UsageError("--keras 2 needs tf-keras: pip install 'ckpt-harness[keras2]' "
                         "(or tf-keras matching your TensorFlow)")
    os.environ[LEGACY_KERAS_ENV] = "1" if want_legacy else "0"


def keras_info() -> dict:
    """{'keras_flavour': 'keras3' | 'tf_keras', 'keras_version': ...} for the Keras that
    tf.keras gives in this environment, from package metadata (no TensorFlow import)."""
    from importlib import metadata

    legacy = legacy_keras()
    dist = "tf-keras" if legacy else "keras"
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = ""
    return {"keras_flavour": "tf_keras" if legacy else "keras3", "keras_version": version}
