"""Read a TensorFlow checkpoint index (`.index`) without TensorFlow.

The index of a tensor bundle is a LevelDB-style sorted table: data blocks of
prefix-compressed key/value entries, an index block pointing at them, and a
48-byte footer ending in a magic number. Every block carries a masked CRC32C.
The values are `BundleHeaderProto` (key "") and one `BundleEntryProto` per
tensor, giving its shard, offset, size and checksum.

We parse it ourselves so that `diagnose` can say *which* shard is short or
missing, and so that a damaged index is rejected in Python before it is handed
to TensorFlow's C++ reader. Pure Python, no TF import: indexes are small.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes masked crc32c
NO_COMPRESSION, SNAPPY_COMPRESSION = 0, 1
_MASK_DELTA = 0xA282EAD8


class IndexError_(Exception):
    """The index file is not a readable sorted table (the message says why)."""


class NotAnIndex(IndexError_):
    """The bytes are not a checkpoint index at all (no table footer)."""


# --- CRC32C (Castagnoli), table driven ---------------------------------------

def _make_crc_table() -> list[int]:
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_crc_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --- varints and snappy --------------------------------------------------------

def _varint(buf: bytes, pos: int, limit: int | None = None) -> tuple[int, int]:
    limit = len(buf) if limit is None else limit
    result = shift = 0
    while True:
        if pos >= limit or shift > 63:
            raise IndexError_("truncated or malformed varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def snappy_decompress(src: bytes) -> bytes:
    """Raw snappy format (what LevelDB tables use for compressed blocks)."""
    length, pos = _varint(src, 0)
    out = bytearray()
    n = len(src)
    while pos < n:
        tag = src[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            size = tag >> 2
            if size >= 60:
                extra = size - 59
                if pos + extra > n:
                    raise IndexError_("snappy literal runs past the block")
                size = int.from_bytes(src[pos:pos + extra], "little")
                pos += extra
            size += 1
            if pos + size > n:
                raise IndexError_("snappy literal runs past the block")
            out += src[pos:pos + size]
            pos += size
            continue
        if kind == 1:
            if pos >= n:
                raise IndexError_("truncated snappy copy")
            size = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | src[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            if pos + width > n:
                raise IndexError_("truncated snappy copy")
            size = (tag >> 2) + 1
            offset = int.from_bytes(src[pos:pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise IndexError_("snappy copy points before the start of the block")
        for _ in range(size):  # byte by byte: copies may overlap themselves
            out.append(out[-offset])
        if len(out) > length:
            raise IndexError_("snappy block longer than announced")
    if len(out) != length:
        raise IndexError_("snappy block shorter than announced")
    return bytes(out)


# --- table structure -----------------------------------------------------------

@dataclass(frozen=True)
class BlockHandle:
    offset: int
    size: int


def _read_handle(buf: bytes, pos: int) -> tuple[BlockHandle, int]:
    off, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return BlockHandle(off, size), pos


def _read_block(data: bytes, handle: BlockHandle, what: str) -> bytes:
    end = handle.offset + handle.size + BLOCK_TRAILER_SIZE
    if end > len(data) - FOOTER_SIZE:
        raise IndexError_(f"{what} block lies beyond the end of the file")
    contents = data[handle.offset:handle.offset + handle.size]
    ctype = data[handle.offset + handle.size]
    (masked,) = struct.unpack_from("<I", data, handle.offset + handle.size + 1)
    if crc32c(contents + bytes([ctype])) != unmask_crc(masked):
        raise IndexError_(f"{what} block fails its checksum")
    if ctype == NO_COMPRESSION:
        return contents
    if ctype == SNAPPY_COMPRESSION:
        return snappy_decompress(contents)
    raise IndexError_(f"{what} block has unknown compression type {ctype}")


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise IndexError_(f"{what} block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 or limit < 0:
        raise IndexError_(f"{what} block has a bad restart array")
    entries = []
    pos = 0
    key = b""
    while pos < limit:
        shared, pos = _varint(block, pos, limit)
        non_shared, pos = _varint(block, pos, limit)
        value_len, pos = _varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise IndexError_(f"{what} block has a corrupt entry")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def read_table(data: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a sorted table, checksums verified.

    Strict on purpose: every byte of the file must belong to a checksummed
    block or to the footer, so that no single flipped bit goes unnoticed.
    """
    if len(data) < FOOTER_SIZE:
        raise NotAnIndex(f"{len(data)} bytes is too short for a checkpoint index")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise NotAnIndex("no checkpoint index footer (wrong magic number)")
    meta_handle, pos = _read_handle(footer, 0)
    index_handle, pos = _read_handle(footer, pos)
    if pos > FOOTER_SIZE - 8 or any(footer[pos:FOOTER_SIZE - 8]):
        raise IndexError_("the footer is corrupt")
    extents = [meta_handle, index_handle]
    _block_entries(_read_block(data, meta_handle, "meta-index"), "meta-index")
    index_block = _read_block(data, index_handle, "index")
    entries = []
    last_key = None
    for _sep, handle_bytes in _block_entries(index_block, "index"):
        handle, _ = _read_handle(handle_bytes, 0)
        extents.append(handle)
        for key, value in _block_entries(_read_block(data, handle, "data"), "data"):
            if last_key is not None and key <= last_key:
                raise IndexError_("keys are out of order")
            last_key = key
            entries.append((key, value))
    covered = 0
    for h in sorted(extents, key=lambda h: h.offset):
        if h.offset != covered:
            raise IndexError_("the blocks do not tile the file (corrupt block handle)")
        covered = h.offset + h.size + BLOCK_TRAILER_SIZE
    if covered != len(data) - FOOTER_SIZE:
        raise IndexError_("the blocks do not tile the file (corrupt block handle)")
    return entries
