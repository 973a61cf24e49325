"""Rows into monitor.models values, and IN-lists: the helpers every storage module shares.

Storage returns monitor.models objects, never ORM rows; each kind of row is mapped here, once. A row is
anything with the table's column names as attributes (a SQLAlchemy ``Row`` of a select or a join).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select

from monitor.models import (
    ChangeKind,
    DocumentDiff,
    DocumentInfo,
    FeedState,
    RecordedChange,
    Validators,
    VersionInfo,
)

CHUNK = 500              # parameters per IN (...) list: far below every driver's limit


def ids_in(column: ColumnElement[int], ids: Sequence[int], dialect: str) -> ColumnElement[bool]:
    """``column IN ids`` for a long list of ids that changes from one query to the next (the feeds a cycle
    has yet to claim). On SQLite the list is one JSON parameter, so the statement's text stays the same: a
    text per length of the list was prepared anew for each query, and SQLite keeps the last 128 prepared
    per connection, thousands of parameters each (60 MiB in a cycle over 5,000 feeds)."""
    if dialect != "sqlite":
        return column.in_(ids)
    values = func.json_each(json.dumps(list(ids))).table_valued("value")
    return column.in_(select(values.c.value))


def chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """`items` in lists of at most `size`, for ``column.in_(chunk)`` queries."""
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]


def feed_state(f: Any, documents: int = 0, absent: int = 0, stored: int = 0) -> FeedState:
    """A claimed feed row (storage.store's claim columns) and its document counts."""
    return FeedState(id=f.id, name=f.name, url=f.url, validators=Validators(f.etag, f.last_modified),
                     body_hash=f.body_hash, settings_hash=f.settings_hash, baseline_done=f.baseline_done,
                     consecutive_errors=f.consecutive_errors, error_alerted=f.error_alerted, documents=documents,
                     absent=absent, stored=stored)


def document_info(d: Any) -> DocumentInfo:
    """A document row joined with its feed's name (``feed_name``)."""
    return DocumentInfo(id=d.id, feed=d.feed_name, key=d.key, guid=d.guid, link=d.link, title=d.title,
                        latest_version=d.latest_version, first_seen_at=d.first_seen_at,
                        removed=d.removed_at is not None)


def version_info(v: Any, *, text: str | None = None) -> VersionInfo:
    return VersionInfo(document_id=v.document_id, number=v.number, created_at=v.created_at, title=v.title,
                       link=v.link, text=text)


def recorded_change(c: Any, diff: DocumentDiff | None = None) -> RecordedChange:
    """A change row joined with its document's guid and link and its feed's name (``feed_name``)."""
    return RecordedChange(id=c.id, feed=c.feed_name, document_id=c.document_id, guid=c.guid, link=c.link,
                          title=c.title, kind=ChangeKind(c.kind), version=c.version, from_version=c.from_version,
                          revert_of=c.revert_of, detected_at=c.detected_at, summary=c.summary,
                          baseline=c.baseline, diff=diff)
