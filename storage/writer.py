"""Write polls' results inside the caller's transaction, in a handful of batched statements.

A cold poll of a 20-item feed adds 20 documents, 20 versions, 20 change records and their blobs; written
row by row that is ~100 statements, and statement overhead dominated the whole cycle. Here each kind of
row is one executemany, for one poll or for a batch of polls committed together (storage.store
``record_polls``): about ten statements, however many polls. Version numbers are computed from the stored
``latest_version``: each feed's lease guarantees no other writer touches its documents meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.engine import Connection

from monitor import codec
from monitor.headline import change_summary
from monitor.models import ChangeKind, DocumentUpdate, PollRecord, RecordedChange
from storage import blobs
from storage.bulk import BulkInsert
from storage.db import upsert_insert
from storage.rows import chunks
from storage.schema import Change, Delivery, Document, Page, Version


@dataclass
class _Row:
    """One update on its way to the database: its document id and version number once known."""

    rec: PollRecord
    update: DocumentUpdate
    doc_id: int | None
    version: int = 0
    title: str = ""
    guid: str | None = None
    link: str | None = None
    raw_hash: bytes | None = None      # of its new version's raw item, hashed once (storage.writer.store_blobs)
    diff_hash: bytes | None = None     # of its diff's JSON


_WHERE_ID = update(Document).where(Document.c.id == bindparam("b_id"))
# Built once: one statement per kind of document update, executed with many parameter sets.
_DOCUMENT_UPDATES = {
    "version": _WHERE_ID.values(key=bindparam("b_key"), guid=bindparam("b_guid"), link=bindparam("b_link"),
                                title=bindparam("b_title"), state_hash=bindparam("b_state"),
                                latest_version=bindparam("b_v"), absent_polls=0, removed_at=None),
    "present": _WHERE_ID.values(key=bindparam("b_key"), guid=bindparam("b_guid"), link=bindparam("b_link"),
                                absent_polls=0, removed_at=None),
    "absent": _WHERE_ID.values(absent_polls=bindparam("b_absent")),
    "removed": _WHERE_ID.values(absent_polls=bindparam("b_absent"), removed_at=bindparam("b_now")),
}


# The rows inserted, one named tuple per table: its fields are the columns, in order (storage.bulk).
class _DocumentRow(NamedTuple):
    feed_id: int
    key: str
    guid: str | None
    link: str | None
    title: str
    first_seen_at: datetime
    latest_version: int
    state_hash: bytes
    absent_polls: int


class _VersionRow(NamedTuple):
    document_id: int | None
    number: int
    created_at: datetime
    title: str
    link: str | None
    text_hash: bytes
    raw_hash: bytes | None
    state_hash: bytes


class _ChangeRow(NamedTuple):
    feed_id: int
    document_id: int | None
    kind: str
    version: int
    from_version: int | None
    revert_of: int | None
    detected_at: datetime
    title: str
    baseline: bool
    summary: str
    diff_hash: bytes | None


class _DeliveryRow(NamedTuple):
    change_id: int | None
    feed_id: int
    target: str
    kind: str
    payload: str | None
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime


_INSERT_DOCUMENT = BulkInsert(Document, _DocumentRow._fields)
_INSERT_VERSION = BulkInsert(Version, _VersionRow._fields)
_INSERT_CHANGE = BulkInsert(Change, _ChangeRow._fields)
_INSERT_DELIVERY = BulkInsert(Delivery, _DeliveryRow._fields)


class PollWriter:
    """Writes polls (each already holding its feed's lease) in the caller's transaction."""

    def __init__(self, conn: Connection, records: Sequence[PollRecord]) -> None:
        self.conn, self.records = conn, records

    def write(self) -> list[list[RecordedChange]]:
        """Each poll's recorded changes, in the order of the records."""
        rows = [_Row(rec, u, u.decision.document_id) for rec in self.records for u in rec.updates]
        self.store_blobs(rows)
        self.load_existing([r for r in rows if r.doc_id is not None])
        self.insert_documents([r for r in rows if r.doc_id is None])
        self.update_documents([r for r in rows if r.update.decision.document_id is not None])
        self.insert_versions([r for r in rows if r.update.decision.item is not None and r.update.decision.new_version])
        changes = self.insert_changes([r for r in rows if r.update.decision.kind is not None])
        self.outbox(changes)
        for rec in self.records:
            self.pages(rec)
        return [changes.get(id(rec), []) for rec in self.records]

    def pages(self, rec: PollRecord) -> None:
        """Upsert the page states of a poll (validators, hashes, errors) with its documents, and drop the
        states of pages the source no longer lists (their errors would otherwise stay in `status`)."""
        if rec.page_urls is not None:
            stale = [r.url for r in self.conn.execute(select(Page.c.url).where(Page.c.feed_id == rec.feed_id))
                     if r.url not in rec.page_urls]
            for chunk in chunks(stale):
                self.conn.execute(delete(Page).where(Page.c.feed_id == rec.feed_id, Page.c.url.in_(chunk)))
        for p in rec.pages:
            values = {"etag": p.validators.etag, "last_modified": p.validators.last_modified,
                      "lastmod": p.lastmod, "body_hash": p.body_hash, "text_hash": p.text_hash,
                      "title": p.title, "error": p.error, "checked_at": rec.now}
            stmt = upsert_insert(self.conn, Page).values(feed_id=rec.feed_id, url=p.url, **values)
            self.conn.execute(stmt.on_conflict_do_update(index_elements=["feed_id", "url"], set_=values))

    def store_blobs(self, rows: list[_Row]) -> None:
        """Raw items first, each compressed against its document's keyframe; then texts and diffs,
        compressed against the keyframe of their version's raw item (storage.blobs)."""
        raws: dict[bytes, bytes] = {}
        rest: dict[bytes, bytes] = {}
        similar: dict[bytes, bytes] = {}
        changed = [r.doc_id for r in rows if r.update.decision.new_version and r.doc_id is not None]
        previous = latest_raw_hashes(self.conn, changed)
        for r in rows:
            u = r.update
            item = u.decision.item
            if item is not None and u.decision.new_version:
                r.raw_hash = raw_hash = hashlib.sha256(item.raw).digest()
                raws[raw_hash] = item.raw
                rest[item.text_hash] = item.text.encode()
                similar[item.text_hash] = raw_hash
                if (before := previous.get(u.decision.document_id or 0)) is not None:
                    similar[raw_hash] = before
            if u.diff is not None:
                data = codec.diff_to_json(u.diff)
                rest[diff_hash := hashlib.sha256(data).digest()] = data
                r.diff_hash = diff_hash
                if r.raw_hash is not None:
                    similar[diff_hash] = r.raw_hash
        existing = blobs.stored(self.conn, [*raws, *rest])     # one query for both kinds
        frames = blobs.put(self.conn, raws, similar=similar, chain=True, existing=existing)
        blobs.put(self.conn, rest, similar=similar, known=raws, existing=existing, frames=frames)

    def load_existing(self, rows: list[_Row]) -> None:
        """Current version, title, guid and link of the stored documents these polls touch."""
        ids = [r.doc_id for r in rows]
        found: dict[int, Any] = {}
        for id_chunk in chunks(ids):
            for d in self.conn.execute(select(Document.c.id, Document.c.latest_version, Document.c.title,
                                              Document.c.guid,
                                              Document.c.link).where(Document.c.id.in_(id_chunk))):
                found[d.id] = d
        for r in rows:
            assert r.doc_id is not None
            d = found[r.doc_id]
            item = r.update.decision.item
            r.version = d.latest_version + (1 if r.update.decision.new_version else 0)
            r.title, r.guid, r.link = (item.title, item.guid, item.link) if item else (d.title, d.guid, d.link)

    def insert_documents(self, rows: list[_Row]) -> None:
        if not rows:
            return
        params: list[_DocumentRow] = []
        for r in rows:
            item = r.update.decision.item
            assert item is not None
            r.version, r.title, r.guid, r.link = 1, item.title, item.guid, item.link
            params.append(_DocumentRow(feed_id=r.rec.feed_id, key=item.key, guid=item.guid, link=item.link,
                                       title=item.title, first_seen_at=r.rec.now, latest_version=1,
                                       state_hash=item.state_hash, absent_polls=0))
        # Without RETURNING: on SQLite, RETURNING in parameter order means one statement per row.
        _INSERT_DOCUMENT(self.conn, params)
        found: dict[tuple[int, str], int] = {}
        for chunk in chunks(params):
            feeds, keys = {p.feed_id for p in chunk}, [p.key for p in chunk]
            for row in self.conn.execute(select(Document.c.feed_id, Document.c.key, Document.c.id).where(
                    Document.c.feed_id.in_(feeds), Document.c.key.in_(keys))):
                found[(row.feed_id, row.key)] = row.id
        for r, p in zip(rows, params, strict=True):
            r.doc_id = found[(p.feed_id, p.key)]

    def update_documents(self, rows: list[_Row]) -> None:
        """Four uniform executemany statements: new version, back in the feed, still absent, removed."""
        groups: dict[str, list[dict[str, Any]]] = {"version": [], "present": [], "absent": [], "removed": []}
        for r in rows:
            d, item = r.update.decision, r.update.decision.item
            base = {"b_id": r.doc_id}
            if item is not None and d.new_version:
                groups["version"].append({**base, "b_key": item.key, "b_guid": item.guid, "b_link": item.link,
                                          "b_title": item.title, "b_state": item.state_hash, "b_v": r.version})
            elif item is not None:
                groups["present"].append({**base, "b_key": item.key, "b_guid": item.guid, "b_link": item.link})
            elif d.kind is ChangeKind.REMOVED:
                groups["removed"].append({**base, "b_absent": d.absent_polls, "b_now": r.rec.now})
            else:
                groups["absent"].append({**base, "b_absent": d.absent_polls})
        for name, params in groups.items():
            if params:
                self.conn.execute(_DOCUMENT_UPDATES[name], params)

    def insert_versions(self, rows: list[_Row]) -> None:
        params = []
        for r in rows:
            item = r.update.decision.item
            assert item is not None
            params.append(_VersionRow(document_id=r.doc_id, number=r.version, created_at=r.rec.now, title=item.title,
                                      link=item.link, text_hash=item.text_hash, raw_hash=r.raw_hash,
                                      state_hash=item.state_hash))
        _INSERT_VERSION(self.conn, params)

    def insert_changes(self, rows: list[_Row]) -> dict[int, list[RecordedChange]]:
        """The change rows, and each poll's recorded changes by id() of its record."""
        if not rows:
            return {}
        params: list[_ChangeRow] = []
        for r in rows:
            d, diff = r.update.decision, r.update.diff
            assert d.kind is not None
            returned = d.kind is ChangeKind.ADDED and d.document_id is not None   # back after its removal
            params.append(_ChangeRow(
                feed_id=r.rec.feed_id, document_id=r.doc_id, kind=d.kind.value, version=r.version,
                from_version=r.version - 1 if d.kind is ChangeKind.CHANGED or returned else None,
                revert_of=d.revert_of, detected_at=r.rec.now, title=r.title, baseline=r.rec.baseline,
                summary=change_summary(d.kind, diff, d.revert_of, r.rec.rebaseline,
                                       returned_from=r.version - 1 if returned else None),
                diff_hash=r.diff_hash))
        _INSERT_CHANGE(self.conn, params)
        # These polls' change rows: one per (document, version, kind), each detected at its poll's `now`.
        ids: dict[tuple[int | None, int, str], int] = {}
        polls = {(p.feed_id, p.detected_at) for p in params}
        for chunk in chunks(params):
            query = (select(Change.c.id, Change.c.feed_id, Change.c.detected_at, Change.c.document_id,
                            Change.c.version, Change.c.kind)
                     .where(Change.c.document_id.in_({p.document_id for p in chunk}),
                            Change.c.detected_at.in_({p.detected_at for p in chunk})))
            ids.update({(c.document_id, c.version, c.kind): c.id for c in self.conn.execute(query)
                        if (c.feed_id, c.detected_at) in polls})
        out: dict[int, list[RecordedChange]] = {}
        for r, p in zip(rows, params, strict=True):
            assert p.document_id is not None
            out.setdefault(id(r.rec), []).append(RecordedChange(
                id=ids[(p.document_id, p.version, p.kind)], feed=r.rec.feed, document_id=p.document_id,
                guid=r.guid, link=r.link, title=r.title, kind=ChangeKind(p.kind), version=p.version,
                from_version=p.from_version, revert_of=p.revert_of, detected_at=r.rec.now,
                summary=p.summary, baseline=r.rec.baseline, diff=r.update.diff))
        return out

    def outbox(self, changes: dict[int, list[RecordedChange]]) -> None:
        """One row per (change, target) and per (alert, target)."""
        rows: list[_DeliveryRow] = []
        for rec in self.records:
            rows += [_DeliveryRow(change_id=c.id, feed_id=rec.feed_id, target=t, kind="change", payload=None,
                                  status="pending", attempts=0, created_at=rec.now, next_attempt_at=rec.now)
                     for c in changes.get(id(rec), []) if not c.baseline for t in rec.notify]
            rows += [_DeliveryRow(change_id=None, feed_id=rec.feed_id, target=t, kind=a.kind, payload=a.payload,
                                  status="pending", attempts=0, created_at=rec.now, next_attempt_at=rec.now)
                     for a in rec.alerts for t in a.targets]
        _INSERT_DELIVERY(self.conn, rows)


def latest_raw_hashes(conn: Connection, doc_ids: Sequence[int]) -> dict[int, bytes]:
    """Document id -> raw item hash of its latest version: what a new version is compressed against."""
    out: dict[int, bytes] = {}
    for chunk in chunks(doc_ids):
        rows = conn.execute(select(Version.c.document_id, Version.c.raw_hash).join(Document, and_(
            Document.c.id == Version.c.document_id, Document.c.latest_version == Version.c.number))
            .where(Version.c.document_id.in_(chunk), Version.c.raw_hash.is_not(None)))
        out.update({r.document_id: r.raw_hash for r in rows})
    return out
