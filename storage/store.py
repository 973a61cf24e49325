"""Intent-named queries. They take and return monitor.models values, never ORM rows.

Writes that belong together happen in one transaction: :meth:`Store.record_poll` writes a poll's new
versions, change records, validators, feed state and outbox rows, and commits only while this process
still holds the feed's lease. Reads used by the CLI can run on a read-only engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from monitor import codec
from monitor.errors import UsageError
from monitor.models import (
    ChangeKind,
    DocumentDiff,
    DocumentInfo,
    FeedState,
    FeedStatusInfo,
    KnownDocument,
    PollRecord,
    PollStatus,
    RecordedChange,
    Validators,
    VersionInfo,
)
from monitor.urls import host_of
from storage import blobs
from storage.db import ensure_schema, open_engine
from storage.outbox import Outbox
from storage.schema import Change, Delivery, Document, Feed, Host, Version

REVERT_DEPTH = 5          # recent version states loaded per document for revert detection
_CHUNK = 500              # parameters per IN (...) list


def utcnow() -> datetime:
    return datetime.now(UTC)


class LeaseLost(Exception):
    """Another process took over the feed while this one polled it; its work is discarded."""


class Store:
    """The database, behind methods named after what feedwatch needs from it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, readonly: bool = False) -> Store:
        engine = open_engine(url, readonly=readonly)
        if not readonly:
            ensure_schema(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.engine)

    # ------------------------------------------------------------------------------------ feeds, leases

    def sync_feeds(self, feeds: Iterable[tuple[str, str]], now: datetime | None = None) -> dict[str, int]:
        """Make sure every configured (name, url) has a row; new feeds are due at once. Name -> id."""
        now = now or utcnow()
        wanted = dict(feeds)
        with self.engine.begin() as conn:
            rows = {r.name: (r.id, r.url) for r in conn.execute(
                select(Feed.id, Feed.name, Feed.url).where(Feed.name.in_(list(wanted))))}
            for name, url in wanted.items():
                if name not in rows:
                    new_id = conn.execute(insert(Feed).values(
                        name=name, url=url, created_at=now, next_due_at=now, baseline_done=False, polls=0,
                        consecutive_errors=0, error_alerted=False).returning(Feed.id)).scalar_one()
                    rows[name] = (new_id, url)
                elif rows[name][1] != url:
                    # A new URL: forget the old server's validators and body, keep the history.
                    conn.execute(update(Feed).where(Feed.id == rows[name][0]).values(
                        url=url, etag=None, last_modified=None, body_hash=None))
        return {name: rows[name][0] for name in wanted}

    def make_due(self, feed_ids: Sequence[int], now: datetime | None = None) -> None:
        """Mark feeds due now (``run --force``)."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            for chunk in _chunks(feed_ids):
                conn.execute(update(Feed).where(Feed.id.in_(chunk)).values(next_due_at=now))

    def claim_due_feeds(self, feed_ids: Sequence[int], owner: str, *, limit: int, lease: float,
                        now: datetime | None = None, exclude: Iterable[int] = ()) -> list[FeedState]:
        """Lease up to `limit` due feeds among `feed_ids` for `owner`; each is polled by one process only.

        PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` then a lease. SQLite silently drops FOR UPDATE,
        but the claim runs in one ``BEGIN IMMEDIATE`` transaction, which serialises claimers.
        A lease held by a process of this host that no longer exists is expired on the spot.
        """
        now = now or utcnow()
        excluded = set(exclude)
        candidates = [i for i in feed_ids if i not in excluded]
        if not candidates or limit <= 0:
            return []
        with self.engine.begin() as conn:
            expire_dead_leases(conn, Feed, now)
            blocked_hosts = {r.name for r in conn.execute(select(Host.name).where(Host.backoff_until > now))}
            query = (select(Feed.__table__).where(Feed.id.in_(candidates), Feed.next_due_at <= now,
                                        or_(Feed.lease_until.is_(None), Feed.lease_until < now))
                     .order_by(Feed.next_due_at, Feed.id))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=Feed)
            claimed: list[FeedState] = []
            for feed in conn.execute(query.limit(limit + len(blocked_hosts) * 4)).all():
                if len(claimed) >= limit:
                    break
                if blocked_hosts and host_of(feed.url) in blocked_hosts:
                    continue
                claimed.append(_feed_state(feed))
            if claimed:
                ids = [f.id for f in claimed]
                conn.execute(update(Feed).where(Feed.id.in_(ids))
                             .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease)))
                counts = dict(conn.execute(select(Document.feed_id, func.count()).where(
                    Document.feed_id.in_(ids), Document.removed_at.is_(None)).group_by(Document.feed_id)).all())
                claimed = [dataclasses.replace(f, documents=counts.get(f.id, 0)) for f in claimed]
        return claimed

    def release_feeds(self, owner: str, feed_ids: Sequence[int] | None = None) -> None:
        with self.engine.begin() as conn:
            query = update(Feed).where(Feed.lease_owner == owner)
            if feed_ids is not None:
                query = query.where(Feed.id.in_(list(feed_ids)))
            conn.execute(query.values(lease_owner=None, lease_until=None))

    def next_wakeup(self, names: Sequence[str]) -> datetime | None:
        """When something is next due: a feed (not before its host's back-off ends) or a delivery retry."""
        with self.engine.connect() as conn:
            hosts = dict(conn.execute(select(Host.name, Host.backoff_until)).all())
            times = []
            for url, due in conn.execute(select(Feed.url, Feed.next_due_at).where(Feed.name.in_(list(names)))):
                blocked = hosts.get(host_of(url))
                times.append(max(due, blocked) if blocked else due)
            retry = conn.execute(select(func.min(Delivery.next_attempt_at)).where(
                Delivery.status == "pending")).scalar()
        if retry is not None:
            times.append(retry)
        return min(times) if times else None

    def back_off_host(self, host: str, until: datetime, reason: str) -> None:
        """No feed on `host` is claimed before `until` (Retry-After, 429, 503)."""
        with self.engine.begin() as conn:
            stmt = _upsert(conn, Host, {"name": host, "backoff_until": until, "reason": reason}, ["name"],
                           {"backoff_until": until, "reason": reason})
            conn.execute(stmt)

    # ------------------------------------------------------------------------------------ documents

    def known_documents(self, feed_id: int, *, absent_only: bool = False) -> list[KnownDocument]:
        """The feed's documents with their recent version states (for identity, compare, reverts)."""
        with self.engine.connect() as conn:
            query = select(Document.__table__).where(Document.feed_id == feed_id)
            if absent_only:
                query = query.where(Document.absent_polls > 0, Document.removed_at.is_(None))
            docs = conn.execute(query).all()
            recent = self._recent_states(conn, [d.id for d in docs]) if not absent_only else {}
        return [KnownDocument(id=d.id, key=d.key, guid=d.guid, link=d.link, latest_version=d.latest_version,
                              state_hash=d.state_hash, recent_states=recent.get(d.id, ()),
                              absent_polls=d.absent_polls, removed=d.removed_at is not None) for d in docs]

    def _recent_states(self, conn: Connection, doc_ids: list[int]) -> dict[int, tuple[tuple[int, bytes], ...]]:
        out: dict[int, list[tuple[int, bytes]]] = {}
        for chunk in _chunks(doc_ids):
            ranked = (select(Version.document_id, Version.number, Version.state_hash,
                             func.row_number().over(partition_by=Version.document_id,
                                                    order_by=Version.number.desc()).label("rank"))
                      .where(Version.document_id.in_(chunk)).subquery())
            rows = conn.execute(select(ranked.c.document_id, ranked.c.number, ranked.c.state_hash)
                                .where(ranked.c.rank <= REVERT_DEPTH)
                                .order_by(ranked.c.document_id, ranked.c.number.desc()))
            for r in rows:
                out.setdefault(r.document_id, []).append((r.number, r.state_hash))
        return {k: tuple(v) for k, v in out.items()}

    def latest_versions(self, doc_ids: Sequence[int]) -> dict[int, VersionInfo]:
        """The latest stored version (with text) of each document."""
        out: dict[int, VersionInfo] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(doc_ids):
                rows = conn.execute(select(Version.__table__).join(Document, and_(
                    Document.id == Version.document_id, Document.latest_version == Version.number))
                    .where(Version.document_id.in_(chunk))).all()
                for v in rows:
                    out[v.document_id] = _version_info(v, text=blobs.get_text(conn, v.text_hash))
        return out

    # ------------------------------------------------------------------------------------ the poll

    def record_poll(self, rec: PollRecord) -> list[RecordedChange]:
        """Write one poll in one transaction; raises LeaseLost (and writes nothing) without the lease."""
        with self.engine.begin() as conn:
            feed = self._take_lease(conn, rec)
            changes = _PollWriter(conn, rec, feed).write()
        return changes

    def _take_lease(self, conn: Connection, rec: PollRecord) -> Any:
        ok = rec.status is not PollStatus.ERROR
        values: dict[str, Any] = dict(
            lease_owner=None, lease_until=None, next_due_at=rec.next_due_at, last_polled_at=rec.now,
            last_status=rec.status.value, polls=Feed.polls + 1, error_alerted=rec.error_alerted)
        if ok:
            values.update(last_error=None, last_ok_at=rec.now, consecutive_errors=0, baseline_done=True,
                          etag=rec.validators.etag, last_modified=rec.validators.last_modified,
                          body_hash=rec.body_hash, settings_hash=rec.settings_hash)
        else:
            values.update(last_error=rec.error, consecutive_errors=Feed.consecutive_errors + 1)
        result = conn.execute(update(Feed).where(Feed.id == rec.feed_id, Feed.lease_owner == rec.owner)
                              .values(**values))
        if result.rowcount != 1:
            raise LeaseLost(rec.feed)
        return conn.execute(select(Feed.__table__).where(Feed.id == rec.feed_id)).one()

    # ------------------------------------------------------------------------------------ reading

    def feed_statuses(self, names: Sequence[str] | None = None) -> list[FeedStatusInfo]:
        with self.engine.connect() as conn:
            counts = dict(conn.execute(select(Document.feed_id, func.count())
                                       .where(Document.removed_at.is_(None)).group_by(Document.feed_id)).all())
            query = select(Feed.__table__).order_by(Feed.name)
            if names is not None:
                query = query.where(Feed.name.in_(list(names)))
            now = utcnow()
            return [FeedStatusInfo(
                name=f.name, url=f.url, last_polled_at=f.last_polled_at, last_status=f.last_status,
                last_error=f.last_error, documents=counts.get(f.id, 0), last_change_at=f.last_change_at,
                next_due_at=f.next_due_at, consecutive_errors=f.consecutive_errors, polls=f.polls,
                leased_by=f.lease_owner if f.lease_until and f.lease_until > now else None)
                for f in conn.execute(query).all()]

    def documents(self, feed: str | None = None) -> list[DocumentInfo]:
        with self.engine.connect() as conn:
            query = select(Document.__table__, Feed.name.label("feed_name")).join(Feed).order_by(Feed.name, Document.id)
            if feed is not None:
                query = query.where(Feed.name == feed)
            return [_document_info(r) for r in conn.execute(query).all()]

    def find_document(self, ref: str) -> DocumentInfo:
        """A document by numeric id, guid, link or identity key; UsageError when none or ambiguous."""
        with self.engine.connect() as conn:
            query = select(Document.__table__, Feed.name.label("feed_name")).join(Feed)
            if ref.isdigit():
                rows = conn.execute(query.where(Document.id == int(ref))).all()
                if rows:
                    return _document_info(rows[0])
            rows = conn.execute(query.where(or_(Document.guid == ref, Document.link == ref,
                                                Document.key == ref))).all()
        if not rows:
            raise UsageError(f"no document matches '{ref}' (use a document id, guid or URL; see "
                             "'feedwatch history')")
        if len(rows) > 1:
            ids = ", ".join(str(r.id) for r in rows)
            raise UsageError(f"'{ref}' matches several documents (ids {ids}); use the numeric id")
        return _document_info(rows[0])

    def versions(self, doc_id: int) -> list[VersionInfo]:
        """Every stored version of a document with the change that produced it, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Version.__table__, Change.kind, Change.summary, Change.revert_of)
                .outerjoin(Change, and_(Change.document_id == Version.document_id,
                                        Change.version == Version.number, Change.kind != "removed"))
                .where(Version.document_id == doc_id).order_by(Version.number)).all()
            return [VersionInfo(v.document_id, v.number, v.created_at, v.title, v.link, v.kind, v.summary,
                                v.revert_of) for v in rows]

    def version(self, doc_id: int, number: int) -> VersionInfo:
        with self.engine.connect() as conn:
            v = conn.execute(select(Version.__table__).where(Version.document_id == doc_id,
                                                              Version.number == number)).one_or_none()
            if v is None:
                raise UsageError(self._no_version(conn, doc_id, number))
            return _version_info(v, text=blobs.get_text(conn, v.text_hash))

    @staticmethod
    def _no_version(conn: Connection, doc_id: int, number: int) -> str:
        stored = list(conn.execute(select(Version.number).where(Version.document_id == doc_id)
                                   .order_by(Version.number)).scalars())
        if stored and number < stored[-1]:
            return (f"version {number} of document {doc_id} is no longer stored (removed by its retention "
                    f"policy); stored versions: {_ranges(stored)}")
        return f"document {doc_id} has no version {number}"

    def changes(self, doc_id: int) -> list[RecordedChange]:
        """Change records of a document (including removals), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Change.__table__, Document.guid, Document.link, Feed.name.label("feed_name"))
                                .join(Document, Change.document_id == Document.id)
                                .join(Feed, Change.feed_id == Feed.id)
                                .where(Change.document_id == doc_id).order_by(Change.id)).all()
            return [_recorded(r) for r in rows]

class _PollWriter:
    """Writes one poll's documents, versions, changes and outbox rows inside the caller's transaction."""

    def __init__(self, conn: Connection, rec: PollRecord, feed: Any) -> None:
        self.conn, self.rec, self.feed = conn, rec, feed
        self.now = rec.now

    def write(self) -> list[RecordedChange]:
        self.store_blobs()
        changes = [c for u in self.rec.updates if (c := self.apply(u)) is not None]
        if changes:
            self.conn.execute(update(Feed).where(Feed.id == self.rec.feed_id).values(last_change_at=self.now))
        self.outbox(changes)
        return changes

    def store_blobs(self) -> None:
        """Raw items first, each compressed against its document's keyframe; then texts and diffs,
        compressed against the keyframe of their version's raw item (storage.blobs)."""
        raws: dict[bytes, bytes] = {}
        rest: dict[bytes, bytes] = {}
        similar: dict[bytes, bytes] = {}
        changed = [u.decision.document_id for u in self.rec.updates
                   if u.decision.new_version and u.decision.document_id is not None]
        previous = latest_raw_hashes(self.conn, changed)
        for u in self.rec.updates:
            item = u.decision.item
            raw_hash = None
            if item is not None and u.decision.new_version:
                raw_hash = hashlib.sha256(item.raw).digest()
                raws[raw_hash] = item.raw
                rest[item.text_hash] = item.text.encode()
                similar[item.text_hash] = raw_hash
                if (before := previous.get(u.decision.document_id or 0)) is not None:
                    similar[raw_hash] = before
            if u.diff is not None:
                data = codec.diff_to_json(u.diff)
                rest[diff_hash := hashlib.sha256(data).digest()] = data
                if raw_hash is not None:
                    similar[diff_hash] = raw_hash
        blobs.put(self.conn, raws, similar=similar, chain=True)
        blobs.put(self.conn, rest, similar=similar)

    def apply(self, u: Any) -> RecordedChange | None:
        d = u.decision
        item = d.item
        doc_id = d.document_id
        version: int | None = None
        if item is not None and doc_id is None:
            doc_id = self.conn.execute(insert(Document).values(
                feed_id=self.rec.feed_id, key=item.key, guid=item.guid, link=item.link, title=item.title,
                first_seen_at=self.now, latest_version=1, state_hash=item.state_hash, absent_polls=0,
            ).returning(Document.id)).scalar_one()
            version = 1
        elif item is not None:
            values: dict[str, Any] = dict(key=item.key, guid=item.guid, link=item.link, absent_polls=0,
                                          removed_at=None)
            if d.new_version:
                values.update(title=item.title, state_hash=item.state_hash,
                              latest_version=Document.latest_version + 1)
            version = self.conn.execute(update(Document).where(Document.id == doc_id).values(**values)
                                        .returning(Document.latest_version)).scalar_one()
        else:
            values = {"absent_polls": d.absent_polls}
            if d.kind is ChangeKind.REMOVED:
                values["removed_at"] = self.now
            version = self.conn.execute(update(Document).where(Document.id == doc_id).values(**values)
                                        .returning(Document.latest_version)).scalar_one()
        assert doc_id is not None and version is not None
        if item is not None and d.new_version:
            self.conn.execute(insert(Version).values(
                document_id=doc_id, number=version, created_at=self.now, title=item.title, link=item.link,
                text_hash=item.text_hash, raw_hash=hashlib.sha256(item.raw).digest(),
                state_hash=item.state_hash))
        if d.kind is None:
            return None
        return self.change(u, doc_id, version)

    def change(self, u: Any, doc_id: int, version: int) -> RecordedChange:
        d = u.decision
        diff: DocumentDiff | None = u.diff
        doc = self.conn.execute(select(Document.__table__).where(Document.id == doc_id)).one()
        summary = _change_summary(d.kind, diff, d.revert_of, self.rec.baseline and self.feed.polls > 1)
        from_version = version - 1 if d.kind is ChangeKind.CHANGED else None
        change_id = self.conn.execute(insert(Change).values(
            feed_id=self.rec.feed_id, document_id=doc_id, kind=d.kind.value, version=version,
            from_version=from_version, revert_of=d.revert_of, detected_at=self.now, title=doc.title,
            summary=summary, diff_hash=hashlib.sha256(codec.diff_to_json(diff)).digest() if diff else None,
            baseline=self.rec.baseline,
        ).returning(Change.id)).scalar_one()
        return RecordedChange(id=change_id, feed=self.rec.feed, document_id=doc_id, guid=doc.guid,
                              link=doc.link, title=doc.title, kind=d.kind, version=version,
                              from_version=from_version, revert_of=d.revert_of, detected_at=self.now,
                              summary=summary, baseline=self.rec.baseline, diff=diff)

    def outbox(self, changes: list[RecordedChange]) -> None:
        rows = [dict(change_id=c.id, feed_id=self.rec.feed_id, target=t, kind="change", status="pending",
                     attempts=0, created_at=self.now, next_attempt_at=self.now)
                for c in changes if not c.baseline for t in self.rec.notify]
        rows += [dict(change_id=None, feed_id=self.rec.feed_id, target=t, kind=a.kind, payload=a.payload,
                      status="pending", attempts=0, created_at=self.now, next_attempt_at=self.now)
                 for a in self.rec.alerts for t in a.targets]
        if rows:
            self.conn.execute(insert(Delivery), rows)


def latest_raw_hashes(conn: Connection, doc_ids: Sequence[int]) -> dict[int, bytes]:
    """Document id -> raw item hash of its latest version: what a new version is compressed against."""
    out: dict[int, bytes] = {}
    for chunk in _chunks(doc_ids):
        rows = conn.execute(select(Version.document_id, Version.raw_hash).join(Document, and_(
            Document.id == Version.document_id, Document.latest_version == Version.number))
            .where(Version.document_id.in_(chunk), Version.raw_hash.is_not(None)))
        out.update({r.document_id: r.raw_hash for r in rows})
    return out


def _change_summary(kind: ChangeKind, diff: DocumentDiff | None, revert_of: int | None, rebaseline: bool) -> str:
    if kind is ChangeKind.ADDED:
        text = "new document"
    elif kind is ChangeKind.REMOVED:
        text = "removed from the feed"
    else:
        text = diff.summary if diff else "changed"
        if revert_of is not None:
            text = f"reverted to version {revert_of}: {text}"
    return f"re-baselined after a configuration change: {text}" if rebaseline else text


def _feed_state(f: Any) -> FeedState:
    return FeedState(id=f.id, name=f.name, url=f.url, validators=Validators(f.etag, f.last_modified),
                     body_hash=f.body_hash, settings_hash=f.settings_hash, baseline_done=f.baseline_done,
                     consecutive_errors=f.consecutive_errors, error_alerted=f.error_alerted)


def _document_info(d: Any) -> DocumentInfo:
    return DocumentInfo(id=d.id, feed=d.feed_name, key=d.key, guid=d.guid, link=d.link, title=d.title,
                        latest_version=d.latest_version, first_seen_at=d.first_seen_at,
                        removed=d.removed_at is not None)


def _version_info(v: Any, *, text: str | None = None) -> VersionInfo:
    return VersionInfo(document_id=v.document_id, number=v.number, created_at=v.created_at, title=v.title,
                       link=v.link, text=text)


def _recorded(c: Any, diff: DocumentDiff | None = None) -> RecordedChange:
    """A change row joined with its document's guid and link and its feed's name."""
    return RecordedChange(id=c.id, feed=c.feed_name, document_id=c.document_id, guid=c.guid, link=c.link,
                          title=c.title,
                          kind=ChangeKind(c.kind), version=c.version, from_version=c.from_version,
                          revert_of=c.revert_of, detected_at=c.detected_at, summary=c.summary,
                          baseline=c.baseline, diff=diff)


def expire_dead_leases(conn: Connection, table: Any, now: datetime) -> None:
    """Free leases held by processes of this host that no longer exist (a `run` killed with -9)."""
    host = os.uname().nodename
    rows = conn.execute(select(table.id, table.lease_owner).where(
        table.lease_owner.like(f"{host}:%"), table.lease_until > now)).all()
    dead = [r.id for r in rows if not _pid_alive(r.lease_owner)]
    for chunk in _chunks(dead):
        conn.execute(update(table).where(table.id.in_(chunk)).values(lease_owner=None, lease_until=None))


def _pid_alive(owner: str | None) -> bool:
    try:
        pid = int((owner or "").rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _upsert(conn: Connection, table: Any, values: dict[str, Any], keys: list[str],
            update_values: dict[str, Any]) -> Any:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(table).values(**values)
    return stmt.on_conflict_do_update(index_elements=keys, set_=update_values)


def _ranges(numbers: Sequence[int]) -> str:
    """1, 2, 3, 5, 7, 8 -> "1-3, 5, 7-8"."""
    parts: list[list[int]] = []
    for n in numbers:
        if parts and n == parts[-1][-1] + 1:
            parts[-1].append(n)
        else:
            parts.append([n])
    return ", ".join(f"{p[0]}-{p[-1]}" if len(p) > 1 else str(p[0]) for p in parts)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]

