"""Importing TensorFlow without its start-up chatter on the user's terminal.

TF's C++ side prints an absl preamble and a oneDNN notice to fd 2 while it
loads, before TF_CPP_MIN_LOG_LEVEL takes effect; a CLI that promises one clear
line on bad input cannot let that through. The chatter is kept and shown only
if the import itself fails.
"""

from __future__ import annotations

import os
import sys
import tempfile


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
