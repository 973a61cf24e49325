"""Content-addressed, compressed blobs: identical content is stored once, whoever stores it.

A blob's key is the sha256 of its uncompressed bytes. ``codec`` says how ``data`` is encoded: "zstd"
(level 3: on 2-10 KB texts as small as zlib-6 and faster, notes/libraries.md §6) or "zstd-dict", whose
``base`` blob served as the compression dictionary (retention compaction writes those).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import zstandard
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from storage.schema import Blob

_CHUNK = 500
_compressor = zstandard.ZstdCompressor(level=3)
_decompressor = zstandard.ZstdDecompressor()


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def put(conn: Connection, blobs: Mapping[bytes, bytes]) -> int:
    """Store the blobs not stored yet; returns how many were new. Safe against concurrent writers."""
    hashes = list(blobs)
    existing: set[bytes] = set()
    for i in range(0, len(hashes), _CHUNK):
        existing.update(conn.execute(select(Blob.hash).where(Blob.hash.in_(hashes[i:i + _CHUNK]))).scalars())
    rows = [{"hash": h, "codec": "zstd", "base": None, "size": len(data), "data": _compressor.compress(data)}
            for h, data in blobs.items() if h not in existing]
    if rows:
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        conn.execute(dialect.insert(Blob).on_conflict_do_nothing(index_elements=["hash"]), rows)
    return len(rows)


def get(conn: Connection, key: bytes) -> bytes:
    row = conn.execute(select(Blob.codec, Blob.base, Blob.data).where(Blob.hash == key)).one_or_none()
    if row is None:
        raise KeyError(key.hex())
    return decode(conn, row.codec, row.base, row.data)


def get_text(conn: Connection, key: bytes) -> str:
    return get(conn, key).decode("utf-8")


def decode(conn: Connection, codec: str, base: bytes | None, data: bytes) -> bytes:
    if codec == "zstd":
        return _decompressor.decompress(data)
    if codec == "none":
        return data
    if codec == "zstd-dict" and base is not None:
        dictionary = zstandard.ZstdCompressionDict(get(conn, base), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(data)
    raise ValueError(f"unknown blob codec {codec!r}")
