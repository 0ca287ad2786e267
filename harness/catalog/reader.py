"""Find a checkpoint on disk and list what it holds, under readable names.

`locate()` turns what the user typed (a prefix, a `.index`/`.data-*` file, or a
directory with a `checkpoint` state file) into a prefix, without TensorFlow.
`read_index()` parses the index with our own table reader (sstable.py) and
TensorFlow's protobuf classes. `readable_names()` turns TF2 object-graph keys
("model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE") into object paths
("model/dense/kernel") and flags optimizer state.
"""

from __future__ import annotations

import os
import re
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from . import sstable

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_ATTR_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_DATA_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
# TF1 optimizer slot and accumulator names (tf.compat.v1.train.*Optimizer)
_TF1_SLOT_RE = re.compile(
    r"(/(Adam|Momentum|RMSProp|Adagrad|AdagradDA|Adadelta|Ftrl|Nadam|AdaMax)(_\d+)?$)"
    r"|(^|/)beta[12]_power(_\d+)?$")
# children that mark a TF2 object as an optimizer (Keras 3, legacy Keras)
_OPTIMIZER_CHILDREN = {"_iterations", "iter"}


@dataclass
class StateFile:
    path: Path
    latest: str | None            # model_checkpoint_path as written
    all_paths: list[str]          # all_model_checkpoint_paths as written
    error: str | None = None      # the file exists but could not be parsed


@dataclass
class Location:
    prefix: str | None            # None when a state file names a prefix that is gone
    directory: Path
    state: StateFile | None = None
    wanted: str | None = None     # the prefix the state file names (even if missing)


@dataclass
class TensorInfo:
    key: str
    name: str = ""
    shape: tuple[int, ...] = ()
    dtype: str = ""
    shard: int = 0
    offset: int = 0
    size: int = 0
    optimizer: bool = False       # optimizer slot or optimizer bookkeeping
    full_name: str = ""           # TF2: the variable's own name (what a TF1 Saver matches)


@dataclass
class IndexInfo:
    prefix: str
    num_shards: int
    tensors: dict[str, TensorInfo] = field(default_factory=dict)  # by checkpoint key

    @property
    def object_based(self) -> bool:
        return OBJECT_GRAPH_KEY in self.tensors


# --- locating ------------------------------------------------------------------

def parse_state_file(path: Path) -> StateFile:
    """The `checkpoint` text proto, read with a regex so garbage cannot crash us."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return StateFile(path, None, [], error=f"cannot read it ({type(e).__name__})")
    latest = re.search(r'^\s*model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
    all_paths = re.findall(r'^\s*all_model_checkpoint_paths:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
    if latest is None:
        return StateFile(path, None, all_paths, error="it names no model_checkpoint_path")
    return StateFile(path, latest.group(1).replace('\\"', '"'), all_paths)


def prefix_exists(prefix: str) -> bool:
    return os.path.isfile(prefix + ".index")


def data_files(prefix: str) -> list[Path]:
    parent = Path(prefix).parent
    base = Path(prefix).name
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    return sorted(parent / n for n in names if n.startswith(base + ".data-") and _DATA_RE.search(n))


def _resolve_state_path(directory: Path, written: str) -> str:
    p = Path(written)
    return str(p if p.is_absolute() else directory / p)


def prefixes_in(directory: Path) -> list[str]:
    """Every checkpoint prefix with an index in `directory`, oldest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = [directory / n[:-len(".index")] for n in names if n.endswith(".index")]
    found.sort(key=lambda p: (Path(str(p) + ".index").stat().st_mtime, str(p)))
    return [str(p) for p in found]


def locate(text: str) -> Location:
    """Prefix, directory or file -> Location. Bad input raises UsageError."""
    path = Path(text)
    if path.is_dir():
        state_path = path / "checkpoint"
        if state_path.is_file():
            state = parse_state_file(state_path)
            if state.latest is None:
                return Location(None, path, state)
            wanted = _resolve_state_path(path, state.latest)
            return Location(wanted if prefix_exists(wanted) else None, path, state, wanted)
        found = prefixes_in(path)
        if len(found) == 1:
            return Location(found[0], path)
        if not found:
            raise UsageError(f"{text}: directory holds no checkpoint (no 'checkpoint' state file, no .index file)")
        names = ", ".join(Path(f).name for f in found[-5:])
        raise UsageError(f"{text}: directory holds {len(found)} checkpoints and no state file; name one ({names})")
    if text.endswith(".index") and path.is_file():
        return Location(text[:-len(".index")], path.parent)
    if text.endswith(".meta") and prefix_exists(text[:-len(".meta")]):  # TF1 writes prefix.meta beside it
        return Location(text[:-len(".meta")], path.parent)
    m = _DATA_RE.search(text)
    if m and path.is_file():
        return Location(text[:m.start()], path.parent)
    if prefix_exists(text):
        return Location(text, path.parent)
    if data_files(text):  # data without index: a save that never finished
        return Location(text, path.parent)
    if path.exists():
        raise UsageError(f"{text}: not a checkpoint (expected a prefix with a .index file, or a checkpoint directory)")
    raise UsageError(f"{text}: no such file, directory or checkpoint prefix")


# --- the index ---------------------------------------------------------------------

def _dtype_name(enum_value: int) -> str:
    import tensorflow as tf
    try:
        return tf.dtypes.as_dtype(enum_value).name
    except (TypeError, ValueError):
        return f"dtype#{enum_value}"


def read_index(prefix: str) -> IndexInfo:
    """Parse `<prefix>.index`. Raises sstable.IndexError_ with a plain reason."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import tensor_bundle_pb2

    try:
        data = Path(prefix + ".index").read_bytes()
    except OSError as e:
        raise sstable.IndexError_(f"cannot read the index ({e.strerror or type(e).__name__})") from None
    entries = sstable.read_table(data)
    if not entries or entries[0][0] != b"":
        raise sstable.IndexError_("the index has no header entry")
    try:
        header = tensor_bundle_pb2.BundleHeaderProto.FromString(entries[0][1])
        info = IndexInfo(prefix, int(header.num_shards))
        for key, value in entries[1:]:
            entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
            name = key.decode("utf-8")
            info.tensors[name] = TensorInfo(
                key=name, name=name,
                shape=tuple(int(d.size) for d in entry.shape.dim),
                dtype=_dtype_name(entry.dtype), shard=int(entry.shard_id),
                offset=int(entry.offset), size=int(entry.size))
    except (DecodeError, UnicodeDecodeError, ValueError) as e:
        raise sstable.IndexError_(f"an index entry does not parse ({type(e).__name__})") from None
    if info.num_shards <= 0:
        raise sstable.IndexError_(f"the index header claims {info.num_shards} shards")
    return info


def shard_path(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


# --- readable names ------------------------------------------------------------------

def parse_object_graph(raw: bytes):
    from tensorflow.core.protobuf import trackable_object_graph_pb2
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(raw)
    return graph


def _object_paths(graph) -> tuple[dict[int, str], set[int]]:
    """Path of every node, preferring paths that avoid optimizer objects.

    Checkpoint keys use the shortest path, which for Keras 3 often runs
    through the optimizer ("optimizer/_trainable_variables/0"); a path through
    the model is what a person recognises. Returns (paths, optimizer-only nodes).
    """
    nodes = graph.nodes
    optimizers = {i for i, n in enumerate(nodes)
                  if _OPTIMIZER_CHILDREN & {c.local_name for c in n.children}}
    paths: dict[int, str] = {0: ""}
    for enter_optimizers in (False, True):
        queue = deque(paths)
        while queue:
            node_id = queue.popleft()
            if node_id in optimizers and not enter_optimizers:
                continue
            for child in nodes[node_id].children:
                if child.node_id in paths or child.node_id >= len(nodes):
                    continue
                base = paths[node_id]
                paths[child.node_id] = f"{base}/{child.local_name}" if base else child.local_name
                queue.append(child.node_id)
        if not enter_optimizers:
            model_side = set(paths)
    optimizer_only = (set(paths) - model_side) | optimizers
    return paths, optimizer_only


def object_names(graph) -> dict[str, tuple[str, bool, str]]:
    """checkpoint key -> (readable name, is optimizer state, full_name) from an object graph."""
    paths, optimizer_only = _object_paths(graph)
    names: dict[str, tuple[str, bool, str]] = {}
    for node_id, node in enumerate(graph.nodes):
        for slot in node.slot_variables:  # legacy optimizers: ".OPTIMIZER_SLOT" keys
            sid = slot.slot_variable_node_id
            if sid < len(graph.nodes):
                var = paths.get(slot.original_variable_node_id, f"node{slot.original_variable_node_id}")
                opt = paths.get(node_id, f"node{node_id}")
                paths[sid] = f"{var} [slot {slot.slot_name} of {opt}]"
                optimizer_only.add(sid)
    for node_id, node in enumerate(graph.nodes):
        for attr in node.attributes:
            path = paths.get(node_id)
            if path is None:
                path = strip_key(attr.checkpoint_key)
            elif attr.name != "VARIABLE_VALUE":
                path = f"{path} [{attr.name}]"
            names[attr.checkpoint_key] = (path, node_id in optimizer_only, attr.full_name)
    return names


def strip_key(key: str) -> str:
    """Fallback readable form of a TF2 key when the object graph is unusable."""
    if key.endswith(_ATTR_SUFFIX):
        key = key[:-len(_ATTR_SUFFIX)]
    if "/.OPTIMIZER_SLOT/" in key:
        var, rest = key.split("/.OPTIMIZER_SLOT/", 1)
        opt, _, slot = rest.rpartition("/")
        key = f"{var} [slot {slot} of {opt}]"
    return key


def is_tf1_optimizer_name(name: str) -> bool:
    return bool(_TF1_SLOT_RE.search(name))


def apply_names(info: IndexInfo, object_graph_raw: bytes | None) -> str | None:
    """Fill TensorInfo.name/optimizer. Returns a problem text if the graph is unusable."""
    problem = None
    mapping: dict[str, tuple[str, bool, str]] = {}
    if object_graph_raw is not None:
        try:
            mapping = object_names(parse_object_graph(object_graph_raw))
        except Exception as e:  # a damaged proto must not stop the listing
            problem = f"the object graph does not parse ({type(e).__name__})"
    for key, t in info.tensors.items():
        if key == OBJECT_GRAPH_KEY:
            t.name = key
            continue
        if key in mapping:
            t.name, t.optimizer, t.full_name = mapping[key]
        elif info.object_based:
            t.name = strip_key(key)
            t.optimizer = ".OPTIMIZER_SLOT" in key or key.startswith("optimizer/")
        else:
            t.name = key
            t.optimizer = is_tf1_optimizer_name(key)
    return problem


def read_string_tensor(prefix: str, t: TensorInfo, num_shards: int) -> bytes:
    """The single string of a scalar string tensor (the object graph), read and
    validated in Python: TF's reader trusts the varint length it finds."""
    path = shard_path(prefix, t.shard, num_shards)
    with open(path, "rb") as f:
        f.seek(t.offset)
        blob = f.read(t.size)
    if len(blob) != t.size:
        raise ValueError("the data shard ends inside this tensor")
    length, pos = sstable._varint(blob, 0)
    if pos + 4 + length != len(blob) or length >= 2**32:
        raise ValueError("string length does not match the index entry")
    (masked,) = struct.unpack_from("<I", blob, pos)  # crc32c of the length as a uint32
    if sstable.unmask_crc(masked) != sstable.crc32c(struct.pack("<I", length)):
        raise ValueError("string length fails its checksum")
    return blob[pos + 4:]


def named_listing(prefix: str) -> IndexInfo:
    """read_index + readable names (object graph read without TensorFlow's reader)."""
    return named_listing_with_problem(prefix)[0]


def named_listing_with_problem(prefix: str) -> tuple[IndexInfo, str | None]:
    """Like named_listing, plus a plain-words problem if the object graph is unusable."""
    info = read_index(prefix)
    raw = None
    problem = None
    graph_entry = info.tensors.get(OBJECT_GRAPH_KEY)
    if graph_entry is not None:
        try:
            raw = read_string_tensor(prefix, graph_entry, info.num_shards)
        except (OSError, ValueError, sstable.IndexError_) as e:
            problem = f"the object graph cannot be read ({e})"
    problem = apply_names(info, raw) or problem
    return info, problem


def read_named_values(prefix: str, *, skip=("save_counter",)) -> dict:
    """readable name -> numpy value of every variable in a checkpoint (small ones only)."""
    import tensorflow as tf
    info = named_listing(prefix)
    reader = tf.train.load_checkpoint(prefix)
    out = {}
    for key, t in info.tensors.items():
        if key == OBJECT_GRAPH_KEY or t.name in skip:
            continue
        out[t.name] = reader.get_tensor(key)
    return out
