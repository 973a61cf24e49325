"""Copy a whole feedwatch database to another one (`feedwatch db copy --to URL`).

For outgrowing SQLite: every table is copied row by row, ids preserved, in foreign-key order, in one
transaction on the target (all or nothing), streaming from the source in batches so that a large history
never sits in memory. Leases are not copied (they belong to processes of the old installation). The target
must be empty; its schema is created or upgraded first, and the source must be at the same schema version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select, text

from monitor.errors import StorageError, UsageError
from storage.db import HEAD, ensure_schema, open_engine, redact, schema_revision
from storage.schema import Blob, Change, Delivery, DeliveryAttempt, Document, Feed, Host, Page, Version

BATCH = 1000
# Foreign-key order: a row's references are copied before it.
TABLES: tuple[Table, ...] = (Feed, Page, Document, Version, Change, Delivery, DeliveryAttempt, Host)
LEASE_COLUMNS = ("lease_owner", "lease_until")


def copy_database(source: Engine, target_url: str, *,
                  progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy `source` into the empty database at `target_url`; returns rows copied per table."""
    with source.connect() as conn:
        revision = schema_revision(conn)
    if revision != HEAD:
        raise StorageError(f"storage: the source database is at schema {revision or 'none'}, not {HEAD}: "
                           "run any feedwatch command on it first to upgrade it")
    target = open_engine(target_url)
    try:
        ensure_schema(target)
        with target.connect() as conn:
            if conn.execute(select(func.count()).select_from(Feed)).scalar_one():
                raise UsageError(f"db copy: the target {redact(target_url)} is not empty; copy into a new database")
        counts: dict[str, int] = {}
        with source.connect() as src, target.begin() as dst:
            counts["blobs"] = _copy_blobs(src, dst, progress)
            for table in TABLES:
                counts[table.name] = _copy_table(src, dst, table, progress)
            if dst.dialect.name == "postgresql":
                _reset_sequences(dst)
        return counts
    finally:
        target.dispose()


def _batches(src: Any, query: Any) -> Iterator[list[dict[str, Any]]]:
    result = src.execution_options(stream_results=True, yield_per=BATCH).execute(query)
    for partition in result.mappings().partitions(BATCH):
        yield [dict(row) for row in partition]


def _copy_table(src: Any, dst: Any, table: Table, progress: Callable[[str, int], None] | None) -> int:
    copied = 0
    order = list(table.primary_key.columns)
    for rows in _batches(src, select(table).order_by(*order)):
        for row in rows:
            for column in LEASE_COLUMNS:
                if column in row:
                    row[column] = None
        dst.execute(insert(table), rows)
        copied += len(rows)
        if progress:
            progress(table.name, copied)
    return copied


def _copy_blobs(src: Any, dst: Any, progress: Callable[[str, int], None] | None) -> int:
    """Blobs without a base first: a dictionary-compressed blob refers to its base."""
    table: Table = Blob
    copied = 0
    for condition in (table.c.base.is_(None), table.c.base.is_not(None)):
        for rows in _batches(src, select(table).where(condition).order_by(table.c.hash)):
            dst.execute(insert(table), rows)
            copied += len(rows)
            if progress:
                progress("blobs", copied)
    return copied


def _reset_sequences(dst: Any) -> None:
    """Ids were copied explicitly: move each serial sequence past the largest id."""
    for table in TABLES:
        if "id" in table.c:
            dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                             f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"))
