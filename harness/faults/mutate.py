"""Mutate mode: damage copies of a completed checkpoint.

Saves 1..k all complete; every mutation is applied to an in-memory copy of
that directory and judged as if save k had been interrupted (so `new` means
the damage went unnoticed and did not matter, `detected` that TF refused the
damaged save k and save k-1 is intact, `silent` that TF accepted wrong values).

Mutations of the latest checkpoint (save k):
  truncate-index  at every byte offset of a small .index (sampled when large)
  truncate-data   at sampled offsets, plus 0 and one byte short
  bitflip-index / bitflip-data   one bit at seeded positions
  zero-tail-index / zero-tail-data   the tail from a page boundary zeroed
                  (dirty pages lost, file size kept)
  delete          the data shard, the index, the `checkpoint` state file
  state-missing   the state file names a prefix that does not exist
  planted         rewritten through TF's own writer with consistent checksums:
                  one value changed, or one variable dropped (planted.py)
"""

from __future__ import annotations

import os
import random
import re

from .planted import KINDS as PLANTED_KINDS
from .state import CrashState, DirImage

PAGE = 4096
ALL_OFFSETS_UP_TO = 64 * 1024   # an index this small is truncated at every byte


def latest_prefix(image: DirImage, k: int) -> str:
    """The prefix of save k in a directory of complete saves."""
    prefixes = image.prefixes()
    numbered = [p for p in prefixes if re.search(rf"-{k}$", p)]
    if numbered:
        return numbered[0]
    if len(prefixes) == 1:
        return prefixes[0]
    raise ValueError(f"cannot tell which checkpoint is save {k} among {prefixes}")


def _sample(rng: random.Random, n: int, size: int) -> list[int]:
    return sorted({rng.randrange(size) for _ in range(n)}) if size > 0 else []


def _with(image: DirImage, rel: str, data: bytes | None) -> DirImage:
    out = image.copy()
    if data is None:
        out.files.pop(rel, None)
    else:
        out.files[rel] = data
    return out


def _flip(data: bytes, byte: int, bit: int) -> bytes:
    b = bytearray(data)
    b[byte] ^= 1 << bit
    return bytes(b)


def mutations(pristine: DirImage, k: int, trials: int, seed: int,
              index_offsets: int | None = None):
    """Damaged copies of `pristine`. `index_offsets` caps the index truncation points
    (None: every offset when the index is at most ALL_OFFSETS_UP_TO bytes). A generator:
    with a large checkpoint, only the state being judged is held in memory."""
    rng = random.Random(seed)
    prefix = latest_prefix(pristine, k)
    index = prefix + ".index"
    datas = sorted(r for r in pristine.files if r.startswith(prefix + ".data-"))
    data = datas[0]
    def add(kind, fault, image, op):
        return CrashState(fault, kind, image, [op])

    idx, dat = pristine.files[index], pristine.files[data]
    if index_offsets is None and len(idx) <= ALL_OFFSETS_UP_TO:
        offsets = list(range(len(idx)))
    else:
        offsets = sorted({0, len(idx) - 1} | set(_sample(rng, index_offsets or trials, len(idx))))
    for off in offsets:
        yield add("truncate-index", f"{index} truncated to {off} of {len(idx)} bytes",
            _with(pristine, index, idx[:off]), {"op": "truncate", "path": index, "size": off})
    for off in sorted({0, len(dat) // 2, len(dat) - 1} | set(_sample(rng, trials, len(dat)))):
        yield add("truncate-data", f"{data} truncated to {off} of {len(dat)} bytes",
            _with(pristine, data, dat[:off]), {"op": "truncate", "path": data, "size": off})
    for rel, content, kind in ((index, idx, "bitflip-index"), (data, dat, "bitflip-data")):
        for byte in _sample(rng, trials, len(content)):
            bit = rng.randrange(8)
            yield add(kind, f"{rel} bit {bit} of byte {byte} flipped", _with(pristine, rel, _flip(content, byte, bit)),
                {"op": "bitflip", "path": rel, "byte": byte, "bit": bit})
    for rel, content, kind in ((index, idx, "zero-tail-index"), (data, dat, "zero-tail-data")):
        starts = {0, (len(content) // 2) // PAGE * PAGE, (len(content) - 1) // PAGE * PAGE}
        for start in sorted(s for s in starts if s < len(content)):
            zeroed = content[:start] + bytes(len(content) - start)
            yield add(kind, f"{rel} zeroed from byte {start} to its end ({len(content)} bytes, size kept)",
                _with(pristine, rel, zeroed), {"op": "zero-tail", "path": rel, "from": start})
    for rel in (data, index, "checkpoint"):
        if rel in pristine.files:
            yield add("delete", f"{rel} deleted", _with(pristine, rel, None), {"op": "delete", "path": rel})
    state = pristine.files.get("checkpoint")
    if state is not None:
        name = os.path.basename(prefix)
        missing = re.sub(r"-\d+$", f"-{k + 90}", name) if re.search(r"-\d+$", name) else name + "-missing"
        text = state.decode(errors="replace")
        text = re.sub(r'model_checkpoint_path: "[^"]*"', f'model_checkpoint_path: "{missing}"', text, count=1)
        yield add("state-missing", f"checkpoint state file names {missing}, which does not exist",
            _with(pristine, "checkpoint", text.encode()),
            {"op": "rewrite", "path": "checkpoint", "model_checkpoint_path": missing})


def planted_states(trial, pristine_dir: str, workdir: str, k: int) -> list[CrashState]:
    """Consistent rewrites of save k, made by the trial process through TF's writer."""
    import shutil

    out = []
    pristine = DirImage.load(pristine_dir, in_memory=True)   # mutate rewrites bytes
    prefix = latest_prefix(pristine, k)
    for kind in PLANTED_KINDS:
        d = os.path.join(workdir, f"planted-{kind}")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(pristine_dir, d)  # TF rewrites our copy, never the original
        reply = trial.call("plant", prefix=os.path.join(d, prefix), kind=kind)
        if not reply.get("ok"):
            raise RuntimeError(f"planting {kind} failed: {reply.get('error')}")
        key = reply["changed"]
        what = f"one element of {key} changed by +1" if kind == "change-value" else f"{key} dropped"
        out.append(CrashState(f"{prefix} rewritten by TF's writer with consistent checksums: {what}",
                              f"planted-{kind}", DirImage.load(d, in_memory=True),   # d goes next
                              [{"op": "planted", "kind": kind, "path": prefix, "key": key}]))
        shutil.rmtree(d, ignore_errors=True)
    return out
