"""Many rows inserted in one driver call: the hot writes of recording polls (storage.writer, storage.blobs).

``conn.execute(insert(table), rows)`` builds each row's parameters in Python: a dict per row, and each
value passed through its column type's bind processor (a LargeBinary into the driver's ``Binary``, a
UTCDateTime through ``astimezone`` and, on SQLite, into its text form), by generic code that looks each
processor up again for every row. A cold poll writes five such rows per document, and that bookkeeping
was a sixth of what recording the poll cost (bench/record_bench.py).

:class:`BulkInsert` runs the same INSERT, compiled by SQLAlchemy once per dialect, through
``exec_driver_sql`` (so errors are still translated by storage.db's ``handle_error`` hook) with the rows
as tuples. The values go through the very bind processors SQLAlchemy would call, column by column; a
column of hashable values (datetimes, flags) calls its processor once per distinct value: the rows of
one poll share its ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LargeBinary, Table, insert
from sqlalchemy.engine import Connection, Dialect

from storage.db import upsert_insert

_COUNTED = {"preserve_rowcount": True}     # an executemany's rowcount: the rows it inserted, all together


@dataclass(frozen=True, slots=True)
class _Plan:
    """An INSERT as one dialect runs it."""

    sql: str
    positions: tuple[int, ...] | None     # the caller's column index of each positional parameter; None: named
    processors: tuple[tuple[int, Callable[[Any], Any], bool], ...]   # (column index, processor, memoised)


class BulkInsert:
    """INSERT INTO `table` (`columns`) of many rows given as tuples in that order; with `skip_conflicts`
    (the columns of a unique key) a row whose key is already stored is left out (ON CONFLICT DO NOTHING)."""

    def __init__(self, table: Table, columns: Sequence[str], *, skip_conflicts: Sequence[str] = ()) -> None:
        self.table, self.columns, self.skip_conflicts = table, tuple(columns), list(skip_conflicts)
        self._plans: dict[tuple[str, str], _Plan] = {}

    def __call__(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert the rows; returns how many were inserted (those left out by `skip_conflicts` not counted)."""
        if not rows:
            return 0
        dialect = conn.dialect
        plan = self._plans.get((dialect.name, dialect.driver))
        if plan is None:
            plan = self._plans[(dialect.name, dialect.driver)] = self._plan(conn)
        if plan.processors:
            values = list(zip(*rows, strict=True))
            for i, process, memoised in plan.processors:
                values[i] = _processed(values[i], process, memoised)
            rows = list(zip(*values, strict=True))
        params: Any
        if plan.positions is None:
            params = [dict(zip(self.columns, row, strict=True)) for row in rows]
        elif plan.positions == tuple(range(len(self.columns))):
            params = rows
        else:
            params = [tuple(row[i] for i in plan.positions) for row in rows]
        return conn.exec_driver_sql(plan.sql, params, execution_options=_COUNTED).rowcount

    def _plan(self, conn: Connection) -> _Plan:
        statement = insert(self.table)
        if self.skip_conflicts:
            statement = upsert_insert(conn, self.table).on_conflict_do_nothing(index_elements=self.skip_conflicts)
        compiled = statement.compile(dialect=conn.dialect, column_keys=list(self.columns), for_executemany=True)
        names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
        if sorted(names) != sorted(self.columns):
            # A column left out that has a default would need SQLAlchemy's own default handling.
            raise ValueError(f"{self.table.name}: INSERT parameters {names} are not the columns {self.columns}")
        index = {name: i for i, name in enumerate(self.columns)}
        return _Plan(str(compiled), tuple(index[n] for n in names) if compiled.positional else None,
                     tuple(_processors(self.table, self.columns, conn.dialect)))


def _processors(table: Table, columns: Sequence[str], dialect: Dialect
                ) -> list[tuple[int, Callable[[Any], Any], bool]]:
    """(index, bind processor, memoised) of each column whose type has a bind processor on `dialect`: the
    one SQLAlchemy's executemany would call (the type's dialect implementation's)."""
    out: list[tuple[int, Callable[[Any], Any], bool]] = []
    for i, name in enumerate(columns):
        column_type = table.c[name].type
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            out.append((i, process, not isinstance(column_type, LargeBinary)))
    return out


def _processed(values: tuple[Any, ...], process: Callable[[Any], Any], memoised: bool) -> tuple[Any, ...]:
    if not memoised:
        return tuple(map(process, values))
    memo: dict[Any, Any] = {}
    return tuple(memo[v] if v in memo else memo.setdefault(v, process(v)) for v in values)
