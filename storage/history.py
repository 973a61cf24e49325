"""Reads for history reports: which documents changed in a period, and their changes, streamed.

A report over 10,000+ changes must not hold the history in memory, whatever the database driver does
with result sets: change rows are read in keyset-paginated pages (``ORDER BY detected_at DESC, id DESC``,
``PAGE`` rows at a time, each page starting strictly after the last row of the one before) and yielded
one by one, with their stored diffs decompressed and decoded only as they are yielded.

Everything one report reads happens in one read transaction (REPEATABLE READ on PostgreSQL; one SQLite
read transaction, which WAL keeps from blocking writers), so its overview and its body agree even while
a ``run`` records new changes. Open the store read-only for reports (the CLI does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Select, and_, func, or_, select, true
from sqlalchemy.engine import Connection, Row

from monitor import codec
from monitor.models import ChangeContext, DocumentActivity, ReportScope
from storage import blobs
from storage.rows import document_info, recorded_change
from storage.schema import Blob, Change, Document, Feed, Version

PAGE = 200               # change rows per keyset page
OPENING_LINES = 8        # lines of an added document's text shown as its opening
OPENING_CHARS = 800


class History:
    """The changes of one report scope, read inside one transaction on one connection."""

    def __init__(self, conn: Connection, scope: ReportScope, *, page: int | None = None) -> None:
        self.conn, self.scope, self.page = conn, scope, page or PAGE
        self._order: dict[int, int] = {}           # document id -> its place in activity()'s order
        self._counts: list[tuple[int, int]] = []   # (document id, changes) of the documents that changed
        self._ahead: dict[int, list[ChangeContext]] = {}   # the changes of the next documents, read together

    @classmethod
    @contextmanager
    def open(cls, engine: Engine, scope: ReportScope, *, page: int | None = None) -> Iterator[History]:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield cls(conn, scope, page=page)

    def feed_names(self) -> list[str]:
        """Every feed in the database (to tell a misspelt --feed from a feed without changes)."""
        return list(self.conn.execute(select(Feed.c.name).order_by(Feed.c.name)).scalars())

    def activity(self) -> list[DocumentActivity]:
        """Per document of the scope: its changes in the period. Documents that existed during the period
        without changing are listed with 0. Ordered by feed, then title."""
        counts = (select(Change.c.document_id, func.count().label("n"),
                         func.min(Change.c.detected_at).label("first_at"),
                         func.max(Change.c.detected_at).label("last_at"))
                  .where(*self._change_filters()).group_by(Change.c.document_id).subquery())
        existed = [Document.c.first_seen_at < self.scope.until] if self.scope.until else []
        if self.scope.since:
            existed.append(or_(Document.c.removed_at.is_(None), Document.c.removed_at >= self.scope.since))
        query = (select(Document, Feed.c.name.label("feed_name"), counts.c.n, counts.c.first_at,
                        counts.c.last_at)
                 .join(Feed, Feed.c.id == Document.c.feed_id).outerjoin(counts, counts.c.document_id == Document.c.id)
                 .where(*self._document_filters(), or_(counts.c.n.is_not(None), and_(true(), *existed)))
                 .order_by(Feed.c.name, func.lower(Document.c.title), Document.c.id))
        activity = [DocumentActivity(document_info(r), r.n or 0, r.first_at, r.last_at)
                    for r in self.conn.execute(query)]
        self._counts = [(a.document.id, a.changes) for a in activity if a.changes]
        self._order = {doc: n for n, (doc, _) in enumerate(self._counts)}
        return activity

    def changes(self, document_id: int | None = None, *, diffs: bool = True) -> Iterator[ChangeContext]:
        """The scope's changes (of one document, or all), newest first, one keyset page at a time.

        With ``diffs=False`` neither diffs nor openings are read: enough for timelines and counts.
        Reports read every document's changes in :meth:`activity` order: those of the next few documents
        (up to PAGE changes) are then read together, in the queries of one page.
        """
        if document_id is not None and diffs and (document_id in self._ahead or self._read_ahead(document_id)):
            yield from self._ahead.pop(document_id)
            return
        for page in self._pages(self._query(diffs).where(
                *([Change.c.document_id == document_id] if document_id is not None else []))):
            yield from self._contexts(page, diffs)

    def _read_ahead(self, document_id: int) -> bool:
        """Read the changes of `document_id` and of the documents after it in activity order, as many as
        fit in a page; False when its own changes do not (they are then read page by page)."""
        start = self._order.get(document_id)
        if start is None or self._counts[start][1] > self.page:
            return False
        batch, total = [], 0
        for doc, count in self._counts[start:]:
            if total + count > self.page:
                break
            batch.append(doc)
            total += count
        rows = self.conn.execute(self._query(True).where(Change.c.document_id.in_(batch))
                                 .order_by(Change.c.detected_at.desc(), Change.c.id.desc())).all()
        self._ahead = {doc: [] for doc in batch}
        for ctx in self._contexts(list(rows), True):
            self._ahead[ctx.change.document_id].append(ctx)
        return True

    def _query(self, diffs: bool) -> Select[Any]:
        columns: list[Any] = [Change, Document.c.guid, Document.c.link, Feed.c.name.label("feed_name")]
        query = (select(*columns).join(Document, Document.c.id == Change.c.document_id)
                 .join(Feed, Feed.c.id == Change.c.feed_id).where(*self._change_filters()))
        if diffs:
            query = (query.add_columns(Blob.c.codec, Blob.c.base, Blob.c.data)
                     .outerjoin(Blob, Blob.c.hash == Change.c.diff_hash))
        return query

    def _contexts(self, page: list[Row[Any]], diffs: bool) -> list[ChangeContext]:
        """A page of change rows as ChangeContexts: its keyframes and openings read together, in a few
        queries for the page, not a few per change."""
        if not diffs:
            return [ChangeContext(recorded_change(row)) for row in page]
        frames = blobs.get_many(self.conn, {r.base for r in page if r.codec == "zstd-dict" and r.base})
        openings = self._openings([r for r in page if r.kind == "added"])
        out = []
        for row in page:
            diff = codec.diff_from_json(blobs.decode_with(
                row.codec, frames.get(row.base) if row.base else None, row.data)) if row.data is not None else None
            opening = openings.get((row.document_id, row.version)) if row.kind == "added" else None
            out.append(ChangeContext(recorded_change(row, diff), opening))
        return out

    def _pages(self, query: Select[Any]) -> Iterator[list[Row[Any]]]:
        """Rows of `query`, newest first, fetched PAGE at a time by keyset: no cursor stays open while
        the caller works on a row, and no page holds more than PAGE rows."""
        query = query.order_by(Change.c.detected_at.desc(), Change.c.id.desc()).limit(self.page)
        after: Row[Any] | None = None
        while True:
            page_query = query if after is None else query.where(or_(
                Change.c.detected_at < after.detected_at,
                and_(Change.c.detected_at == after.detected_at, Change.c.id < after.id)))
            rows = list(self.conn.execute(page_query).all())
            yield rows
            if len(rows) < self.page:
                return
            after = rows[-1]

    def _openings(self, changes: list[Row[Any]]) -> dict[tuple[int, int], str]:
        """(document id, version) -> the first lines of the version each change added (none for a version
        retention pruned)."""
        if not changes:
            return {}
        wanted = {(c.document_id, c.version) for c in changes}
        hashes = {(r.document_id, r.number): r.text_hash for r in self.conn.execute(
            select(Version.c.document_id, Version.c.number, Version.c.text_hash)
            .where(Version.c.document_id.in_({d for d, _ in wanted}), Version.c.number.in_({n for _, n in wanted})))
            if (r.document_id, r.number) in wanted}
        texts = blobs.get_many(self.conn, hashes.values())
        return {key: _opening(texts[h].decode("utf-8")) for key, h in hashes.items()}

    def _change_filters(self) -> list[Any]:
        s = self.scope
        filters: list[Any] = []
        if s.since is not None:
            filters.append(Change.c.detected_at >= s.since)
        if s.until is not None:
            filters.append(Change.c.detected_at < s.until)
        if s.document_id is not None:
            filters.append(Change.c.document_id == s.document_id)
        if s.feeds:
            filters.append(Change.c.feed_id.in_(select(Feed.c.id).where(Feed.c.name.in_(s.feeds))))
        return filters

    def _document_filters(self) -> list[Any]:
        s = self.scope
        filters: list[Any] = []
        if s.document_id is not None:
            filters.append(Document.c.id == s.document_id)
        if s.feeds:
            filters.append(Feed.c.name.in_(s.feeds))
        return filters


def _opening(text: str) -> str:
    """The first lines of a text, cut at a word past OPENING_CHARS."""
    lines = text.split("\n")
    opening = "\n".join(lines[:OPENING_LINES])
    if len(opening) > OPENING_CHARS:
        opening = opening[:OPENING_CHARS].rsplit(" ", 1)[0] + " \u2026"
    elif len(lines) > OPENING_LINES:
        opening += "\n\u2026"
    return opening
