"""The markdown report, for an issue, a wiki page or a chat: an overview table, then every change.

Feed text is escaped for markdown by monitor.render (links, images, mentions); links are http(s) only and
cannot end early (:func:`_md_href`). The diffs are monitor.render's markdown diffs.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from monitor import __version__, render
from monitor.headline import headline
from monitor.humanize import plural, stamp
from monitor.models import ChangeContext, DocumentActivity
from monitor.reports.common import (
    HistorySource,
    ReportMeta,
    bare,
    kind_label,
    note,
    period_label,
    report_title,
    totals_label,
    version_label,
)
from monitor.urls import web_link


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
        yield f"| {_cell(render.md_escape(d.feed))} | {_cell(_md_link(d.title, d.link))}{gone} | {a.changes} | " \
              f"{stamp(a.last_at)} |\n"


def _cell(text: str) -> str:
    """Markdown for a table cell: a "|" of the feed's text does not end the cell (GFM's escape)."""
    return text.replace("|", "\\|")


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
