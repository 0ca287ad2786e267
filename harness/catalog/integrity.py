"""Integrity check of one checkpoint: state file, leftovers of interrupted
saves, index, data shards, and every tensor read back with its checksum.

Each check adds plain-words `Finding`s; nothing here raises on a damaged
checkpoint (damage is what it reports). The index is parsed and verified in
Python first, so TensorFlow's reader only ever sees an index that is sound.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import reader, sstable
from ..judge.core import error_summary

PROBLEM, NOTE, OK = "problem", "note", "ok"
_STATE_TEMP_RE = re.compile(r"^checkpoint\.tmp[0-9a-f]{32}$")
_LIST_LIMIT = 8


@dataclass
class Finding:
    level: str      # problem | note | ok
    text: str
    damage: bool = True   # False for leftovers that do not stop this checkpoint restoring


@dataclass
class Integrity:
    location: reader.Location
    findings: list[Finding] = field(default_factory=list)
    info: reader.IndexInfo | None = None          # set when the index parsed
    unreadable: set[str] = field(default_factory=set)  # keys that did not read back

    def add(self, level: str, text: str, *, damage: bool = True) -> None:
        self.findings.append(Finding(level, text, damage))

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == PROBLEM]


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def check_state_file(result: Integrity) -> None:
    loc = result.location
    state = loc.state
    if state is None:
        return
    if state.error:
        result.add(PROBLEM, f"state file {state.path} is unusable: {state.error}")
    elif loc.prefix is None:
        result.add(PROBLEM, f"state file {state.path} names {state.latest!r}, but {loc.wanted}.index does not exist")
    else:
        result.add(OK, f"state file names {state.latest!r}, which exists")
        if Path(loc.prefix).parent.resolve() != loc.directory.resolve():
            result.add(NOTE, f"the state file points outside {loc.directory} (absolute path): if this directory "
                             f"was copied or moved, it still names the checkpoint at the old place")
    gone = [p for p in state.all_paths if not reader.prefix_exists(reader._resolve_state_path(loc.directory, p))]
    if gone:
        result.add(NOTE, f"state file lists {len(gone)} older checkpoint(s) that are gone: {', '.join(gone[:_LIST_LIMIT])}")
    if loc.prefix is None:
        complete = reader.prefixes_in(loc.directory)
        if complete:
            result.add(NOTE, f"newest complete checkpoint in the directory: {complete[-1]}; "
                             f"restore that prefix explicitly or rewrite the state file")


def _looks_like_save_temp(path: Path) -> bool:
    """TF writes a sharded save as <prefix>_temp/part-NNNNN-of-NNNNN.* before merging it."""
    try:
        return any(n.startswith("part-") for n in os.listdir(path))
    except OSError:
        return False


def check_leftovers(result: Integrity) -> None:
    """Temp folders and files that only an interrupted save leaves behind."""
    directory = result.location.directory
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        result.add(PROBLEM, f"cannot list {directory}: {e.strerror or e}")
        return
    for name in names:
        path = directory / name
        if path.is_dir() and (name.endswith("_temp") or "_temp_" in name) and _looks_like_save_temp(path):
            parts = ", ".join(sorted(os.listdir(path))[:4])
            result.add(PROBLEM, f"orphaned temp folder {name}/ ({parts}): a save was interrupted before it "
                                f"committed; that save is lost, the folder can be deleted", damage=False)
        elif ".tempstate" in name:
            result.add(PROBLEM, f"orphaned temp file {name}: a save was interrupted while writing it", damage=False)
        elif _STATE_TEMP_RE.match(name):
            result.add(PROBLEM, f"orphaned state temp file {name}: the state file update was interrupted",
                       damage=False)


def check_index(result: Integrity) -> None:
    prefix = result.location.prefix
    if not reader.prefix_exists(prefix):
        shards = reader.data_files(prefix)
        result.add(PROBLEM, f"{prefix}.index is missing although {len(shards)} data file(s) exist: "
                            f"the save never finished")
        return
    try:
        info, graph_problem = reader.named_listing_with_problem(prefix)
    except sstable.IndexError_ as e:
        size = os.path.getsize(prefix + ".index")
        result.add(PROBLEM, f"{prefix}.index ({size} bytes) is damaged: {e}")
        return
    result.info = info
    kind = "object-based (TF2 tf.train.Checkpoint)" if info.object_based else "name-based (TF1 Saver)"
    result.add(OK, f"index reads: {len(info.tensors)} tensors, {info.num_shards} shard(s), {kind}")
    if graph_problem:
        result.add(PROBLEM, graph_problem)


def check_shards(result: Integrity) -> set[int]:
    """Each shard the index names exists and is long enough. Returns the bad shards."""
    info = result.info
    bad: set[int] = set()
    needed: dict[int, int] = {}
    for t in info.tensors.values():
        if not 0 <= t.shard < info.num_shards:
            result.add(PROBLEM, f"tensor {t.name} claims shard {t.shard} of {info.num_shards}")
            bad.add(t.shard)
            continue
        needed[t.shard] = max(needed.get(t.shard, 0), t.offset + t.size)
    total = 0
    for shard in range(info.num_shards):
        path = reader.shard_path(info.prefix, shard, info.num_shards)
        if not os.path.isfile(path):
            result.add(PROBLEM, f"data shard {Path(path).name} is missing")
            bad.add(shard)
            continue
        size = os.path.getsize(path)
        total += size
        if size < needed.get(shard, 0):
            result.add(PROBLEM, f"data shard {Path(path).name} is {size} bytes, the index needs at least "
                                f"{needed[shard]}: it was truncated")
            bad.add(shard)
    if not bad:
        result.add(OK, f"all {info.num_shards} data shard(s) present and long enough ({_human(total)})")
    return bad


def check_tensors(result: Integrity, bad_shards: set[int]) -> None:
    """Read every tensor with TensorFlow: its reader verifies each checksum."""
    import tensorflow as tf
    info = result.info
    try:
        tf_reader = tf.train.load_checkpoint(info.prefix)
    except Exception as e:  # any TF error here is a finding, not a crash
        result.add(PROBLEM, f"TensorFlow cannot open the checkpoint: {error_summary(e)}")
        result.unreadable = set(info.tensors)
        return
    failures = []
    for key, t in info.tensors.items():
        if t.shard in bad_shards:
            result.unreadable.add(key)
            continue
        try:
            tf_reader.get_tensor(key)
        except Exception as e:
            result.unreadable.add(key)
            failures.append(f"{t.name}: {error_summary(e)}")
    for text in failures[:_LIST_LIMIT]:
        result.add(PROBLEM, f"tensor does not read back: {text}")
    if len(failures) > _LIST_LIMIT:
        result.add(PROBLEM, f"... and {len(failures) - _LIST_LIMIT} more tensors do not read back")
    readable = len(info.tensors) - len(result.unreadable)
    if not result.unreadable:
        result.add(OK, f"all {readable} tensors read back, checksums match")
    elif bad_shards and not failures:
        result.add(NOTE, f"{len(result.unreadable)} tensors live in missing or short shards; "
                         f"the other {readable} read back")


def check(location: reader.Location) -> Integrity:
    result = Integrity(location)
    check_state_file(result)
    check_leftovers(result)
    if location.prefix is None:
        return result
    check_index(result)
    if result.info is None:
        return result
    bad = check_shards(result)
    check_tensors(result, bad)
    return result
