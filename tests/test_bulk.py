"""storage.bulk: rows inserted through the driver are stored exactly as SQLAlchemy's own executemany stores
them, on SQLite and on PostgreSQL, for every column type of the schema."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, Integer, LargeBinary, MetaData, Table, UniqueConstraint, insert, select, text
from sqlalchemy.engine import Connection

from storage.bulk import BulkInsert
from storage.schema import Change, Document, UTCDateTime, metadata
from storage.store import Store

BERLIN = timezone(timedelta(hours=2))
# Two instants, one given in another zone (stored as naive UTC), each repeated (processed once per value).
WHEN = [datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=UTC), datetime(2026, 3, 29, 4, 0, 0, 1, tzinfo=BERLIN)]


def sample(column: Column[Any], n: int) -> Any:
    """The n-th test value of a column: every third one None where the column allows it."""
    if column.nullable and n % 3 == 2:
        return None
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return WHEN[n % 2]
    if isinstance(kind, LargeBinary):
        return bytes([n, 0, 255]) * 11
    if isinstance(kind, Boolean):
        return n % 2 == 0
    if isinstance(kind, Integer):
        return n * 1_000_003
    return f"ë'\"%s?✓{n}"


def twin(table: Table, name: str, meta: MetaData) -> Table:
    """`table`'s columns (types and nullability) without its keys and constraints, plus a row number."""
    return Table(name, meta, Column("n", Integer, primary_key=True),
                 *(Column(c.name, c.type, nullable=c.nullable) for c in table.c if not c.primary_key))


@pytest.fixture
def conn(database_url: str) -> Iterator[Connection]:
    store = Store.open(database_url)
    with store.engine.begin() as connection:
        yield connection
        connection.rollback()
    store.close()


def stored(conn: Connection, table: Table, columns: list[str]) -> list[tuple[Any, ...]]:
    """Each row as the database holds it: the text of every value, and its storage class on SQLite."""
    sqlite, quoted = conn.dialect.name == "sqlite", map(conn.dialect.identifier_preparer.quote, columns)
    rendered = ", ".join(f"typeof({c}) || ':' || quote({c})" if sqlite else f"{c}::text" for c in quoted)
    return [tuple(r) for r in conn.execute(text(f"SELECT {rendered} FROM {table.name} ORDER BY n"))]


@pytest.mark.parametrize("table", [t for t in metadata.sorted_tables if t.name != "alembic_version"],
                         ids=lambda t: t.name)
def test_rows_are_stored_exactly_as_sqlalchemy_stores_them(conn: Connection, table: Table) -> None:
    meta = MetaData()
    ours, theirs = twin(table, "bulk_ours", meta), twin(table, "bulk_theirs", meta)
    meta.create_all(conn)
    columns = [c.name for c in ours.c]
    rows = [tuple([n, *(sample(c, n) for c in table.c if not c.primary_key)]) for n in range(6)]
    BulkInsert(ours, columns)(conn, rows)
    conn.execute(insert(theirs), [dict(zip(columns, row, strict=True)) for row in rows])
    assert stored(conn, ours, columns) == stored(conn, theirs, columns)
    assert len(stored(conn, ours, columns)) == 6


def test_a_row_whose_key_is_stored_is_left_out(conn: Connection) -> None:
    meta = MetaData()
    keyed = Table("bulk_keyed", meta, Column("n", Integer, primary_key=True), Column("k", LargeBinary),
                  Column("v", Integer), UniqueConstraint("k"))
    meta.create_all(conn)
    add = BulkInsert(keyed, ["n", "k", "v"], skip_conflicts=["k"])
    add(conn, [(1, b"a", 1), (2, b"b", 2)])
    add(conn, [(3, b"b", 3), (4, b"c", 4)])
    assert conn.execute(select(keyed.c.k, keyed.c.v).order_by(keyed.c.n)).all() == [(b"a", 1), (b"b", 2), (b"c", 4)]


def test_a_column_with_a_default_cannot_be_left_out(conn: Connection) -> None:
    """SQLAlchemy fills in a column default itself; rows sent through the driver would lack it."""
    with pytest.raises(ValueError, match=r"changes: INSERT parameters .*baseline"):
        BulkInsert(Change, [c.name for c in Change.c if c.name not in ("id", "baseline")])(conn, [(0,) * 10])
    with pytest.raises(ValueError, match=r"documents: INSERT parameters"):
        BulkInsert(Document, [c.name for c in Document.c if c.name not in ("id", "absent_polls")])(conn, [(0,) * 9])
