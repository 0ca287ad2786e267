"""A crash state: the exact contents of a checkpoint directory.

Every mode produces `CrashState`s (a `DirImage` plus what was done to get it);
the campaign materializes each in a fresh directory for the checker and keeps
failing ones as case folders. Small files are held as bytes; large ones as
`content.Content`, extents of files on disk, so states of a multi-GiB
checkpoint cost a few tuples each (content.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field

from .content import SMALL_FILE, Content, write_content, zeros

_TEMPSTATE = re.compile(r"\.tempstate\d*")
_CKPT_TMP = re.compile(r"^checkpoint\.tmp[0-9a-f]*$")
_DATA_SHARD = re.compile(r"^(.+)\.data-\d+-of-\d+$")


def is_orphan(rel: str) -> bool:
    """Temporary files a save leaves behind when it does not finish.

    TF's bundle writer uses `<prefix>_temp/` folders and `*.tempstate<N>` files;
    the checkpoint state file is written as `checkpoint.tmp<uuid>` and renamed.
    """
    parts = rel.split("/")
    if any(p.endswith("_temp") for p in parts[:-1]):
        return True
    name = parts[-1]
    return ".tempstate" in name or bool(_CKPT_TMP.match(name))


def orphan_files(rels) -> set[str]:
    """The files of a directory listing that no restore can use: `is_orphan`'s temporary
    files, and data shards whose checkpoint has no index (a merge cut short renames the
    data into place before it writes `<prefix>.index`)."""
    rels = set(rels)
    out = {rel for rel in rels if is_orphan(rel)}
    for rel in rels - out:
        m = _DATA_SHARD.match(rel)
        if m and m.group(1) + ".index" not in rels:
            out.add(rel)
    return out


def normalize_name(path: str) -> str:
    """Drop the random parts of temp names so the same event reads the same in every run."""
    path = _TEMPSTATE.sub(".tempstate*", path)
    return re.sub(r"checkpoint\.tmp[0-9a-f]+", "checkpoint.tmp*", path)


class _DigestCache:
    """Content digests by object identity: states derived from one another share their
    unchanged files as the same bytes objects, so most files are hashed once per run.
    A `Content` is digested by its extents (Content.identity)."""

    def __init__(self, size: int = 256):
        self.size = size
        self.items: OrderedDict[int, tuple[bytes, str]] = OrderedDict()

    def __call__(self, data) -> str:
        if isinstance(data, Content):
            return "c" + data.identity()
        hit = self.items.get(id(data))
        if hit is not None and hit[0] is data:
            self.items.move_to_end(id(data))
            return hit[1]
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        self.items[id(data)] = (data, digest)  # holding the object keeps its id unique
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return digest


file_digest = _DigestCache()


def fingerprint(path: str) -> tuple:
    """What a write into the file changes: its size or mtime (not ctime, which every new hard
    link to the file changes)."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def check_untouched(linked: dict[str, tuple], api: str) -> None:
    """Raise if a reader wrote into a file it was given as a link (BlobStore.materialize): the
    blob or recorded file behind it changed, so the states built from it since are not what
    was recorded. A target whose restore writes must be listed in apis.restore_writes."""
    for path, before in linked.items():
        try:
            now = fingerprint(path)
        except FileNotFoundError:   # removed or renamed away: the shared inode is untouched
            continue
        if now[0] == before[0] and now != before:
            raise RuntimeError(f"the checker's restore of {api} wrote into {path} in place, a file shared "
                               f"with the recording; its verdicts cannot be trusted (apis.restore_writes)")


@dataclass
class DirImage:
    files: dict = field(default_factory=dict)   # relative path -> bytes or Content
    dirs: set[str] = field(default_factory=set)             # relative paths of sub-directories

    @classmethod
    def load(cls, root: str, in_memory: bool = False) -> "DirImage":
        """The directory as it is. Files over SMALL_FILE become references to the files
        themselves (which must then stay as they are while the image is used), unless
        `in_memory` (for modes that rewrite bytes and for mounts that go away)."""
        img = cls()
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            for d in dirnames:
                img.dirs.add(os.path.normpath(os.path.join(rel_dir, d)))
            for f in filenames:
                path = os.path.join(dirpath, f)
                size = os.path.getsize(path)
                if size > SMALL_FILE and not in_memory:
                    data = Content.of_file(path, size)
                else:
                    with open(path, "rb") as fh:
                        data = fh.read()
                img.files[os.path.normpath(os.path.join(rel_dir, f))] = data
        return img

    def copy(self) -> "DirImage":
        return DirImage(dict(self.files), set(self.dirs))

    def materialize(self, root: str, link: bool = False, blobs: "BlobStore | None" = None) -> None:
        """Write this image into `root` (created; must not hold anything else). `link`: large
        files that are whole files on disk are hard-linked, for folders nobody writes into,
        and so is one that `blobs` holds as a blob now (a case folder of the state just judged:
        its cut data file is then on disk once, not twice)."""
        os.makedirs(root, exist_ok=True)
        for d in sorted(self.dirs, key=len):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        for rel, data in self.files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            blob = blobs.held(data) if link and blobs is not None else None
            if blob is not None:
                try:
                    os.link(blob, path)
                    continue
                except OSError:   # no hard links here: write it
                    pass
            write_content(data, path, link=link)

    def digest(self) -> str:
        """Identity of the whole state: equal digests, equal directories."""
        h = hashlib.blake2b(digest_size=16)
        for d in sorted(self.dirs):
            h.update(b"D" + d.encode() + b"\0")
        for rel in sorted(self.files):
            h.update(b"F" + rel.encode() + b"\0" + file_digest(self.files[rel]).encode())
        return h.hexdigest()

    def checkpoint_files(self, prefix_rel: str) -> list[str]:
        """The files of one checkpoint (`<prefix>.*`, or the file or the folder named
        `prefix_rel` itself, for single-file and SavedModel checkpoints): what a restore reads."""
        return sorted(rel for rel in self.files
                      if rel == prefix_rel or rel.startswith(prefix_rel + ".") or rel.startswith(prefix_rel + "/"))

    def prefix_digest(self, prefix_rel: str) -> str:
        """Identity of one checkpoint (its `checkpoint_files`)."""
        h = hashlib.blake2b(digest_size=16)
        for rel in self.checkpoint_files(prefix_rel):
            h.update(rel.encode() + b"\0" + file_digest(self.files[rel]).encode())
        return h.hexdigest()

    def prefixes(self) -> list[str]:
        """Checkpoint prefixes present (those with an index), temp folders excluded."""
        return sorted(rel[: -len(".index")] for rel in self.files
                      if rel.endswith(".index") and not is_orphan(rel))

    def relocated(self, origin: str) -> "DirImage":
        """This image with absolute paths under `origin` in checkpoint state files made relative.

        tf1-saver records absolute paths in `checkpoint`; a state materialized anywhere
        else (a scratch dir, a case folder) would otherwise restore the files at the
        place it came from, not its own.
        """
        roots = sorted({origin, os.path.realpath(origin)}, key=len, reverse=True)
        pattern = re.compile(b'"(?:' + b"|".join(re.escape(r.encode()) for r in roots) + b')/[^"]*/')
        out = None
        for rel, data in self.files.items():
            name = rel.rsplit("/", 1)[-1]
            if name == "checkpoint" or _CKPT_TMP.match(name):
                new = pattern.sub(b'"', data)
                if new != data:
                    out = out or self.copy()
                    out.files[rel] = new
        return out or self

    def orphan_bytes(self) -> int:
        return sum(len(self.files[rel]) for rel in orphan_files(self.files))

    def total_bytes(self) -> int:
        return sum(len(d) for d in self.files.values())

    def listing(self) -> list[dict]:
        return [{"path": rel, "bytes": len(self.files[rel])} for rel in sorted(self.files)]


class BlobStore:
    """Materializes images with hard links to content-addressed blobs.

    A state differs from its neighbours in one file or two; writing every file of
    every state would cost the whole checkpoint per state. Linking is safe because
    nothing writes through a link: targets whose restore writes files get the
    checker's own copies (`materialize(private=True)`, apis.restore_writes), and
    check_untouched stops a campaign whose restore wrote into a linked file. The
    most recently used blobs are kept, the rest removed.
    A large file (Content) that is a whole file on disk is linked to it, one of
    zeros is a hole written in place; any other is assembled once as a blob, and
    only the last `keep_large` of those are kept (disk: a power-loss campaign cuts
    the same file in the same way after every namespace step, so one covers a run
    of states).
    """

    def __init__(self, root: str, keep: int = 32, keep_large: int = 1):
        self.root, self.keep, self.keep_large = root, keep, keep_large
        self.used: OrderedDict[str, None] = OrderedDict()
        self.large: OrderedDict[str, None] = OrderedDict()
        os.makedirs(root, exist_ok=True)

    def _blob(self, data) -> str:
        digest = file_digest(data)
        path = os.path.join(self.root, digest)
        if not os.path.exists(path):
            if isinstance(data, Content):   # room first: never two large blobs more than kept
                self._evict(self.large, self.keep_large - 1)
            tmp = path + ".tmp"
            write_content(data, tmp)
            os.replace(tmp, path)
        lru = self.large if isinstance(data, Content) else self.used
        lru[digest] = None
        lru.move_to_end(digest)
        return path

    def held(self, data) -> str | None:
        """The path of the large blob holding `data`, when there is one now."""
        if not isinstance(data, Content):
            return None
        digest = file_digest(data)
        return os.path.join(self.root, digest) if digest in self.large else None

    def materialize(self, image: DirImage, root: str, private: bool = False,
                    unread: frozenset = frozenset()) -> dict[str, tuple]:
        """Write `image` into `root` for a reader. Returns {path: fingerprint} of the files that
        are links (to a blob or to the recording), for `check_untouched` after the reader ran.
        `private`: every file is the reader's own copy, for a reader that may write into them.
        `unread`: files the reader never reads (apis.unread_files); a large one is a hole of
        its size, so a cut data file in a temp folder takes no disk."""
        if unread:
            hollow = {rel: zeros(len(image.files[rel])) for rel in unread
                      if isinstance(image.files.get(rel), Content)}
            if hollow:
                image = image.copy()
                image.files.update(hollow)
        if private:
            image.materialize(root)
            return {}
        os.makedirs(root, exist_ok=True)
        for d in sorted(image.dirs, key=len):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        linked = {}
        for rel, data in image.files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if isinstance(data, Content) and (data.whole_source() or data.all_zeros()):
                write_content(data, path, link=True)
            else:
                blob = self._blob(data)
                try:
                    os.link(blob, path)
                except OSError:  # a file system without hard links: copy
                    shutil.copyfile(blob, path)
            if os.stat(path).st_nlink > 1:
                linked[path] = fingerprint(path)
        self._evict(self.used, self.keep)
        self._evict(self.large, self.keep_large)
        return linked

    def _evict(self, lru: OrderedDict, keep: int) -> None:
        while len(lru) > max(0, keep):
            old, _ = lru.popitem(last=False)
            try:
                os.unlink(os.path.join(self.root, old))   # a state linked to it keeps its own link
            except FileNotFoundError:
                pass


@dataclass
class CrashState:
    fault: str               # one line: what was done to make this state
    fault_kind: str          # coarse family, for capping case folders, e.g. "truncate-index"
    image: DirImage
    ops: list = field(default_factory=list)    # the operations applied (strace.Op or dicts)
    note: str = ""           # e.g. how the saving process ended, the error the save raised
    meta: dict = field(default_factory=dict)   # mode-specific facts for case.json
    state_id: str = ""       # unique within a run; given by the campaign
    group: str = ""          # states that differ only in how much of one file's writes landed
    scratch: str = ""        # a folder that holds this state's files; removed once it is judged

    def ops_dicts(self) -> list[dict]:
        return [op.to_dict() if hasattr(op, "to_dict") else dict(op) for op in self.ops]
