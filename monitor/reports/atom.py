"""The Atom feed of changes (RFC 4287): one entry per recorded change, to publish next to the HTML report.

Entry ids are tag: URIs (RFC 4151) built only from what never changes for a recorded change: its feed's
name, its document's id and its own id. Regenerating the feed after more changes therefore keeps every
earlier entry's id, and readers neither show an entry twice nor lose one. The feed's ``updated`` is the
newest entry's detection time, so regenerating without new changes writes the same feed.

Entries are written one at a time as the changes stream in, newest first, by the standard library's
XMLGenerator, which escapes text and attribute values; characters XML 1.0 cannot carry are dropped.
An entry's content is ``type="html"``: the same escaped HTML as the report's (monitor.reports.html).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from itertools import chain
from urllib.parse import quote
from xml.sax.saxutils import XMLGenerator
from xml.sax.xmlreader import AttributesImpl

from monitor import __version__
from monitor.headline import headline
from monitor.humanize import iso_z
from monitor.models import ChangeContext, DocumentActivity
from monitor.reports.common import (
    HistorySource,
    ReportMeta,
    kind_label,
    period_label,
    report_title,
    version_label,
)
from monitor.reports.html import change_body
from monitor.urls import web_link

ATOM = "http://www.w3.org/2005/Atom"
TAG = "tag:feedwatch,2026:"          # fixed forever: part of every entry id
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def entry_id(ctx: ChangeContext) -> str:
    c = ctx.change
    return f"{TAG}{quote(c.feed, safe='')}/{c.document_id}/{c.id}"


def feed_id(meta: ReportMeta) -> str:
    """The same for every regeneration of one report scope, whatever its period."""
    s = meta.scope
    parts = [f"{TAG}changes"]
    if s.feeds:
        parts.append("+".join(quote(f, safe="") for f in sorted(s.feeds)))
    if s.document_id is not None:
        parts.append(f"document/{s.document_id}")
    return "/".join(parts)


def render_feed(source: HistorySource, meta: ReportMeta) -> Iterator[str]:
    changes = source.changes()
    first = next(changes, None)
    buffer = io.StringIO()
    xml = _Writer(buffer)
    xml.gen.startDocument()
    xml.start("feed", xmlns=ATOM)
    xml.gen.ignorableWhitespace("\n")
    _feed_head(xml, meta, source.activity(), first)
    xml.gen.ignorableWhitespace("\n")
    for ctx in chain([first] if first else [], changes):
        _entry(xml, ctx)
        xml.gen.ignorableWhitespace("\n")
        yield _drain(buffer)
    xml.end("feed")
    xml.gen.endDocument()
    buffer.write("\n")
    yield _drain(buffer)


def _feed_head(xml: _Writer, meta: ReportMeta, activity: list[DocumentActivity],
               first: ChangeContext | None) -> None:
    xml.text("id", feed_id(meta))
    xml.text("title", f"feedwatch: {report_title(meta, activity)}")
    xml.text("subtitle", period_label(meta))
    xml.text("updated", iso_z(first.change.detected_at if first else meta.generated_at))
    xml.start("author")
    xml.text("name", "feedwatch")
    xml.end("author")
    xml.text("generator", "feedwatch", version=__version__)
    published = web_link(meta.report_url)
    if published:
        xml.empty("link", rel="alternate", type="text/html", href=published)


def _entry(xml: _Writer, ctx: ChangeContext) -> None:
    c = ctx.change
    xml.start("entry")
    xml.text("id", entry_id(ctx))
    xml.text("title", f"{c.title}: {headline(c)}")
    xml.text("updated", iso_z(c.detected_at))
    xml.text("published", iso_z(c.detected_at))
    link = web_link(c.link)
    if link:
        xml.empty("link", rel="alternate", href=link)
    xml.empty("category", term=kind_label(c))
    xml.text("summary", f"{c.feed} \u00b7 {kind_label(c)} \u00b7 {version_label(c)}")
    xml.text("content", change_body(ctx), type="html")
    xml.end("entry")


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


class _Writer:
    """XMLGenerator with one-line element helpers; every string is cleaned of non-XML characters."""

    def __init__(self, out: io.StringIO) -> None:
        self.gen = XMLGenerator(out, encoding="utf-8", short_empty_elements=True)

    def start(self, name: str, **attrs: str) -> None:
        self.gen.startElement(name, AttributesImpl({k: _clean(v) for k, v in attrs.items()}))

    def end(self, name: str) -> None:
        self.gen.endElement(name)

    def text(self, name: str, value: str, **attrs: str) -> None:
        self.start(name, **attrs)
        self.gen.characters(_clean(value))
        self.end(name)

    def empty(self, name: str, **attrs: str) -> None:
        self.start(name, **attrs)
        self.end(name)


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)
