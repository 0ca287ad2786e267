"""Planted corruption that TensorFlow's own checks cannot see.

The checkpoint is rewritten through TF's bundle writer (SaveV2), so every
checksum and offset in the new index is consistent; only the content is wrong:
  change-value   one element of one variable changed
  drop-variable  one variable removed from the index (and, for object-based
                 checkpoints, from the object graph, so nothing points at it)
A correct oracle must call the first `silent`, never `new`. Runs in a trial
process (TensorFlow imported); the harness passes a copy it owns.
"""

from __future__ import annotations

import glob
import os

KINDS = ("change-value", "drop-variable")
_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_BOOKKEEPING = (_GRAPH_KEY, "save_counter", "global_step")


def _victim(dtypes: dict) -> str:
    """The first float variable in key order: deterministic, and a real model variable."""
    for key in sorted(dtypes):
        if key.split("/")[0] in _BOOKKEEPING:
            continue
        if getattr(dtypes[key], "name", "") == "float32":
            return key
    raise ValueError("no float32 variable in the checkpoint")


def _drop_from_graph(graph_bytes: bytes, key: str) -> bytes:
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(graph_bytes)
    for node in graph.nodes:
        keep = [a for a in node.attributes if a.checkpoint_key != key]
        if len(keep) != len(node.attributes):
            del node.attributes[:]
            node.attributes.extend(keep)
    return graph.SerializeToString()


def rewrite_checkpoint(prefix: str, kind: str, api: str = "") -> str:
    """Rewrite the checkpoint at `prefix` in place with one planted change; returns the key changed."""
    import numpy as np
    import tensorflow as tf

    if kind not in KINDS:
        raise ValueError(f"unknown planted corruption {kind!r}")
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    tensors = {k: reader.get_tensor(k) for k in sorted(dtypes)}
    key = _victim(dtypes)
    if kind == "change-value":
        arr = np.array(tensors[key], copy=True)
        flat = arr.reshape(-1)
        flat[0] = flat[0] + np.float32(1.0)
        tensors[key] = arr
    else:
        del tensors[key]
        if _GRAPH_KEY in tensors:
            tensors[_GRAPH_KEY] = _drop_from_graph(tensors[_GRAPH_KEY], key)
    for path in glob.glob(glob.escape(prefix) + ".*"):
        os.unlink(path)
    names = list(tensors)
    with tf.device("/cpu:0"):
        tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.constant(tensors[n]) for n in names])
    return key
