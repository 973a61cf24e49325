"""The database schema: SQLAlchemy 2.0 typed tables, the same on SQLite and PostgreSQL.

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
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Blob(Base):
    __tablename__ = "blobs"
    __table_args__ = (Index("ix_blobs_base", "base", postgresql_where=text("base IS NOT NULL")).ddl_if("postgresql"),)

    hash: Mapped[bytes] = mapped_column(Hash, primary_key=True)
    codec: Mapped[str] = mapped_column(String(16))              # "zstd" | "zstd-dict" | "none"
    base: Mapped[bytes | None] = mapped_column(Hash, ForeignKey("blobs.hash"), nullable=True)
    size: Mapped[int] = mapped_column(Integer)                 # uncompressed length
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # scheduling and leases
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # what the next poll compares against
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_modified: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_hash: Mapped[bytes | None] = mapped_column(Hash, nullable=True)
    settings_hash: Mapped[bytes | None] = mapped_column(Hash, nullable=True)
    baseline_done: Mapped[bool] = mapped_column(Boolean, default=False)
    # the latest poll, in place (unchanged polls add no rows)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)
    error_alerted: Mapped[bool] = mapped_column(Boolean, default=False)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("feed_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id"), index=True)
    key: Mapped[str] = mapped_column(Text)                      # identity within the feed (monitor.identity)
    guid: Mapped[str | None] = mapped_column(Text, nullable=True, index=True)
    link: Mapped[str | None] = mapped_column(Text, nullable=True, index=True)
    title: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    latest_version: Mapped[int] = mapped_column(Integer)
    state_hash: Mapped[bytes] = mapped_column(Hash)
    absent_polls: Mapped[int] = mapped_column(Integer, default=0)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("document_id", "number"),
        Index("ix_versions_text_hash", "text_hash").ddl_if("postgresql"),
        Index("ix_versions_raw_hash", "raw_hash").ddl_if("postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    title: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text, nullable=True)
    text_hash: Mapped[bytes] = mapped_column(ForeignKey("blobs.hash"))
    raw_hash: Mapped[bytes | None] = mapped_column(ForeignKey("blobs.hash"), nullable=True)
    state_hash: Mapped[bytes] = mapped_column(Hash)


class Change(Base):
    __tablename__ = "changes"
    __table_args__ = (
        Index("ix_changes_document_id_version", "document_id", "version"),
        Index("ix_changes_diff_hash", "diff_hash", postgresql_where=text("diff_hash IS NOT NULL")).ddl_if("postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    kind: Mapped[str] = mapped_column(String(16))               # added | changed | removed
    version: Mapped[int] = mapped_column(Integer)               # the document's version after the change
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revert_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    title: Mapped[str] = mapped_column(Text)                    # the document's title at that time
    summary: Mapped[str] = mapped_column(Text)
    diff_hash: Mapped[bytes | None] = mapped_column(ForeignKey("blobs.hash"), nullable=True)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)   # first poll: recorded, not notified


class Delivery(Base):
    """The outbox: one row per (change, target), or per alert; sent by monitor.notify."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("change_id", "target"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id"), nullable=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id"), nullable=True)
    target: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))               # change | error | recovery | dead
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)   # JSON, for alerts
    status: Mapped[str] = mapped_column(String(16))             # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    done_urls: Mapped[str | None] = mapped_column(Text, nullable=True)   # JSON list of URL ids sent OK
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    url: Mapped[str] = mapped_column(Text)                      # privacy-masked, never the secret URL
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class Host(Base):
    """Per-host back-off from Retry-After / 429 / 503: no feed on the host is polled before `until`."""

    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    backoff_until: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
