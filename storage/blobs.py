"""Content-addressed, compressed blobs: identical content is stored once, whoever stores it.

A blob's key is the sha256 of its uncompressed bytes. ``codec`` says how ``data`` is encoded:

- "zstd": zstd on its own. Such a blob is a **keyframe**.
- "zstd-dict": zstd with the keyframe ``base`` as a raw-content dictionary, so that it costs roughly what
  differs from that keyframe. ``base`` is always a keyframe: any read takes at most two decompressions
  and no chain can grow.
- "none": stored as is (tiny blobs that compression would only make bigger).

Which keyframe a blob is compressed against is the caller's hint (``similar``): storage.store compresses
a document's new raw item against the keyframe of its previous raw item, and the version's canonical
text and diff against the keyframe of the new raw item (the raw item holds the same words). A raw item
whose dictionary form is above :data:`KEYFRAME_RATIO` of its plain form has drifted too far and becomes
the document's next keyframe; a text or diff is stored against its keyframe whenever that compresses it
at all (its plain form is not even computed: see :func:`encode`). Level 3 (zstd's default): on 7 KB
pieces of the replay corpus level 9 stored 4% (plain) to 7% (against a keyframe) fewer bytes but took 8
times as long (232 vs 28 µs plain, 628 vs 71 µs against a keyframe), which made compression the largest
cost of recording a cold poll.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import zstandard
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from storage.bulk import BulkInsert
from storage.rows import chunks
from storage.schema import Blob

LEVEL = 3
KEYFRAME_RATIO = 0.2      # dictionary output above 20% of plain output: start a new keyframe
_MIN_DICT = 64            # shorter keyframes are no useful dictionary
_contexts = threading.local()   # zstd contexts are not thread safe: one pair per thread that stores or reads


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    """This thread's compressor and decompressor, made on first use."""
    pair: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] | None = getattr(_contexts, "pair", None)
    if pair is None:
        pair = _contexts.pair = (zstandard.ZstdCompressor(level=LEVEL), zstandard.ZstdDecompressor())
    return pair


@dataclass(frozen=True, slots=True)
class Encoded:
    """A blob's stored form."""

    codec: str
    base: bytes | None
    data: bytes


class _BlobRow(NamedTuple):
    hash: bytes
    codec: str
    base: bytes | None
    size: int
    data: bytes


_INSERT = BulkInsert(Blob, _BlobRow._fields, skip_conflicts=["hash"])     # a blob stored meanwhile is kept


def digest(data: bytes) -> bytes:
    """A blob's key: the sha256 of its uncompressed bytes."""
    return hashlib.sha256(data).digest()


def put(conn: Connection, blobs: Mapping[bytes, bytes], *, similar: Mapping[bytes, bytes] | None = None,
        chain: bool = False, known: Mapping[bytes, bytes] | None = None, existing: set[bytes] | None = None,
        frames: Mapping[bytes, bytes] | None = None) -> dict[bytes, bytes]:
    """Store the blobs not stored yet. Safe against concurrent writers. Returns the keyframe of each blob it
    stored (the blob itself, or its base), for the next put of the same transaction (``frames``); or
    nothing if another writer stored one of them meanwhile (then the forms stored are read when needed).

    ``similar`` maps a new blob's hash to a stored blob it resembles (the same document's previous raw
    item, or its own version's raw item): the new blob is compressed against that blob's keyframe.
    With ``chain`` the blobs are a document's successive states, and one that has drifted too far from
    its keyframe becomes the next keyframe; otherwise the keyframe form wins when it compresses at all
    (:func:`encode`). ``known`` holds contents the caller already has in memory (blobs it has just
    stored), and ``frames`` their keyframes, so neither need be read back; ``existing`` the hashes the
    caller already knows to be stored (see :func:`stored`).
    """
    if existing is None:
        existing = stored(conn, list(blobs))
    new = {h: data for h, data in blobs.items() if h not in existing}
    if not new:
        return {}
    keyframes = _keyframes(conn, {h: similar[h] for h in new if similar and h in similar}, known or {},
                           frames or {})
    rows = []
    for h, data in new.items():
        enc = encode(data, keyframes.get(h), chain=chain)
        rows.append(_BlobRow(hash=h, codec=enc.codec, base=enc.base, size=len(data), data=enc.data))
    if _INSERT(conn, rows) < len(rows):
        return {}
    return {r.hash: r.base or r.hash for r in rows}


def encode(data: bytes, keyframe: tuple[bytes, bytes] | None = None, *, chain: bool = False) -> Encoded:
    """The stored form of `data`, against the (hash, content) keyframe when that pays, else plain (or as
    is, if compression does not pay). In a `chain` (a document's next raw item) the keyframe form must be
    at most :data:`KEYFRAME_RATIO` of the plain form. Otherwise (a text or diff against its raw item's
    keyframe) it is taken as soon as it is smaller than `data`, without compressing `data` plain as well:
    on the replay corpus and the storage benchmark's farm (3,684 texts and diffs) the plain form was never
    the smaller, and computing it was a third of the compression time of a cold poll."""
    against = None
    if keyframe is not None and len(keyframe[1]) >= _MIN_DICT:
        against = Encoded("zstd-dict", keyframe[0], _dict_compressor(keyframe[1]).compress(data))
        if not chain and len(against.data) < len(data):
            return against
    plain = _zstd()[0].compress(data)
    if against is not None and len(against.data) <= (KEYFRAME_RATIO if chain else 1.0) * len(plain):
        return against
    if len(plain) >= len(data):
        return Encoded("none", None, data)
    return Encoded("zstd", None, plain)


def reencode_plain(conn: Connection, hashes: Iterable[bytes]) -> int:
    """Rewrite dictionary-compressed blobs on their own (before their keyframe is deleted)."""
    count = 0
    for h in hashes:
        enc = encode(get(conn, h))
        conn.execute(update(Blob).where(Blob.c.hash == h).values(codec=enc.codec, base=None, data=enc.data))
        count += 1
    return count


def get(conn: Connection, key: bytes) -> bytes:
    row = conn.execute(select(Blob.c.codec, Blob.c.base, Blob.c.data).where(Blob.c.hash == key)).one_or_none()
    if row is None:
        raise KeyError(key.hex())
    return decode(conn, row.codec, row.base, row.data)


def get_text(conn: Connection, key: bytes) -> str:
    return get(conn, key).decode("utf-8")


def decode(conn: Connection, codec: str, base: bytes | None, data: bytes) -> bytes:
    return decode_with(codec, get(conn, base) if codec == "zstd-dict" and base is not None else None, data)


def decode_with(codec: str, keyframe: bytes | None, data: bytes) -> bytes:
    """A blob's content from its stored form, given the content of its keyframe when it has one."""
    if codec == "zstd":
        return _zstd()[1].decompress(data)
    if codec == "none":
        return data
    if codec == "zstd-dict" and keyframe is not None:
        dictionary = zstandard.ZstdCompressionDict(keyframe, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(data)
    raise ValueError(f"unknown blob codec {codec!r}")


def get_many(conn: Connection, keys: Iterable[bytes]) -> dict[bytes, bytes]:
    """The contents of several blobs (those stored): one query per chunk of them, one more per chunk of
    the keyframes they need that are not among them. What readers of whole histories use instead of a
    query (or two) per blob."""
    rows: dict[bytes, Any] = {}
    for chunk in chunks(sorted(set(keys))):
        rows.update((r.hash, r) for r in conn.execute(
            select(Blob.c.hash, Blob.c.codec, Blob.c.base, Blob.c.data).where(Blob.c.hash.in_(chunk))))
    frames = {r.base for r in rows.values() if r.codec == "zstd-dict" and r.base is not None}
    out = get_many(conn, frames - rows.keys()) if frames - rows.keys() else {}
    for h in sorted(rows, key=lambda h: h not in frames):       # keyframes first: the others need them
        r = rows[h]
        if r.codec == "zstd-dict" and r.base is not None and r.base not in out:
            raise KeyError(r.base.hex())
        out[h] = decode_with(r.codec, out[r.base] if r.codec == "zstd-dict" and r.base else None, r.data)
    return out


def stored(conn: Connection, hashes: list[bytes]) -> set[bytes]:
    """Which of these blobs are stored already."""
    found: set[bytes] = set()
    for chunk in chunks(hashes):
        found.update(conn.execute(select(Blob.c.hash).where(Blob.c.hash.in_(chunk))).scalars())
    return found


def _keyframes(conn: Connection, similar: Mapping[bytes, bytes], known: Mapping[bytes, bytes],
               frames: Mapping[bytes, bytes]) -> dict[bytes, tuple[bytes, bytes]]:
    """New blob hash -> (hash, content) of the keyframe of the blob it resembles."""
    wanted = sorted(set(similar.values()) - frames.keys())
    key_of = dict(frames)
    for chunk in chunks(wanted):
        rows = conn.execute(select(Blob.c.hash, Blob.c.codec, Blob.c.base).where(Blob.c.hash.in_(chunk)))
        for r in rows:
            key_of[r.hash] = r.base if r.codec == "zstd-dict" and r.base is not None else r.hash
    contents: dict[bytes, bytes] = {}
    out: dict[bytes, tuple[bytes, bytes]] = {}
    for new, old in similar.items():
        key = key_of.get(old)
        if key is None:
            continue
        if key not in contents:
            contents[key] = known[key] if key in known else get(conn, key)
        out[new] = (key, contents[key])
    return out


def _dict_compressor(content: bytes) -> zstandard.ZstdCompressor:
    dictionary = zstandard.ZstdCompressionDict(content, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary)
