"""The database schema: SQLAlchemy Core tables, the same on SQLite and PostgreSQL.

    feeds ──< documents ──< versions >── blobs (content-addressed, compressed; text and raw item)
      │           └──────< changes ──── blobs (the diff, as JSON)
      │                       └──────< deliveries ──< delivery_attempts      (the outbox)
      └── scheduling and leases: next_due_at, lease_owner, lease_until
    hosts: per-host back-off (Retry-After, 429/503)

Design decisions, made once for every feature that stands on them:

- **Blobs** are keyed by the sha256 of their uncompressed bytes, so identical text is stored once across
  versions, documents and feeds; ``codec`` says how ``data`` is compressed and ``base`` names the blob
  used as a compression dictionary (``zstd-dict``), so storage can be compacted later without a migration.
- **Versions** keep their number forever; change records refer to version *numbers*, so pruning old
  versions (retention) keeps the change records and their stored diffs intact.
- **Blob references** (versions.text_hash/raw_hash, changes.diff_hash, blobs.base) are indexed on
  PostgreSQL only. Deleting a blob makes PostgreSQL check each referencing column, a table scan without
  an index. On SQLite those four indexes would add about 14% to every recorded version (measured with
  bench/storage_bench.py), and the one writer that deletes blobs, ``feedwatch prune``, checks the
  references itself in one pass and then deletes with foreign-key enforcement off (storage.retention).
- **Leases** (``lease_owner``/``lease_until``) on feeds and deliveries let several processes share one
  database: work is claimed, done outside any transaction, and committed only while the lease holds.
- **The outbox** (``deliveries``) gets one row per (change, target) in the same transaction as the change.
- Unchanged polls update the feed row in place; they add no rows.

Core tables, not ORM classes: feedwatch only runs statements (storage.store returns plain values), and
importing SQLAlchemy's ORM would add ~70 ms to every command's start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

MAX_ID = 2**63 - 1       # the largest integer (id, version number, count) every supported database stores
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; naive UTC in the database (identical on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):   # SQLite returns text for expressions such as min()
            value = datetime.fromisoformat(value)
        result: datetime = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return result


Hash = LargeBinary(32)


metadata = MetaData(naming_convention=NAMING)

# Indexes that migration 0002 creates on PostgreSQL only (see "Blob references" above). They live in the
# migration, not in the table definitions: declaring partial indexes here would make every command import
# SQLAlchemy's PostgreSQL dialects (25 ms) just to validate their options.
POSTGRESQL_ONLY_INDEXES = frozenset({"ix_blobs_base", "ix_changes_diff_hash", "ix_versions_text_hash",
                                     "ix_versions_raw_hash"})


def _col(name: str, *args: Any, null: bool = False, **kw: Any) -> Column[Any]:
    """A column, NOT NULL unless `null`."""
    return Column(name, *args, nullable=null, **kw)


Blob = Table(
    "blobs", metadata,
    _col("hash", Hash, primary_key=True),
    _col("codec", String(16)),                                   # "zstd" | "zstd-dict" | "none"
    _col("base", Hash, ForeignKey("blobs.hash"), null=True),
    _col("size", Integer),                                       # uncompressed length
    _col("data", LargeBinary),
)

Feed = Table(
    "feeds", metadata,
    _col("id", Integer, primary_key=True),
    _col("name", String(100), unique=True),
    _col("url", Text),
    _col("created_at", UTCDateTime),
    # scheduling and leases
    _col("next_due_at", UTCDateTime, index=True),
    _col("lease_owner", String(200), null=True),
    _col("lease_until", UTCDateTime, null=True),
    # what the next poll compares against
    _col("etag", Text, null=True),
    _col("last_modified", Text, null=True),
    _col("body_hash", Hash, null=True),
    _col("settings_hash", Hash, null=True),
    _col("baseline_done", Boolean, default=False),
    # the latest poll, in place (unchanged polls add no rows)
    _col("polls", Integer, default=0),
    _col("last_polled_at", UTCDateTime, null=True),
    _col("last_status", String(16), null=True),
    _col("last_error", Text, null=True),
    _col("last_ok_at", UTCDateTime, null=True),
    _col("last_change_at", UTCDateTime, null=True),
    _col("consecutive_errors", Integer, default=0),
    _col("error_alerted", Boolean, default=False),
)

Document = Table(
    "documents", metadata,
    _col("id", Integer, primary_key=True),
    _col("feed_id", ForeignKey("feeds.id"), index=True),
    _col("key", Text),                                           # identity within the feed (monitor.identity)
    _col("guid", Text, null=True, index=True),
    _col("link", Text, null=True, index=True),
    _col("title", Text),
    _col("first_seen_at", UTCDateTime),
    _col("latest_version", Integer),
    _col("state_hash", Hash),
    _col("absent_polls", Integer, default=0),
    _col("removed_at", UTCDateTime, null=True),
    UniqueConstraint("feed_id", "key"),
)

Version = Table(
    "versions", metadata,
    _col("id", Integer, primary_key=True),
    _col("document_id", ForeignKey("documents.id")),
    _col("number", Integer),
    _col("created_at", UTCDateTime),
    _col("title", Text),
    _col("link", Text, null=True),
    _col("text_hash", ForeignKey("blobs.hash")),
    _col("raw_hash", ForeignKey("blobs.hash"), null=True),
    _col("state_hash", Hash),
    UniqueConstraint("document_id", "number"),
)

Change = Table(
    "changes", metadata,
    _col("id", Integer, primary_key=True),
    _col("feed_id", ForeignKey("feeds.id")),
    _col("document_id", ForeignKey("documents.id")),
    _col("kind", String(16)),                                    # added | changed | removed
    _col("version", Integer),                                    # the document's version after the change
    _col("from_version", Integer, null=True),
    _col("revert_of", Integer, null=True),
    _col("detected_at", UTCDateTime, index=True),
    _col("title", Text),                                         # the document's title at that time
    _col("summary", Text),
    _col("diff_hash", ForeignKey("blobs.hash"), null=True),
    _col("baseline", Boolean, default=False),                    # first poll: recorded, not notified
    Index("ix_changes_document_id_version", "document_id", "version"),
)

# The outbox: one row per (change, target), or per alert; sent by monitor.notify.
Delivery = Table(
    "deliveries", metadata,
    _col("id", Integer, primary_key=True),
    _col("change_id", ForeignKey("changes.id"), null=True),
    _col("feed_id", ForeignKey("feeds.id"), null=True),
    _col("target", String(100)),
    _col("kind", String(16)),                                    # change | error | recovery | dead
    _col("payload", Text, null=True),                            # JSON, for alerts
    _col("status", String(16)),                                  # pending | sent | dead
    _col("attempts", Integer, default=0),
    _col("created_at", UTCDateTime),
    _col("next_attempt_at", UTCDateTime),
    _col("sent_at", UTCDateTime, null=True),
    _col("last_error", Text, null=True),
    _col("done_urls", Text, null=True),                          # JSON list of URL ids sent OK
    _col("lease_owner", String(200), null=True),
    _col("lease_until", UTCDateTime, null=True),
    _col("message", String(40), null=True),                      # delivery id of a digest it went out in
    UniqueConstraint("change_id", "target"),
    Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_deliveries_message", "message"),          # a digest's rows, claimed together
)

DeliveryAttempt = Table(
    "delivery_attempts", metadata,
    _col("id", Integer, primary_key=True),
    _col("delivery_id", ForeignKey("deliveries.id"), index=True),
    _col("at", UTCDateTime),
    _col("url", Text),                                           # privacy-masked, never the secret URL
    _col("ok", Boolean),
    _col("detail", Text, null=True),
)

# Per-host back-off from Retry-After / 429 / 503: no feed on the host is polled before `backoff_until`.
Host = Table(
    "hosts", metadata,
    _col("name", String(255), primary_key=True),
    _col("backoff_until", UTCDateTime),
    _col("reason", Text, null=True),
)

# Web pages of a source (followed item links, a single page, sitemap URLs): what the next conditional
# request sends, and what the page gave last time, so an unchanged page costs a 304 or nothing at all.
Page = Table(
    "pages", metadata,
    _col("feed_id", ForeignKey("feeds.id"), primary_key=True),
    _col("url", Text, primary_key=True),
    _col("etag", Text, null=True),
    _col("last_modified", Text, null=True),
    _col("lastmod", Text, null=True),                            # the sitemap's <lastmod> when fetched
    _col("body_hash", Hash, null=True),
    _col("text_hash", Hash, null=True),                          # canonical text (a blob) it gave
    _col("title", Text, default=""),
    _col("error", Text, null=True),                              # the last fetch's error; None when fine
    _col("checked_at", UTCDateTime),
)
