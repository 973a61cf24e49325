"""History reports: what changed in a period, as one self-contained HTML page, markdown, or an Atom feed.

A report reads a :class:`HistorySource` (storage.history.History) and never the database itself:

1. ``activity()``: one row per document with its number of changes in the period (the overview), and a
   light pass over ``changes(diffs=False)`` for the HTML timelines;
2. ``changes(document_id)`` per document (HTML, markdown) or ``changes()`` over all (Atom), streamed newest
   first with their stored diffs: each change is rendered and written before the next one is read, so a
   report over 10,000+ changes never holds the history in memory.

Renderers are generators of text chunks; :func:`write_output` writes them to stdout, or to a file that
appears atomically (a cron job publishing the report never serves half of one). The diffs themselves are
drawn by monitor.render. Feed content is untrusted: the HTML page escapes every character of it and
forbids scripts and remote loads in its Content-Security-Policy; markdown escapes its syntax.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from monitor import __version__, render
from monitor.errors import UsageError
from monitor.headline import headline as headline  # the formats' modules take it from here
from monitor.humanize import plural, stamp
from monitor.models import (
    ChangeContext,
    ChangeKind,
    DocumentActivity,
    DocumentDiff,
    DocumentInfo,
    RecordedChange,
    ReportScope,
)
from monitor.urls import web_link

FORMATS = ("html", "markdown", "atom")
_AGE = re.compile(r"(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+", re.I)
_AGE_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.I)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class HistorySource(Protocol):
    """What a report reads: implemented by storage.history.History."""

    def activity(self) -> list[DocumentActivity]: ...

    def changes(self, document_id: int | None = None, *, diffs: bool = True) -> Iterator[ChangeContext]: ...


@dataclass(frozen=True, slots=True)
class ReportMeta:
    """What a report says about itself: its scope, when it was made, where it is published."""

    scope: ReportScope
    generated_at: datetime
    report_url: str | None = None       # settings.report_url: the HTML report's published address
    document_title: str | None = None   # set when the scope is one document


def render_report(fmt: str, source: HistorySource, meta: ReportMeta) -> Iterator[str]:
    """The report in `fmt` (html, markdown or atom), as chunks of text."""
    if fmt == "html":
        from monitor.report_html import render_page

        return render_page(source, meta)
    if fmt == "atom":
        from monitor.report_atom import render_feed

        return render_feed(source, meta)
    if fmt == "markdown":
        return render_markdown(source, meta)
    raise UsageError(f"report: unknown format '{fmt}' (choose from {', '.join(FORMATS)})")


def check_scope(scope: ReportScope, known_feeds: list[str], document: DocumentInfo | None) -> None:
    """UsageError for a --feed the database does not know, or a --document outside the --feed(s)."""
    for name in scope.feeds:
        if name not in known_feeds:
            raise UsageError(f"report: --feed {name}: no such feed in the database "
                             f"(feeds: {', '.join(known_feeds) or 'none yet'})")
    if document is not None and scope.feeds and document.feed not in scope.feeds:
        raise UsageError(f"report: document {document.id} is in feed {document.feed}, not in "
                         f"{', '.join(scope.feeds)}")


def write_output(chunks: Iterable[str], path: Path | None) -> None:
    """Write `chunks` to stdout, or to `path` through a temporary file renamed into place when complete."""
    if path is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)   # the umask decides, as for any file
    except OSError as exc:
        raise UsageError(f"report: --output {path}: {exc.strerror}") from None
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------ WHEN


def parse_when(value: str, *, now: datetime, option: str = "--since", end: bool = False,
               command: str = "report") -> datetime:
    """An aware UTC datetime from an ISO date/date-time or an age before `now` ("30d", "12h", "1d12h").

    A naive date-time is local time. A date alone means the start of that (local) day, or with
    ``end=True`` (for --until) the end of it, so ``--until 2024-03-31`` includes the 31st.
    """
    text = value.strip()
    if _AGE.fullmatch(text):
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in _AGE_PART.findall(text))
        return now - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{command}: {option} {value!r}: not a date, date-time or age "
                         "(e.g. 2024-01-31, 2024-01-31T09:00Z, 30d, 12h)") from None
    if end and _DATE_ONLY.fullmatch(text):
        parsed += timedelta(days=1)
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()    # naive: the local time zone
    return parsed.astimezone(UTC)


# ------------------------------------------------------------------------------------------------ shared words




def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def report_title(meta: ReportMeta, activity: list[DocumentActivity]) -> str:
    if meta.document_title:
        return f"Changes to {meta.document_title}"
    feeds = meta.scope.feeds or tuple(dict.fromkeys(a.document.feed for a in activity))
    if len(feeds) == 1:
        return f"Changes in {feeds[0]}"
    return f"Changes in {len(feeds)} feeds" if feeds else "Changes in every feed"


def period_label(meta: ReportMeta) -> str:
    s = meta.scope
    if s.since and s.until:
        return f"{stamp(s.since)} \u2013 {stamp(s.until)}"
    if s.since:
        return f"Since {stamp(s.since)}"
    if s.until:
        return f"Before {stamp(s.until)}"
    return "All recorded history"


def totals_label(activity: list[DocumentActivity]) -> str:
    changes = sum(a.changes for a in activity)
    documents = sum(1 for a in activity if a.changes)
    return f"{plural(changes, 'change')} in {plural(documents, 'document')}"


def kind_label(change: RecordedChange) -> str:
    """added, changed, reverted or removed: what the timeline colours and badges say."""
    return "reverted" if change.revert_of is not None else change.kind.value


def version_label(change: RecordedChange) -> str:
    if change.kind is ChangeKind.REMOVED:
        return f"after v{change.version}"
    if change.from_version is not None:
        return f"v{change.from_version} {render.ARROW} v{change.version}"
    return f"v{change.version}"


def note(ctx: ChangeContext) -> str | None:
    """What a change says besides its diff: baseline, removal, return."""
    c = ctx.change
    if c.kind is ChangeKind.REMOVED:
        return f"Removed from the feed (its last version was v{c.version})."
    if c.returned:
        return f"Back in the feed after its removal ({'changed since' if c.diff else 'as it was in'} " \
               f"v{c.from_version})." + (" It begins:" if ctx.excerpt and not c.diff else "")
    if c.kind is ChangeKind.ADDED:
        first = " when feedwatch first read the feed" if c.baseline else ""
        return f"New document{first}. It begins:" if ctx.excerpt else f"New document{first}."
    return None


def bare(diff: DocumentDiff) -> DocumentDiff:
    """The diff without its summary line: reports print the change's summary as the heading."""
    return dataclasses.replace(diff, summary="")


# ------------------------------------------------------------------------------------------------ markdown


def render_markdown(source: HistorySource, meta: ReportMeta) -> Iterator[str]:
    """The report as markdown for an issue, a wiki page or a chat: overview table, then every change."""
    activity = source.activity()
    yield f"# {render.md_escape(report_title(meta, activity))}\n\n"
    yield f"_{render.md_escape(period_label(meta))} \u00b7 {totals_label(activity)} \u00b7 " \
          f"generated {stamp(meta.generated_at)} by feedwatch {__version__}_\n\n"
    yield from _markdown_overview(activity)
    for a in activity:
        if a.changes:
            yield from _markdown_document(a, source.changes(a.document.id))


def _markdown_overview(activity: list[DocumentActivity]) -> Iterator[str]:
    if not activity:
        yield "No documents in this period.\n"
        return
    yield "| Feed | Document | Changes | Last change |\n|---|---|--:|---|\n"
    for a in activity:
        d = a.document
        gone = " (removed)" if d.removed else ""
        yield f"| {render.md_escape(d.feed)} | {_md_link(d.title, d.link)}{gone} | {a.changes} | {stamp(a.last_at)} |\n"


def _markdown_document(a: DocumentActivity, changes: Iterator[ChangeContext]) -> Iterator[str]:
    d = a.document
    yield f"\n## {render.md_escape(d.title)}\n\n"
    source = f" \u00b7 {_md_url(d.link)}" if web_link(d.link) else ""
    yield f"{render.md_escape(d.feed)} \u00b7 {plural(a.changes, 'change')}{source}\n"
    for ctx in changes:
        c = ctx.change
        yield (f"\n### {render.md_escape(headline(c))}\n\n"
               f"{kind_label(c)} \u00b7 {version_label(c)} \u00b7 {stamp(c.detected_at)}\n\n")
        text = note(ctx)
        if text:
            yield text + "\n\n"
        if ctx.excerpt:
            cut = ctx.excerpt.endswith("\u2026")
            quoted = render.md_canonical(ctx.excerpt.removesuffix(" \u2026")).split("\n") + (["\u2026"] if cut else [])
            yield "".join(f"> {line}\n" for line in quoted) + "\n"
        if c.diff is not None:
            yield render.render_markdown(bare(c.diff), max_length=1 << 30) + "\n"


def _md_link(text: str, url: str | None) -> str:
    link = web_link(url)
    label = render.md_escape(text)
    return f"[{label}]({_md_href(link)})" if link else label


def _md_url(url: str | None) -> str:
    link = web_link(url)
    return f"<{_md_href(link)}>" if link else ""


def _md_href(url: str) -> str:
    """A URL that cannot end a markdown link early: brackets, parentheses and spaces percent-encoded."""
    return quote(url, safe=":/?#@!$&'*+,;=%~.-_")
