"""History files: a feed's full history as portable JSON Lines (``feedwatch export`` / ``import``).

The format, ``feedwatch-history`` version 2 (documented in the README, "History files"), is one JSON
object per line, UTF-8. The first line is the header ``{"format": "feedwatch-history", "version": 2,
"exported_at": ..., "generator": ...}``; then, per feed, a ``feed`` record, its ``document`` records, and
for each document its ``version`` records (oldest first, with the canonical text and the raw item) and
its ``change`` records (with the stored diff); the last line is an ``end`` record with the counts of the
records before it, so a file cut short, even at a line's end, or with lines added or dropped, is refused.
Version 1 files (no ``end`` record) are still read. The record types are the msgspec structs below; times are
RFC 3339 in UTC, hashes lower-case hex. Deliveries are not exported: they belong to one installation's
targets, and a moved history must not notify anyone again.

Import runs in one transaction and validates every line on the way: a malformed line, or a feed that the
database already holds with a different history, aborts it with ``import: FILE:LINE: ...`` and nothing is
stored. A feed already present with the same history is left alone, so importing a file twice changes
nothing. Document ids are kept when they are free, so ``history`` and ``diff`` of a fresh database read
exactly as on the original; blobs are stored (and compressed) exactly as a poll stores them.

msgspec is the config's library (monitor.config); it is used here too because these records are a
typed, versioned file format with precise validation errors, the same job.
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import msgspec
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.engine import Connection

from monitor import __version__, codec
from monitor.errors import HistoryFileError, StorageDataError, UsageError
from monitor.files import atomic_file
from monitor.humanize import iso_z
from storage import blobs
from storage.schema import MAX_ID, Change, Document, Feed, Version

FORMAT = "feedwatch-history"
PAGE = 500                # documents per page of an export
VERSION = 2               # 2: the end record

Time = Annotated[datetime, msgspec.Meta(tz=True)]
Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Number = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]


class _Record(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    pass


class FeedRecord(_Record, tag="feed", kw_only=True):
    name: str
    url: str
    created_at: Time
    settings_hash: Hex | None = None     # what shaped the canonical texts (a change re-baselines the feed)
    baseline_done: bool = True


class DocumentRecord(_Record, tag="document", kw_only=True):
    feed: str
    key: str                             # identity within the feed; versions and changes refer to it
    id: Number | None = None             # kept on import when free
    guid: str | None = None
    link: str | None = None
    title: str
    first_seen_at: Time
    latest_version: Number
    state_hash: Hex
    absent_polls: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    removed_at: Time | None = None


class VersionRecord(_Record, tag="version", kw_only=True):
    feed: str
    document: str                        # the document's key
    number: Number
    created_at: Time
    title: str
    link: str | None = None
    state_hash: Hex
    text: str                            # canonical text
    raw: str | None = None               # the raw item (UTF-8), or
    raw_base64: str | None = None        # ... base64 when it is not UTF-8


class ChangeRecord(_Record, tag="change", kw_only=True):
    feed: str
    document: str
    kind: Literal["added", "changed", "removed"]
    version: Number
    from_version: Number | None = None
    revert_of: Number | None = None
    detected_at: Time
    title: str
    summary: str
    baseline: bool = False
    diff: msgspec.Raw = msgspec.Raw(b"null")   # the stored diff, as `diff --format json` reads it


class EndRecord(_Record, tag="end", kw_only=True):
    """The last line: what the file holds, checked by import (since version 2)."""
    feeds: int
    documents: int
    versions: int
    changes: int


Record = FeedRecord | DocumentRecord | VersionRecord | ChangeRecord | EndRecord
_decoder = msgspec.json.Decoder(Record)
_encoder = msgspec.json.Encoder()


@dataclass
class ArchiveCounts:
    """What an export wrote or an import stored; `unchanged` names feeds an import found already present."""

    feeds: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    documents: int = 0
    versions: int = 0
    changes: int = 0


Progress = Callable[[ArchiveCounts], None]


# ------------------------------------------------------------------------------------------ export


def export_to(engine: Engine, path: str | None, feeds: Sequence[str] | None = None, *,
              progress: Progress | None = None) -> ArchiveCounts:
    """Export to `path` (stdout when None or "-"), replacing it only once the export is complete.
    `progress` is called with the running counts after each record."""
    if not path or path == "-":
        return export(engine, sys.stdout, feeds, progress=progress)
    try:
        with atomic_file(Path(path)) as raw:
            out = io.TextIOWrapper(raw, encoding="utf-8")
            counts = export(engine, out, feeds, progress=progress)
            out.detach()        # flushed; the file is closed (and renamed into place) by atomic_file
    except OSError as exc:
        raise UsageError(f"export: {path}: {exc.strerror or exc}") from None
    return counts


def export(engine: Engine, out: IO[str], feeds: Sequence[str] | None = None, *,
           progress: Progress | None = None) -> ArchiveCounts:
    """Write the history of `feeds` (default: all) to `out`."""
    counts = ArchiveCounts()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":   # one snapshot for the whole file, even while polls commit
            conn.execution_options(isolation_level="REPEATABLE READ")
        rows = conn.execute(select(Feed).order_by(Feed.c.name)).all()
        if feeds:
            missing = sorted(set(feeds) - {r.name for r in rows})
            if missing:
                raise UsageError(f"export: no feed named {', '.join(map(repr, missing))} in the database")
            rows = [r for r in rows if r.name in feeds]
        out.write(_line({"format": FORMAT, "version": VERSION, "exported_at": _now(),
                         "generator": f"feedwatch {__version__}"}))
        for feed in rows:
            for record in _feed_records(conn, feed):
                out.write(_line(record))
                _count(counts, record)
                if progress is not None:
                    progress(counts)
        out.write(_line(_end(counts)))
    return counts


def _end(counts: ArchiveCounts) -> EndRecord:
    return EndRecord(feeds=len(counts.feeds), documents=counts.documents, versions=counts.versions,
                     changes=counts.changes)


def _feed_records(conn: Connection, feed: Any) -> Iterator[Record]:
    """A feed's records: the feed, its documents, then each document's versions and change records.
    Documents are read PAGE at a time, twice, and a page's versions, changes and blobs in a few queries:
    memory stays flat and the query count grows with pages, not rows."""
    yield FeedRecord(name=feed.name, url=feed.url, created_at=feed.created_at, baseline_done=feed.baseline_done,
                     settings_hash=feed.settings_hash.hex() if feed.settings_hash else None)
    for docs in _document_pages(conn, feed.id):
        for d in docs:
            yield DocumentRecord(feed=feed.name, key=d.key, id=d.id, guid=d.guid, link=d.link, title=d.title,
                                 first_seen_at=d.first_seen_at, latest_version=d.latest_version,
                                 state_hash=d.state_hash.hex(), absent_polls=d.absent_polls,
                                 removed_at=d.removed_at)
    for docs in _document_pages(conn, feed.id):
        ids = [d.id for d in docs]
        versions = conn.execute(select(Version).where(Version.c.document_id.in_(ids))
                                .order_by(Version.c.document_id, Version.c.number)).all()
        changes = conn.execute(select(Change).where(Change.c.document_id.in_(ids))
                               .order_by(Change.c.document_id, Change.c.id)).all()
        contents = blobs.get_many(conn, [h for v in versions for h in (v.text_hash, v.raw_hash) if h is not None]
                                  + [c.diff_hash for c in changes if c.diff_hash is not None])
        rows: dict[int, tuple[list[Any], list[Any]]] = {d.id: ([], []) for d in docs}
        for v in versions:
            rows[v.document_id][0].append(v)
        for c in changes:
            rows[c.document_id][1].append(c)
        for d in docs:
            yield from (_version_record(contents, feed.name, d.key, v) for v in rows[d.id][0])
            yield from (ChangeRecord(feed=feed.name, document=d.key, kind=c.kind, version=c.version,
                                     from_version=c.from_version, revert_of=c.revert_of, detected_at=c.detected_at,
                                     title=c.title, summary=c.summary, baseline=c.baseline,
                                     diff=msgspec.Raw(contents[c.diff_hash] if c.diff_hash else b"null"))
                        for c in rows[d.id][1])


def _document_pages(conn: Connection, feed_id: int) -> Iterator[list[Any]]:
    """The feed's documents in id order, PAGE at a time (keyset)."""
    after = 0
    while True:
        page = list(conn.execute(select(Document).where(Document.c.feed_id == feed_id, Document.c.id > after)
                                 .order_by(Document.c.id).limit(PAGE)).all())
        if page:
            yield page
        if len(page) < PAGE:
            return
        after = page[-1].id


def _version_record(contents: dict[bytes, bytes], feed: str, key: str, v: Any) -> VersionRecord:
    raw = contents[v.raw_hash] if v.raw_hash is not None else None
    try:
        raw_text, raw_b64 = (raw.decode("utf-8") if raw is not None else None), None
    except UnicodeDecodeError:
        raw_text, raw_b64 = None, base64.b64encode(raw or b"").decode("ascii")
    return VersionRecord(feed=feed, document=key, number=v.number, created_at=v.created_at, title=v.title,
                         link=v.link, state_hash=v.state_hash.hex(), text=contents[v.text_hash].decode("utf-8"),
                         raw=raw_text, raw_base64=raw_b64)


def _line(record: Any) -> str:
    return _encoder.encode(record).decode("utf-8") + "\n"


def _now() -> str:
    return iso_z(datetime.now(UTC))


def _count(counts: ArchiveCounts, record: Record) -> None:
    if isinstance(record, EndRecord):
        return
    if isinstance(record, FeedRecord):
        counts.feeds.append(record.name)
    elif isinstance(record, DocumentRecord):
        counts.documents += 1
    elif isinstance(record, VersionRecord):
        counts.versions += 1
    else:
        counts.changes += 1


# ------------------------------------------------------------------------------------------ import


def import_from(engine: Engine, path: str, *, progress: Progress | None = None) -> ArchiveCounts:
    """Import the file at `path` ("-": stdin); `progress` is called with the running counts."""
    if path == "-":
        return import_history(engine, sys.stdin.buffer, "<stdin>", progress=progress)
    try:
        with open(path, "rb") as lines:
            return import_history(engine, lines, path, progress=progress)
    except OSError as exc:
        raise UsageError(f"import: {path}: {exc.strerror or exc}") from None


def import_history(engine: Engine, lines: Iterable[str | bytes], source: str, *,
                   progress: Progress | None = None) -> ArchiveCounts:
    """Store a history file's records in one transaction (see the module docstring)."""
    with engine.begin() as conn:
        importer = _Importer(conn, source)
        numbered = enumerate(lines, start=1)
        importer.header(next(numbered, (1, b"")))
        for number, line in numbered:
            if line.strip():
                importer.record(number, line)
                if progress is not None:
                    progress(importer.counts)
        importer.finish()
    return importer.counts


@dataclass
class _Doc:
    id: int
    feed: str
    verify: bool                          # already in the database: the file must agree with it
    latest: int
    line: int
    numbers: set[int] = field(default_factory=set)
    changes: set[tuple[int, str, datetime]] = field(default_factory=set)   # (version, kind, detected_at)
    raws: dict[int, bytes] = field(default_factory=dict)   # version number -> raw item hash


class _Importer:
    def __init__(self, conn: Connection, source: str) -> None:
        self.conn, self.source = conn, source
        self.counts = ArchiveCounts()
        self.feeds: dict[str, tuple[int, bool]] = {}       # name -> (id, verify)
        self.docs: dict[tuple[str, str], _Doc] = {}
        self.line = 0
        self.format_version = VERSION
        self.read = ArchiveCounts()                        # the records in the file, stored or not
        self.end: EndRecord | None = None

    def fail(self, message: str, line: int | None = None) -> HistoryFileError:
        return HistoryFileError(self.source, line if line is not None else self.line, message)

    def header(self, numbered: tuple[int, str | bytes]) -> None:
        self.line = numbered[0]
        try:
            head = msgspec.json.decode(numbered[1])
        except msgspec.DecodeError:
            head = None
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise self.fail(f"not a feedwatch history file (the first line must be the {FORMAT} header)")
        if not isinstance(head.get("version"), int) or head["version"] > VERSION:
            raise self.fail(f"{FORMAT} version {head.get('version')!r} is not one this feedwatch reads "
                            f"(up to {VERSION}); upgrade feedwatch")
        self.format_version = head["version"]

    def record(self, number: int, line: str | bytes) -> None:
        self.line = number
        try:
            record = _decoder.decode(line)
        except msgspec.ValidationError as exc:
            raise self.fail(f"invalid record: {exc}".replace("`", "'")) from None
        except msgspec.DecodeError as exc:
            raise self.fail(f"not valid JSON: {exc}") from None
        if self.end is not None:
            raise self.fail("a record after the end record")
        if isinstance(record, EndRecord):
            self.end = record
            return
        _count(self.read, record)
        try:
            if isinstance(record, FeedRecord):
                stored = self.feed(record)
            elif isinstance(record, DocumentRecord):
                stored = self.document(record)
            elif isinstance(record, VersionRecord):
                stored = self.version(record)
            else:
                stored = self.change(record)
        except StorageDataError as exc:
            raise self.fail(f"conflicts with what is already stored ({exc.reason})") from None
        if stored and not isinstance(record, FeedRecord):
            _count(self.counts, record)

    # -- records

    def feed(self, r: FeedRecord) -> bool:
        if r.name in self.feeds:
            raise self.fail(f"feed '{r.name}' appears twice")
        row = self.conn.execute(select(Feed.c.id).where(Feed.c.name == r.name)).scalar()
        has_history = row is not None and self.conn.execute(
            select(func.count()).select_from(Document).where(Document.c.feed_id == row)).scalar_one() > 0
        values = dict(url=r.url, created_at=r.created_at, baseline_done=r.baseline_done,
                      settings_hash=bytes.fromhex(r.settings_hash) if r.settings_hash else None)
        if row is None:
            row = self.conn.execute(insert(Feed).values(
                name=r.name, next_due_at=datetime.now(UTC), polls=0, consecutive_errors=0, error_alerted=False,
                **values).returning(Feed.c.id)).scalar_one()
        elif not has_history:
            self.conn.execute(update(Feed).where(Feed.c.id == row).values(**values))
        self.feeds[r.name] = (row, has_history)
        return not has_history

    def document(self, r: DocumentRecord) -> bool:
        feed_id, verify = self._feed(r.feed)
        if (r.feed, r.key) in self.docs:
            raise self.fail(f"document '{r.key}' of feed '{r.feed}' appears twice")
        if verify:
            doc_id = self.conn.execute(select(Document.c.id).where(Document.c.feed_id == feed_id,
                                                                 Document.c.key == r.key)).scalar()
            if doc_id is None:
                raise self._conflict(r.feed, f"document '{r.key}' is not there")
        else:
            values = dict(feed_id=feed_id, key=r.key, guid=r.guid, link=r.link, title=r.title,
                          first_seen_at=r.first_seen_at, latest_version=r.latest_version,
                          state_hash=bytes.fromhex(r.state_hash), absent_polls=r.absent_polls, removed_at=r.removed_at)
            explicit = r.id is not None and self.conn.execute(
                select(Document.c.id).where(Document.c.id == r.id)).first() is None
            if explicit:
                values["id"] = r.id
            doc_id = self.conn.execute(insert(Document).values(**values).returning(Document.c.id)).scalar_one()
            if explicit and self.conn.dialect.name == "postgresql":   # later inserts must not reuse the id
                self.conn.execute(text("SELECT setval(pg_get_serial_sequence('documents', 'id'), "
                                       "(SELECT max(id) FROM documents))"))
        self.docs[(r.feed, r.key)] = _Doc(doc_id, r.feed, verify, r.latest_version, self.line)
        return not verify

    def version(self, r: VersionRecord) -> bool:
        doc = self._doc(r.feed, r.document, "version")
        if r.number in doc.numbers:
            raise self.fail(f"version {r.number} of document '{r.document}' appears twice")
        doc.numbers.add(r.number)
        text_bytes = r.text.encode("utf-8")
        text_hash, state_hash = blobs.digest(text_bytes), bytes.fromhex(r.state_hash)
        if doc.verify:
            stored = self.conn.execute(select(Version.c.text_hash, Version.c.state_hash).where(
                Version.c.document_id == doc.id, Version.c.number == r.number)).first()
            if stored is None or (stored.text_hash, stored.state_hash) != (text_hash, state_hash):
                raise self._conflict(r.feed, f"version {r.number} of document '{r.document}' differs or is missing")
            return False
        raw = self._raw(r)
        raw_hash = blobs.digest(raw) if raw is not None else None
        previous = doc.raws.get(max(doc.raws)) if doc.raws else None
        if raw is not None and raw_hash is not None:
            blobs.put(self.conn, {raw_hash: raw}, similar={raw_hash: previous} if previous else None, chain=True)
            doc.raws[r.number] = raw_hash
        blobs.put(self.conn, {text_hash: text_bytes}, similar={text_hash: raw_hash} if raw_hash else None)
        self.conn.execute(insert(Version).values(
            document_id=doc.id, number=r.number, created_at=r.created_at, title=r.title, link=r.link,
            text_hash=text_hash, raw_hash=raw_hash, state_hash=state_hash))
        return True

    def change(self, r: ChangeRecord) -> bool:
        doc = self._doc(r.feed, r.document, "change")
        what = f"the {r.kind} change to version {r.version} of document '{r.document}'"
        if r.version > doc.latest:
            raise self.fail(f"{what}: its document's latest version is {doc.latest}")
        if r.from_version is not None and r.from_version >= r.version:
            raise self.fail(f"{what}: it comes from version {r.from_version}, not an earlier one")
        if (r.version, r.kind, r.detected_at) in doc.changes:
            raise self.fail(f"{what} appears twice")
        doc.changes.add((r.version, r.kind, r.detected_at))
        diff = self._diff(r.diff)
        if doc.verify:
            found = self.conn.execute(select(Change.c.id).where(
                Change.c.document_id == doc.id, Change.c.version == r.version, Change.c.kind == r.kind,
                Change.c.detected_at == r.detected_at)).first()
            if found is None:
                raise self._conflict(r.feed, f"its {r.kind} change to version {r.version} of '{r.document}' is missing")
            return False
        diff_hash = None
        if diff is not None:
            diff_hash = blobs.digest(diff)
            raw_hash = doc.raws.get(r.version)
            blobs.put(self.conn, {diff_hash: diff}, similar={diff_hash: raw_hash} if raw_hash else None)
        self.conn.execute(insert(Change).values(
            feed_id=self.feeds[r.feed][0], document_id=doc.id, kind=r.kind, version=r.version,
            from_version=r.from_version, revert_of=r.revert_of, detected_at=r.detected_at, title=r.title,
            summary=r.summary, diff_hash=diff_hash, baseline=r.baseline))
        return True

    def finish(self) -> None:
        """The file is whole (its end record says what it holds), and every new document has its latest
        version (polls compare with it and compress against it)."""
        if self.format_version >= 2:
            if self.end is None:
                raise self.fail("the file ends without its end record: cut short? (nothing imported)")
            if _end(self.read) != self.end:
                said, found = self.end, _end(self.read)
                raise self.fail(f"the end record counts {said.feeds} feeds, {said.documents} documents, "
                                f"{said.versions} versions and {said.changes} changes; the file holds "
                                f"{found.feeds}, {found.documents}, {found.versions} and {found.changes}: lines "
                                "dropped or added? (nothing imported)")
        for (feed, key), doc in self.docs.items():
            if not doc.verify and doc.latest not in doc.numbers:
                raise self.fail(f"document '{key}' of feed '{feed}' lacks its latest version {doc.latest}", doc.line)
        for feed_id, verify in self.feeds.values():     # `status` shows a feed's last change from its row
            if not verify:
                last = select(func.max(Change.c.detected_at)).where(Change.c.feed_id == feed_id).scalar_subquery()
                self.conn.execute(update(Feed).where(Feed.c.id == feed_id).values(last_change_at=last))
        self.counts.unchanged = [name for name, (_, verify) in self.feeds.items() if verify]
        self.counts.feeds = [name for name, (_, verify) in self.feeds.items() if not verify]

    # -- helpers

    def _feed(self, name: str) -> tuple[int, bool]:
        if name not in self.feeds:
            raise self.fail(f"refers to feed '{name}' before its feed record")
        return self.feeds[name]

    def _doc(self, feed: str, key: str, what: str) -> _Doc:
        self._feed(feed)
        doc = self.docs.get((feed, key))
        if doc is None:
            raise self.fail(f"{what} of document '{key}', which has no document record before it")
        return doc

    def _conflict(self, feed: str, detail: str) -> HistoryFileError:
        return self.fail(f"feed '{feed}' is already in the database with a different history ({detail}); "
                         "import into another database, or give the feed another name in the file")

    def _raw(self, r: VersionRecord) -> bytes | None:
        if r.raw is not None:
            return r.raw.encode("utf-8")
        if r.raw_base64 is None:
            return None
        try:
            return base64.b64decode(r.raw_base64, validate=True)
        except ValueError:
            raise self.fail("raw_base64 is not valid base64") from None

    def _diff(self, raw: msgspec.Raw) -> bytes | None:
        if bytes(raw) == b"null":
            return None
        try:
            return codec.diff_to_json(codec.diff_from_json(bytes(raw)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.fail(f"diff is not a feedwatch diff ({exc!r})") from None
