"""The one front door of storage: intent-named queries that take and return monitor.models values.

Everything outside ``storage/`` reaches the database through a :class:`Store` and the parts it hands out
(``store.outbox``, ``store.history(...)``), and through its methods for whole-database jobs
(``prune``, ``export``, ``import_history``, ``copy_to``); no SQLAlchemy ``Engine`` or row leaves it.

Writes that belong together happen in one transaction: :meth:`Store.record_poll` writes a poll's new
versions, change records, validators, feed state and outbox rows, and commits only while this process
still holds the feed's lease. Reads used by the CLI can run on a read-only engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, bindparam, case, func, or_, select, update
from sqlalchemy.engine import Connection

from monitor.errors import LeaseLost, UsageError
from monitor.models import (
    DocumentInfo,
    DueFeed,
    FeedHealth,
    FeedState,
    FeedStatusInfo,
    HostBackoff,
    KnownDocument,
    PageState,
    PollRecord,
    PollStatus,
    PruneReport,
    RecordedChange,
    ReportScope,
    Retention,
    Validators,
    VersionInfo,
    utcnow,
)
from monitor.urls import server_of
from storage import blobs
from storage.db import ensure_schema, open_engine, schema_state, sqlite_path, upsert_insert
from storage.history import History
from storage.leases import expire_dead_leases
from storage.outbox import Outbox
from storage.rows import chunks, document_info, feed_state, ids_in, recorded_change, version_info
from storage.schema import MAX_ID, Blob, Change, Delivery, Document, Feed, Host, Page, Version
from storage.writer import PollWriter

if TYPE_CHECKING:
    from storage.archive import ArchiveCounts, Progress

REVERT_DEPTH = 5          # recent version states loaded per document for revert detection
# The document columns compare and identity need (not its timestamps, which cost a conversion per row).
_KNOWN = (Document.c.id, Document.c.key, Document.c.guid, Document.c.link, Document.c.latest_version,
          Document.c.state_hash, Document.c.absent_polls, Document.c.removed_at.is_not(None).label("removed"),
          Document.c.title)
# A host back-off reaching further than this was written before Retry-After was capped (monitor.fetch):
# it is ignored, so that no old "year 9999" row keeps a host silent.
MAX_HOST_BACKOFF = timedelta(days=1, minutes=5)
CLOCK_SKEW = 5.0          # seconds two workers' clocks may differ by (a due time set by one, read by another)


_CLAIMED = (Feed.c.id, Feed.c.name, Feed.c.url, Feed.c.etag, Feed.c.last_modified, Feed.c.body_hash,
            Feed.c.settings_hash, Feed.c.baseline_done, Feed.c.consecutive_errors, Feed.c.error_alerted)


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseProbe:
    """What `feedwatch check` learns about a database without creating or writing anything."""

    sqlite_path: Path | None        # the SQLite file (None for PostgreSQL)
    exists: bool                    # False: an SQLite file the first run will create
    schema: str                     # storage.db.schema_state: empty, older, current, newer (or "" if absent)


class Store:
    """The database, behind methods named after what feedwatch needs from it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine        # storage's own (and tests'); nothing in monitor/ touches it
        self.outbox = Outbox(engine)

    @classmethod
    def open(cls, url: str, *, readonly: bool = False) -> Store:
        engine = open_engine(url, readonly=readonly)
        if not readonly:
            try:
                ensure_schema(engine)
            except BaseException:
                engine.dispose()
                raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def probe(url: str) -> DatabaseProbe:
        """The database at `url` as `check` reports it; nothing is created or written (StorageError if it
        cannot be opened)."""
        engine = open_engine(url, readonly=True)
        try:
            path = sqlite_path(engine)
            if path is not None and not path.exists():
                return DatabaseProbe(path, exists=False, schema="")
            return DatabaseProbe(path, exists=True, schema=schema_state(engine))
        finally:
            engine.dispose()

    @property
    def url(self) -> str:
        """The database URL as SQLAlchemy prints it (password as ``***``); storage.db.redact it to show it."""
        return str(self.engine.url)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (None for PostgreSQL)."""
        return sqlite_path(self.engine)

    def schema_state(self) -> str:
        """empty, older, current or newer than this feedwatch (storage.db.schema_state)."""
        return schema_state(self.engine)

    def forget_inherited_connections(self) -> None:
        """In a forked child: drop the pool's connections inherited from the parent without closing them
        (they stay the parent's); the child opens its own."""
        self.engine.dispose(close=False)

    def history(self, scope: ReportScope) -> AbstractContextManager[History]:
        """The changes of a report's scope, streamed inside one read transaction (storage.history)."""
        return History.open(self.engine, scope)

    # ------------------------------------------------------------------------------------ whole database
    # The modules of these jobs are imported when they run (not for a cycle: none of them imports this one),
    # so that the commands that poll and read do not pay ~10 ms of start-up for them.

    def prune(self, policies: Mapping[str, Retention], *, now: datetime | None = None, dry_run: bool = False,
              on_feed: Callable[[str], None] | None = None) -> PruneReport:
        """Apply `policies` (feed name -> Retention) now (storage.retention); `dry_run` changes nothing."""
        from storage import retention

        return retention.prune(self.engine, policies, now=now or utcnow(), dry_run=dry_run, on_feed=on_feed)

    def export(self, path: str | None, feeds: Sequence[str] | None = None, *,
               progress: Progress | None = None) -> ArchiveCounts:
        """Write the history of `feeds` (all by default) to the history file `path` (stdout: None or "-")."""
        from storage import archive

        return archive.export_to(self.engine, path, feeds, progress=progress)

    def import_history(self, path: str, *, progress: Progress | None = None) -> ArchiveCounts:
        """Store the history file at `path` ("-": stdin) in one transaction (storage.archive)."""
        from storage import archive

        return archive.import_from(self.engine, path, progress=progress)

    def copy_to(self, target_url: str, *, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
        """Copy this whole database into the empty one at `target_url`; rows copied per table (storage.copy)."""
        from storage import copy

        return copy.copy_database(self.engine, target_url, progress=progress)

    # ------------------------------------------------------------------------------------ feeds, leases

    def sync_feeds(self, feeds: Iterable[tuple[str, str]], now: datetime | None = None, *,
                   longest_waits: Mapping[str, float] | None = None) -> dict[str, int]:
        """Make sure every configured (name, url) has a row; new feeds are due at once. Name -> id.

        `longest_waits` (seconds, by name) is how long a healthy feed waits at most between polls under its
        interval now: a feed scheduled further off than that from now (its interval was shortened) is due
        that long after its last poll instead (or now), not only after the wait the old interval set.
        Safe when several workers start together: a feed inserted by another one meanwhile is kept.
        """
        now = now or utcnow()
        wanted = dict(feeds)
        waits = longest_waits or {}
        columns = (Feed.c.id, Feed.c.name, Feed.c.url, Feed.c.next_due_at, Feed.c.last_polled_at,
                   Feed.c.consecutive_errors)
        with self.engine.begin() as conn:
            rows = {r.name: r for chunk in chunks(list(wanted)) for r in conn.execute(
                select(*columns).where(Feed.c.name.in_(chunk)))}
            new = [dict(name=name, url=url, created_at=now, next_due_at=now, baseline_done=False, polls=0,
                        consecutive_errors=0, error_alerted=False) for name, url in wanted.items() if name not in rows]
            if new:
                conn.execute(upsert_insert(conn, Feed).on_conflict_do_nothing(index_elements=["name"]), new)
                rows.update({r.name: r for chunk in chunks([n["name"] for n in new]) for r in
                             conn.execute(select(*columns).where(Feed.c.name.in_(chunk)))})
            for name, url in wanted.items():
                row = rows[name]
                if row.url != url:
                    # A new URL: forget the old server's validators and body, keep the history.
                    conn.execute(update(Feed).where(Feed.c.id == row.id).values(
                        url=url, etag=None, last_modified=None, body_hash=None))
                wait = waits.get(name)
                if (wait is not None and row.last_polled_at is not None and not row.consecutive_errors
                        and row.next_due_at > now + timedelta(seconds=wait + CLOCK_SKEW)):
                    # Further off than a poll ending now could have set it: the interval was shortened.
                    due = max(now, row.last_polled_at + timedelta(seconds=wait))
                    conn.execute(update(Feed).where(Feed.c.id == row.id).values(next_due_at=due))
        return {name: rows[name].id for name in wanted}

    def make_due(self, feed_ids: Sequence[int], now: datetime | None = None) -> None:
        """Mark feeds due now (``run --force``)."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            for chunk in chunks(feed_ids):
                conn.execute(update(Feed).where(Feed.c.id.in_(chunk)).values(next_due_at=now))

    def claim_due_feeds(self, feed_ids: Sequence[int], owner: str, *, limit: int, lease: float,
                        now: datetime | None = None, exclude: Iterable[int] = (),
                        ignore_backoff: bool = False) -> list[FeedState]:
        """Lease up to `limit` due feeds among `feed_ids` for `owner`; each is polled by one process only.

        PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` then a lease. SQLite silently drops FOR UPDATE,
        but the claim runs in one ``BEGIN IMMEDIATE`` transaction, which serialises claimers.
        A lease held by a process of this host that no longer exists is expired on the spot.
        Feeds of a backed-off host are left alone unless `ignore_backoff` (``run --force``).
        """
        now = now or utcnow()
        excluded = set(exclude)
        candidates = [i for i in feed_ids if i not in excluded]
        if not candidates or limit <= 0:
            return []
        with self.engine.begin() as conn:
            expire_dead_leases(conn, Feed, now)
            blocked_hosts = set() if ignore_backoff else {h.host for h in self._backoffs(conn, now)}
            # The columns a poll needs (FeedState), not the whole row: its six timestamps cost more to convert
            # than the rest of a claim.
            query = (select(*_CLAIMED).where(ids_in(Feed.c.id, candidates, conn.dialect.name),
                                             Feed.c.next_due_at <= now,
                                             or_(Feed.c.lease_until.is_(None), Feed.c.lease_until < now))
                     .order_by(Feed.c.next_due_at, Feed.c.id))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=Feed)
            rows: list[Any] = []
            # With a host backed off, every due row is read: a limit could fill with that host's feeds and
            # starve the others.
            for feed in conn.execute(query if blocked_hosts else query.limit(limit)).all():
                if len(rows) >= limit:
                    break
                if blocked_hosts and server_of(feed.url) in blocked_hosts:
                    continue
                rows.append(feed)
            if not rows:
                return []
            ids = [f.id for f in rows]
            conn.execute(update(Feed).where(Feed.c.id.in_(ids))
                         .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease)))
            present = Document.c.removed_at.is_(None)
            counts = {r.feed_id: (int(r.n or 0), int(r.absent or 0), r.stored) for r in conn.execute(
                select(Document.c.feed_id, func.count().label("stored"),
                       func.sum(case((present, 1), else_=0)).label("n"),
                       func.sum(case((and_(present, Document.c.absent_polls > 0), 1), else_=0)).label("absent"))
                .where(Document.c.feed_id.in_(ids)).group_by(Document.c.feed_id))}
        return [feed_state(f, *counts.get(f.id, ())) for f in rows]

    def renew_leases(self, owner: str, feed_ids: Sequence[int], lease: float) -> int:
        """Extend this owner's leases on feeds still being polled; returns how many it still holds."""
        until = utcnow() + timedelta(seconds=lease)
        held = 0
        with self.engine.begin() as conn:
            for chunk in chunks(feed_ids):
                held += conn.execute(update(Feed).where(Feed.c.id.in_(chunk), Feed.c.lease_owner == owner)
                                     .values(lease_until=until)).rowcount
        return held

    def release_feeds(self, owner: str, feed_ids: Sequence[int] | None = None) -> None:
        with self.engine.begin() as conn:
            query = update(Feed).where(Feed.c.lease_owner == owner)
            if feed_ids is not None:
                query = query.where(Feed.c.id.in_(list(feed_ids)))
            conn.execute(query.values(lease_owner=None, lease_until=None))

    def due_feed_states(self, feed_ids: Sequence[int], now: datetime | None = None) -> list[DueFeed]:
        """The feeds among these that are due now (leased or not), with their last poll's settings and status:
        what monitor.cycle reads to size a cycle."""
        now = now or utcnow()
        with self.engine.connect() as conn:
            return [DueFeed(r.id, r.settings_hash, r.baseline_done, r.polls, r.last_status)
                    for chunk in chunks(feed_ids) for r in conn.execute(
                select(Feed.c.id, Feed.c.settings_hash, Feed.c.baseline_done, Feed.c.polls, Feed.c.last_status)
                .where(Feed.c.id.in_(chunk), Feed.c.next_due_at <= now))]

    def host_backoffs(self, now: datetime | None = None) -> list[HostBackoff]:
        """Hosts whose feeds wait (Retry-After) at `now`, soonest end first."""
        with self.engine.connect() as conn:
            return sorted(self._backoffs(conn, now or utcnow()), key=lambda h: h.until)

    @staticmethod
    def _backoffs(conn: Connection, now: datetime) -> list[HostBackoff]:
        rows = conn.execute(select(Host).where(Host.c.backoff_until > now,
                                               Host.c.backoff_until <= now + MAX_HOST_BACKOFF))
        return [HostBackoff(r.name, r.backoff_until, r.reason) for r in rows]

    def next_wakeup(self, names: Sequence[str], *, deliveries: bool = True) -> datetime | None:
        """When something is next due: a feed (not before its host's back-off ends) or (unless not
        `deliveries`) a delivery retry."""
        with self.engine.connect() as conn:
            hosts: dict[str, datetime] = {h.host: h.until for h in self._backoffs(conn, utcnow())}
            times: list[datetime] = []
            for row in conn.execute(select(Feed.c.url, Feed.c.next_due_at).where(Feed.c.name.in_(list(names)))):
                url: str = row.url
                due: datetime = row.next_due_at
                blocked = hosts.get(server_of(url))
                times.append(max(due, blocked) if blocked else due)
            retry = conn.execute(select(func.min(Delivery.c.next_attempt_at)).where(
                Delivery.c.status == "pending")).scalar() if deliveries else None
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
            query = select(*_KNOWN).where(Document.c.feed_id == feed_id)
            if absent_only:
                query = query.where(Document.c.absent_polls > 0, Document.c.removed_at.is_(None))
            docs = conn.execute(query).all()
            recent, latest = self._recent_states(conn, feed_id) if not absent_only else ({}, {})
        return [KnownDocument(id=d.id, key=d.key, guid=d.guid, link=d.link, latest_version=d.latest_version,
                              state_hash=d.state_hash, recent_states=recent.get(d.id, ()),
                              absent_polls=d.absent_polls, removed=d.removed,
                              title=d.title, text_hash=latest.get(d.id, (None, None))[0],
                              raw_hash=latest.get(d.id, (None, None))[1]) for d in docs]

    @staticmethod
    def _recent_states(conn: Connection, feed_id: int
                       ) -> tuple[dict[int, tuple[tuple[int, bytes], ...]], dict[int, tuple[bytes, bytes | None]]]:
        """Each of the feed's documents' latest version states, newest first, and its latest canonical text
        and raw item hashes, in two queries for the whole feed: the documents with one version (most of
        them) by an index lookup each, and only those with more ranked by version (a window function sorts
        every row it ranks: for a feed of 10,000 documents, ranking them all was half of reading them)."""
        out: dict[int, tuple[tuple[int, bytes], ...]] = {}
        latest: dict[int, tuple[bytes, bytes | None]] = {}
        single = conn.execute(
            select(Version.c.document_id, Version.c.state_hash, Version.c.text_hash, Version.c.raw_hash)
            .join(Document, and_(Document.c.id == Version.c.document_id, Version.c.number == 1))
            .where(Document.c.feed_id == feed_id, Document.c.latest_version == 1))
        for r in single:
            out[r.document_id] = ((1, r.state_hash),)
            latest[r.document_id] = (r.text_hash, r.raw_hash)
        ranked = (select(Version.c.document_id, Version.c.number, Version.c.state_hash, Version.c.text_hash,
                         Version.c.raw_hash,
                         func.row_number().over(partition_by=Version.c.document_id,
                                                order_by=Version.c.number.desc()).label("rank"))
                  .join(Document, Document.c.id == Version.c.document_id)
                  .where(Document.c.feed_id == feed_id, Document.c.latest_version > 1).subquery())
        rows = conn.execute(select(ranked.c.document_id, ranked.c.number, ranked.c.state_hash,
                                   ranked.c.text_hash, ranked.c.raw_hash)
                            .where(ranked.c.rank <= REVERT_DEPTH)
                            .order_by(ranked.c.document_id, ranked.c.number.desc()))
        several: dict[int, list[tuple[int, bytes]]] = {}
        for r in rows:
            several.setdefault(r.document_id, []).append((r.number, r.state_hash))
            latest.setdefault(r.document_id, (r.text_hash, r.raw_hash))
        out.update((k, tuple(v)) for k, v in several.items())
        return out, latest

    def latest_versions(self, doc_ids: Sequence[int]) -> dict[int, VersionInfo]:
        """The latest stored version (with text) of each document."""
        out: dict[int, VersionInfo] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(doc_ids):
                rows = conn.execute(select(Version).join(Document, and_(
                    Document.c.id == Version.c.document_id, Document.c.latest_version == Version.c.number))
                    .where(Version.c.document_id.in_(chunk))).all()
                for v in rows:
                    out[v.document_id] = version_info(v, text=blobs.get_text(conn, v.text_hash))
        return out

    # ------------------------------------------------------------------------------------ pages

    def page_states(self, feed_id: int) -> dict[str, PageState]:
        """The stored state of every page of a source, by URL. A page whose canonical text is no longer
        stored (pruned) comes back without validators, so it is fetched in full again."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Page, Blob.c.hash.label("text_stored"))
                                .join(Blob, Blob.c.hash == Page.c.text_hash, isouter=True)
                                .where(Page.c.feed_id == feed_id)).all()
        out = {}
        for r in rows:
            if r.text_hash is not None and r.text_stored is None:
                out[r.url] = PageState(r.url, title=r.title, error=r.error)
            else:
                out[r.url] = PageState(r.url, Validators(r.etag, r.last_modified), r.lastmod, r.body_hash,
                                       r.text_hash, r.title, r.error)
        return out

    def texts(self, hashes: Iterable[bytes]) -> dict[bytes, str]:
        """Stored canonical texts by hash (the ones that exist)."""
        wanted = list(set(hashes))
        with self.engine.connect() as conn:
            present = {h for chunk in chunks(wanted) for h in blobs.stored(conn, chunk)}
            return {h: blobs.get_text(conn, h) for h in present}

    # ------------------------------------------------------------------------------------ the poll

    def record_poll(self, rec: PollRecord) -> list[RecordedChange]:
        """Write one poll in one transaction; raises LeaseLost (and writes nothing) without the lease."""
        with self.engine.begin() as conn:
            self._take_lease(conn, rec)
            [changes] = PollWriter(conn, [rec]).write()
        return changes

    def record_polls(self, records: Sequence[PollRecord]) -> list[list[RecordedChange] | None]:
        """Several polls in one transaction, one commit for all (a cold cycle records hundreds of polls a
        second, and a commit costs more than a poll's statements). Each is written under its own lease;
        None for one whose lease was lost (nothing of it is written: the lease update comes first). A
        StorageDataError rolls the whole batch back: the caller then writes the polls one by one."""
        held: list[PollRecord] = []
        with self.engine.begin() as conn:
            for rec in records:
                with contextlib.suppress(LeaseLost):
                    self._take_lease(conn, rec)
                    held.append(rec)
            written = dict(zip(map(id, held), PollWriter(conn, held).write(), strict=True))
        return [written.get(id(rec)) for rec in records]

    def record_quiet_polls(self, records: Sequence[PollRecord]) -> None:
        """Polls that changed nothing but their feed's row (304s, identical bodies), in one transaction.

        Each row is still updated only under its lease; one whose lease was lost is simply not updated
        (another process polled that feed)."""
        if not records:
            return
        params = [{"b_id": r.feed_id, "b_owner": r.owner, "b_due": r.next_due_at, "b_now": r.now,
                   "b_status": r.status.value, "b_alerted": False, "b_changed": False, "b_etag": r.validators.etag,
                   "b_lm": r.validators.last_modified, "b_body": r.body_hash, "b_settings": r.settings_hash}
                  for r in records]
        with self.engine.begin() as conn:
            conn.execute(_LEASED_SUCCESS, params)

    def _take_lease(self, conn: Connection, rec: PollRecord) -> None:
        """Update the feed row, only while this process holds its lease (the poll's first statement)."""
        changed = any(u.decision.kind is not None for u in rec.updates)
        params = {"b_id": rec.feed_id, "b_owner": rec.owner, "b_due": rec.next_due_at, "b_now": rec.now,
                  "b_status": rec.status.value, "b_alerted": rec.error_alerted, "b_changed": changed}
        if rec.status is PollStatus.ERROR:
            result = conn.execute(_LEASED_FAILURE, {**params, "b_error": rec.error})
        else:
            result = conn.execute(_LEASED_SUCCESS, {
                **params, "b_etag": rec.validators.etag, "b_lm": rec.validators.last_modified,
                "b_body": rec.body_hash, "b_settings": rec.settings_hash})
        if result.rowcount != 1:
            raise LeaseLost(rec.feed)

    # ------------------------------------------------------------------------------------ reading

    def feed_statuses(self, names: Sequence[str] | None = None) -> list[FeedStatusInfo]:
        with self.engine.connect() as conn:
            counts: dict[int, int] = {r.feed_id: r.n for r in conn.execute(
                select(Document.c.feed_id, func.count().label("n")).where(Document.c.removed_at.is_(None))
                .group_by(Document.c.feed_id))}
            query = select(Feed).order_by(Feed.c.name)
            if names is not None:
                query = query.where(Feed.c.name.in_(list(names)))
            now = utcnow()
            pages: dict[int, list[str]] = {}
            for r in conn.execute(select(Page.c.feed_id, Page.c.error).where(Page.c.error.is_not(None))
                                  .order_by(Page.c.url)):
                pages.setdefault(r.feed_id, []).append(r.error)
            return [FeedStatusInfo(
                name=f.name, url=f.url, last_polled_at=f.last_polled_at, last_status=f.last_status,
                last_error=f.last_error, documents=counts.get(f.id, 0), last_change_at=f.last_change_at,
                next_due_at=f.next_due_at, consecutive_errors=f.consecutive_errors, polls=f.polls,
                leased_by=f.lease_owner if f.lease_until and f.lease_until > now else None,
                page_errors=tuple(pages.get(f.id, ())))
                for f in conn.execute(query).all()]

    def feed_health(self, names: Sequence[str]) -> list[FeedHealth]:
        """Consecutive errors and the last success of the named feeds, for the metrics."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Feed.c.name, Feed.c.consecutive_errors, Feed.c.last_ok_at,
                                       Feed.c.created_at)).all()
        wanted = set(names)
        return [FeedHealth(r.name, r.consecutive_errors, r.last_ok_at or r.created_at) for r in rows
                if r.name in wanted]

    def documents(self, feed: str | None = None) -> list[DocumentInfo]:
        with self.engine.connect() as conn:
            query = select(Document, Feed.c.name.label("feed_name")).join(Feed).order_by(Feed.c.name, Document.c.id)
            if feed is not None:
                query = query.where(Feed.c.name == feed)
            return [document_info(r) for r in conn.execute(query).all()]

    def document_pages(self, feed: str | None = None, *, size: int = 500) -> Iterator[list[DocumentInfo]]:
        """:meth:`documents`, `size` at a time (keyset on feed name and id): for readers of every
        document, whose memory must not grow with their number."""
        query = (select(Document, Feed.c.name.label("feed_name")).join(Feed)
                 .order_by(Feed.c.name, Document.c.id).limit(size))
        if feed is not None:
            query = query.where(Feed.c.name == feed)
        after: DocumentInfo | None = None
        while True:
            with self.engine.connect() as conn:
                page = [document_info(r) for r in conn.execute(query if after is None else query.where(or_(
                    Feed.c.name > after.feed, and_(Feed.c.name == after.feed, Document.c.id > after.id))))]
            if page:
                yield page
            if len(page) < size:
                return
            after = page[-1]

    def find_document(self, ref: str) -> DocumentInfo:
        """A document by numeric id (``1``, or ``#1`` as older versions printed it), guid, link or identity
        key; UsageError when none or ambiguous."""
        with self.engine.connect() as conn:
            query = select(Document, Feed.c.name.label("feed_name")).join(Feed)
            number = ref[1:] if ref.startswith("#") else ref
            if number.isascii() and number.isdigit() and int(number) <= MAX_ID:     # a bigger one is no id
                rows = conn.execute(query.where(Document.c.id == int(number))).all()
                if rows:
                    return document_info(rows[0])
            rows = conn.execute(query.where(or_(Document.c.guid == ref, Document.c.link == ref,
                                                Document.c.key == ref))).all()
        if not rows:
            raise UsageError(f"no document matches '{ref}' (use a document id, guid or URL; see "
                             "'feedwatch history')")
        if len(rows) > 1:
            ids = ", ".join(str(r.id) for r in rows)
            raise UsageError(f"'{ref}' matches several documents (ids {ids}); use the numeric id")
        return document_info(rows[0])

    def version_numbers(self, doc_id: int) -> list[int]:
        """The numbers of a document's stored versions, ascending (retention may leave gaps)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(Version.c.number).where(Version.c.document_id == doc_id)
                                     .order_by(Version.c.number)).scalars())

    def version_numbers_of(self, doc_ids: Sequence[int]) -> dict[int, list[int]]:
        """:meth:`version_numbers` of several documents at once (a query per chunk of them)."""
        out: dict[int, list[int]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(doc_ids):
                for r in conn.execute(select(Version.c.document_id, Version.c.number)
                                      .where(Version.c.document_id.in_(chunk)).order_by(Version.c.number)):
                    out.setdefault(r.document_id, []).append(r.number)
        return out

    def version(self, doc_id: int, number: int) -> VersionInfo:
        with self.engine.connect() as conn:
            v = conn.execute(select(Version).where(Version.c.document_id == doc_id,
                                                              Version.c.number == number)).one_or_none()
            if v is None:
                raise UsageError(self.no_version(doc_id, number))
            return version_info(v, text=blobs.get_text(conn, v.text_hash))

    def no_version(self, doc_id: int, number: int) -> str:
        """Why `number` cannot be shown, with the versions that can."""
        stored = self.version_numbers(doc_id)
        if stored and number < stored[-1]:
            return (f"version {number} of document {doc_id} is no longer stored (removed by its retention "
                    f"policy); stored versions: {ranges(stored)}")
        return f"document {doc_id} has no version {number} (its versions: {ranges(stored) or 'none'})"

    def changes(self, doc_id: int) -> list[RecordedChange]:
        """Change records of a document (including removals), oldest first."""
        return self.changes_of([doc_id]).get(doc_id, [])

    def changes_of(self, doc_ids: Sequence[int]) -> dict[int, list[RecordedChange]]:
        """:meth:`changes` of several documents at once (a query per chunk of them)."""
        out: dict[int, list[RecordedChange]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(doc_ids):
                rows = conn.execute(select(Change, Document.c.guid, Document.c.link, Feed.c.name.label("feed_name"))
                                    .join(Document, Change.c.document_id == Document.c.id)
                                    .join(Feed, Change.c.feed_id == Feed.c.id)
                                    .where(Change.c.document_id.in_(chunk)).order_by(Change.c.id))
                for r in rows:
                    out.setdefault(r.document_id, []).append(recorded_change(r))
        return out

# The feed-row updates of every poll, built once (statement construction cost more than running them).
_LEASED = (update(Feed).where(Feed.c.id == bindparam("b_id"), Feed.c.lease_owner == bindparam("b_owner"))
           .values(lease_owner=None, lease_until=None, next_due_at=bindparam("b_due"),
                   last_polled_at=bindparam("b_now"), last_status=bindparam("b_status"), polls=Feed.c.polls + 1,
                   error_alerted=bindparam("b_alerted"),
                   last_change_at=case((bindparam("b_changed"), bindparam("b_now")), else_=Feed.c.last_change_at)))
_LEASED_SUCCESS = _LEASED.values(
    last_error=None, last_ok_at=bindparam("b_now"), consecutive_errors=0, baseline_done=True,
    etag=bindparam("b_etag"), last_modified=bindparam("b_lm"), body_hash=bindparam("b_body"),
    settings_hash=bindparam("b_settings"))
_LEASED_FAILURE = _LEASED.values(last_error=bindparam("b_error"), consecutive_errors=Feed.c.consecutive_errors + 1)


def _upsert(conn: Connection, table: Any, values: dict[str, Any], keys: list[str],
            update_values: dict[str, Any]) -> Any:
    stmt = upsert_insert(conn, table).values(**values)
    return stmt.on_conflict_do_update(index_elements=keys, set_=update_values)


def ranges(numbers: Sequence[int]) -> str:
    """1, 2, 3, 5, 7, 8 -> "1-3, 5, 7-8"."""
    parts: list[list[int]] = []
    for n in numbers:
        if parts and n == parts[-1][-1] + 1:
            parts[-1].append(n)
        else:
            parts.append([n])
    return ", ".join(f"{p[0]}-{p[-1]}" if len(p) > 1 else str(p[0]) for p in parts)
