"""Retention: delete the versions a feed's policy no longer keeps, then every blob nobody needs any more.

What is deleted, per feed with a policy (``retention:`` in the config; the default keeps everything):

- versions beyond the ``versions`` newest of their document, and versions older than ``age``;
- but never a document's latest version, nor a version a **pending delivery** is about (its change's
  version and the version before it: the message renders from them, and ``diff`` can still show them);
- with ``keep_changes: false`` also the change records of deleted versions, with their sent or dead
  deliveries. By default change records (summary and stored diff) stay, so ``history`` is complete.

Revert detection compares a new state with the document's newest stored versions (up to five). A policy
that keeps fewer than five versions narrows that window: a return to a pruned state is then reported as
an ordinary change (its diff against the latest version is still right), not as a revert.

Blobs are then swept: a blob of a deleted row that no version or change refers to any more is deleted,
unless it is the keyframe (dictionary) of a blob that a kept version uses. A stored diff whose keyframe
would survive only for it is recompressed on its own, so the keyframe can go.

Everything happens in one transaction; a dry run is the same transaction rolled back, so it reports
exactly what a real run would do. SQLite has no indexes on the blob reference columns (storage.schema),
so there references are checked here in one scan each and the deletes run with foreign-key enforcement
off for this transaction only; on PostgreSQL the indexes make the database's own checks cheap, and an
advisory lock keeps two pruning workers from interleaving. Afterwards SQLite gives the freed pages back
to the filesystem with incremental vacuum (the file is created with auto_vacuum=INCREMENTAL).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select, text, tuple_
from sqlalchemy.engine import Connection

from monitor.models import FeedPruneStats, PruneReport, Retention
from storage import blobs
from storage.db import is_sqlite, sqlite_path
from storage.rows import chunks
from storage.schema import Blob, Change, Delivery, DeliveryAttempt, Document, Feed, Version

_PG_PRUNE_LOCK = 0x70727565  # "prue": one pruning transaction at a time across workers


@dataclass
class _Plan:
    """Rows to delete and the blobs they referred to."""

    versions: list[int] = field(default_factory=list)
    changes: list[int] = field(default_factory=list)
    candidates: set[bytes] = field(default_factory=set)


def prune(engine: Engine, policies: Mapping[str, Retention], *, now: datetime, dry_run: bool = False,
          on_feed: Callable[[str], None] | None = None) -> PruneReport:
    """Apply `policies` (feed name -> Retention) now; with `dry_run` report without changing anything.
    `on_feed` is called with each feed's name once its part is planned (progress)."""
    before = file_size(engine)
    with _unchecked_transaction(engine) as (conn, commit):
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_PRUNE_LOCK})
        pending = _pending_versions(conn)
        plan = _Plan()
        stats = []
        for name, policy in sorted(policies.items()):
            stats.append(_plan_feed(conn, name, policy, now, pending, plan))
            if on_feed is not None:
                on_feed(name)
        _delete_rows(conn, plan)
        dead, reencode = _sweep(conn, plan.candidates)
        freed = _blob_bytes(conn, dead)
        blobs.reencode_plain(conn, reencode)
        _delete_blobs(conn, dead)
        if not dry_run:
            commit()
    if not dry_run:
        reclaim(engine)
    return PruneReport(feeds=tuple(s for s in stats if s is not None), blobs=len(dead), blob_bytes=freed,
                       reencoded=len(reencode), dry_run=dry_run, file_before=before,
                       file_after=file_size(engine) if before is not None else None)


# ------------------------------------------------------------------------------------------ what goes


def _pending_versions(conn: Connection) -> set[tuple[int, int]]:
    """(document, version) pairs that a pending delivery is about: its change's version and the one before."""
    rows = conn.execute(select(Change.c.document_id, Change.c.version, Change.c.from_version)
                        .join(Delivery, Delivery.c.change_id == Change.c.id).where(Delivery.c.status == "pending"))
    out: set[tuple[int, int]] = set()
    for r in rows:
        out.add((r.document_id, r.version))
        if r.from_version is not None:
            out.add((r.document_id, r.from_version))
    return out


def _plan_feed(conn: Connection, name: str, policy: Retention, now: datetime, pending: set[tuple[int, int]],
               plan: _Plan) -> FeedPruneStats | None:
    feed_id = conn.execute(select(Feed.c.id).where(Feed.c.name == name)).scalar()
    if feed_id is None or (policy.versions is None and policy.age is None):
        return None
    doomed = _beyond_policy(conn, feed_id, policy, now)
    kept = [r for r in doomed if (r.document_id, r.number) in pending]
    doomed = [r for r in doomed if (r.document_id, r.number) not in pending]
    plan.versions.extend(r.id for r in doomed)
    plan.candidates.update(h for r in doomed for h in (r.text_hash, r.raw_hash) if h is not None)
    changes = 0
    if not policy.keep_changes:
        for chunk in chunks([(r.document_id, r.number) for r in doomed]):
            rows = conn.execute(select(Change.c.id, Change.c.diff_hash).where(
                tuple_(Change.c.document_id, Change.c.version).in_(chunk))).all()
            plan.changes.extend(r.id for r in rows)
            plan.candidates.update(r.diff_hash for r in rows if r.diff_hash is not None)
            changes += len(rows)
    return FeedPruneStats(feed=name, versions=len(doomed), changes=changes, kept_for_deliveries=len(kept))


def _beyond_policy(conn: Connection, feed_id: int, policy: Retention, now: datetime) -> list[Any]:
    """The feed's versions that are neither among the `versions` newest, nor younger than `age`, nor latest."""
    ranked = (select(Version.c.id, Version.c.document_id, Version.c.number, Version.c.created_at, Version.c.text_hash,
                     Version.c.raw_hash, Document.c.latest_version,
                     func.row_number().over(partition_by=Version.c.document_id,
                                            order_by=Version.c.number.desc()).label("rank"))
              .join(Document, Document.c.id == Version.c.document_id).where(Document.c.feed_id == feed_id).subquery())
    beyond = []
    if policy.versions is not None:
        beyond.append(ranked.c.rank > policy.versions)
    if policy.age is not None:
        beyond.append(ranked.c.created_at < now - timedelta(seconds=policy.age))
    return list(conn.execute(select(ranked).where(ranked.c.number != ranked.c.latest_version, or_(*beyond))
                             .order_by(ranked.c.document_id, ranked.c.number)).all())


def _delete_rows(conn: Connection, plan: _Plan) -> None:
    for chunk in chunks(plan.changes):
        deliveries = select(Delivery.c.id).where(Delivery.c.change_id.in_(chunk)).scalar_subquery()
        conn.execute(delete(DeliveryAttempt).where(DeliveryAttempt.c.delivery_id.in_(deliveries)))
        conn.execute(delete(Delivery).where(Delivery.c.change_id.in_(chunk)))
        conn.execute(delete(Change).where(Change.c.id.in_(chunk)))
    for chunk in chunks(plan.versions):
        conn.execute(delete(Version).where(Version.c.id.in_(chunk)))


# ------------------------------------------------------------------------------------------ blob sweep


def _sweep(conn: Connection, candidates: set[bytes]) -> tuple[set[bytes], set[bytes]]:
    """(blobs to delete, stored diffs to recompress on their own) after the rows are gone."""
    dead: set[bytes] = set()
    reencode: set[bytes] = set()
    todo = set(candidates)
    while todo:
        unreferenced = todo - _referenced(conn, todo)
        dependents = [(h, b) for h, b in _dependents(conn, unreferenced) if h not in unreferenced and h not in dead]
        used_by_versions = _referenced(conn, {h for h, _ in dependents}, changes=False)
        keyframes = {b for h, b in dependents if h in used_by_versions}
        reencode |= {h for h, b in dependents if b not in keyframes}
        newly = unreferenced - keyframes
        dead |= newly
        todo = _bases(conn, newly) - dead
    return dead, reencode


def _referenced(conn: Connection, hashes: set[bytes], *, changes: bool = True) -> set[bytes]:
    """Those of `hashes` that a version (text or raw item) or, with `changes`, a change's diff uses."""
    if not hashes:
        return set()
    columns = [Version.c.text_hash, Version.c.raw_hash] + ([Change.c.diff_hash] if changes else [])
    found: set[bytes] = set()
    for column in columns:
        if is_sqlite(conn.engine):   # no index: one scan beats a scan per chunk
            everything: list[bytes] = list(conn.execute(select(column).where(column.is_not(None))).scalars())
            found.update(h for h in everything if h in hashes)
        else:
            for chunk in chunks(sorted(hashes)):
                hashes_found: list[bytes | None] = list(
                    conn.execute(select(column).where(column.in_(chunk)).distinct()).scalars())
                found.update(h for h in hashes_found if h is not None)
    return found


def _dependents(conn: Connection, keyframes: set[bytes]) -> list[tuple[bytes, bytes]]:
    """(blob, keyframe) for every blob compressed against one of `keyframes`."""
    if not keyframes:
        return []
    if is_sqlite(conn.engine):
        rows = conn.execute(select(Blob.c.hash, Blob.c.base).where(Blob.c.base.is_not(None)))
        return [(r.hash, r.base) for r in rows if r.base in keyframes]
    out: list[tuple[bytes, bytes]] = []
    for chunk in chunks(sorted(keyframes)):
        out.extend((r.hash, r.base) for r in conn.execute(
            select(Blob.c.hash, Blob.c.base).where(Blob.c.base.in_(chunk))))
    return out


def _bases(conn: Connection, hashes: set[bytes]) -> set[bytes]:
    out: set[bytes] = set()
    for chunk in chunks(sorted(hashes)):
        bases: list[bytes | None] = list(conn.execute(select(Blob.c.base).where(Blob.c.hash.in_(chunk))).scalars())
        out.update(b for b in bases if b is not None)
    return out


def _blob_bytes(conn: Connection, hashes: set[bytes]) -> int:
    total = 0
    for chunk in chunks(sorted(hashes)):
        total += conn.execute(select(func.coalesce(func.sum(func.length(Blob.c.data)), 0))
                              .where(Blob.c.hash.in_(chunk))).scalar_one()
    return int(total)


def _delete_blobs(conn: Connection, hashes: set[bytes]) -> None:
    """Dictionary-compressed blobs first, then keyframes, so no delete leaves a dangling base."""
    for dict_only in (True, False):
        for chunk in chunks(sorted(hashes)):
            query = delete(Blob).where(Blob.c.hash.in_(chunk))
            conn.execute(query.where(Blob.c.base.is_not(None)) if dict_only else query)


# ------------------------------------------------------------------------------------------ SQLite space


def file_size(engine: Engine) -> int | None:
    """The SQLite file's size with the WAL folded in (None for PostgreSQL or a missing file)."""
    path = sqlite_path(engine)
    if path is None or not path.exists():
        return None
    with engine.connect() as conn:
        conn.connection.dbapi_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    return path.stat().st_size


def reclaim(engine: Engine) -> int:
    """Give SQLite's free pages back to the filesystem (incremental vacuum); returns how many pages.

    Each step of ``PRAGMA incremental_vacuum`` frees one page and Python's sqlite3 runs a statement
    without result columns for one step only, so it runs once per free page, in one transaction.
    A file created without auto_vacuum=INCREMENTAL keeps its free pages for new data.
    """
    if not is_sqlite(engine):
        return 0
    with engine.begin() as conn:
        if conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() != 2:
            return 0
        free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
        for _ in range(free):
            conn.exec_driver_sql("PRAGMA incremental_vacuum")
    return free


@contextlib.contextmanager
def _unchecked_transaction(engine: Engine) -> Iterator[tuple[Connection, Any]]:
    """A write transaction, committed only when the caller calls the yielded commit(); on SQLite
    without foreign-key enforcement (this module checks blob references itself)."""
    with engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection if is_sqlite(engine) else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")   # outside any transaction, as SQLite requires
        try:
            with conn.begin() as transaction:
                yield conn, transaction.commit
                if transaction.is_active:
                    transaction.rollback()
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")
