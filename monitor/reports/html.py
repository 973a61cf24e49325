"""The HTML report: one self-contained page to attach to an email or publish as a static file.

Self-contained and inert: the stylesheet (report.css) is inlined, the timelines are inline SVG, nothing is
loaded from anywhere (it works from ``file://``) and there is no JavaScript. A Content-Security-Policy
``<meta>`` forbids scripts, frames, forms and every remote load, as a second line of defence behind the
escaping: every character that came from a feed goes through :func:`html.escape`, links only ever
point to http(s) URLs, and the diffs are drawn by monitor.render.render_html, which escapes too.

Layout: header; overview (per feed, per document: changes in the period, last change, a timeline of when
it changed, all documents on one time axis); then per document, newest first, each change with its
summary line, kind, versions, time and section-aware diff.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path

from monitor import __version__, render
from monitor.canonical import parse_canonical
from monitor.headline import headline
from monitor.humanize import iso_z, plural, stamp, zone_name
from monitor.models import BlockKind, ChangeContext, DocumentActivity
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

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'")
KINDS = ("changed", "reverted", "added", "removed")     # timeline colour priority, lowest first
BINS = 96                                                # timeline columns
WIDTH, HEIGHT, BASE = 288, 30, 24                        # timeline SVG geometry (viewBox units)
_CSS = Path(__file__).with_name("report.css")


def e(text: str) -> str:
    """Feed text for the page: HTML-escaped, its control characters shown (the page may go to a terminal)."""
    return html.escape(render.inert(text))


def render_page(source: HistorySource, meta: ReportMeta) -> Iterator[str]:
    """The page, chunk by chunk: the overview needs one light pass over the changes (for the timelines),
    then each document's changes are read, with their diffs, only as they are written."""
    activity = source.activity()
    axis = Axis.of(meta, activity)
    timelines = bin_changes(source.changes(diffs=False), axis)
    title = report_title(meta, activity)
    yield _head(title, meta, activity)
    yield _overview(activity, timelines, axis)
    for a in activity:
        if a.changes:
            yield _document_head(a)
            for ctx in source.changes(a.document.id):
                yield _change(ctx)
            yield "</section>\n"
    yield _foot(meta)


# ------------------------------------------------------------------------------------------------ timeline


@dataclass(frozen=True, slots=True)
class Axis:
    """The time span every timeline of a report shares: the period, or the changes' own span."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, meta: ReportMeta, activity: list[DocumentActivity]) -> Axis:
        firsts = [a.first_at for a in activity if a.first_at]
        start = meta.scope.since or (min(firsts) if firsts else meta.generated_at)
        end = meta.scope.until or max([meta.generated_at, *(a.last_at for a in activity if a.last_at)])
        return cls(start, max(end, start))

    def column(self, t: datetime) -> int:
        span = (self.end - self.start).total_seconds()
        if span <= 0:
            return BINS // 2
        return min(BINS - 1, max(0, int((t - self.start).total_seconds() / span * BINS)))

    def label(self, t: datetime) -> str:
        """Dates for long spans, minutes for shorter ones, seconds within an hour."""
        span = self.end - self.start
        fmt = "%Y-%m-%d" if span > timedelta(days=2) else "%Y-%m-%d %H:%M" if span > timedelta(hours=1) else \
            "%H:%M:%S"
        return t.strftime(fmt)


@dataclass(slots=True)
class Bin:
    count: int
    first: datetime
    last: datetime
    kind: str


Timeline = dict[int, Bin]      # a document's changes by axis column (only columns with changes)


def bin_changes(changes: Iterable[ChangeContext], axis: Axis) -> dict[int, Timeline]:
    """Per document, its changes counted into BINS columns of the axis: memory grows with documents,
    not with changes."""
    out: dict[int, Timeline] = {}
    for ctx in changes:
        c = ctx.change
        bins = out.setdefault(c.document_id, {})
        col, kind = axis.column(c.detected_at), kind_label(c)
        b = bins.get(col)
        if b is None:
            bins[col] = Bin(1, c.detected_at, c.detected_at, kind)
            continue
        b.count += 1
        b.first, b.last = min(b.first, c.detected_at), max(b.last, c.detected_at)
        if KINDS.index(kind) > KINDS.index(b.kind):
            b.kind = kind
    return out


def timeline_svg(timeline: Timeline | None, title: str, changes: int) -> str:
    step = WIDTH / BINS
    label = f"{title}: {plural(changes, 'change')} on the report's time axis"
    parts = [f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{e(label)}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<line class="axis" x1="0" y1="{BASE + 0.5}" x2="{WIDTH}" y2="{BASE + 0.5}"/>']
    for col, b in sorted((timeline or {}).items()):
        height = min(BASE - 2, 9 + 4 * (b.count - 1))
        tip = f"{b.kind}, {stamp(b.first)}" if b.count == 1 else \
            f"{b.count} changes, {stamp(b.first)} \u2013 {stamp(b.last)}"
        parts.append(f'<rect class="t-{b.kind}" x="{col * step:.1f}" y="{BASE - height}" width="{step - 0.6:.1f}" '
                     f'height="{height}" rx="0.8"><title>{e(tip)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------------------------ page


def _head(title: str, meta: ReportMeta, activity: list[DocumentActivity]) -> str:
    published = web_link(meta.report_url)
    canonical = f'<link rel="canonical" href="{e(published)}">\n' if published else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="feedwatch {__version__}">
<title>{e(title)} \u2014 feedwatch</title>
{canonical}<style>
{_CSS.read_text(encoding="utf-8")}</style>
</head>
<body>
<div class="page">
<header class="top">
<p class="eyebrow">feedwatch report</p>
<h1>{e(title)}</h1>
<p class="period">{e(period_label(meta))} \u00b7 {e(totals_label(activity))}</p>
</header>
<main>
"""


def _overview(activity: list[DocumentActivity], timelines: dict[int, Timeline], axis: Axis) -> str:
    parts = ['<section class="overview" aria-labelledby="overview">\n<h2 id="overview">Overview</h2>\n']
    if not activity:
        parts.append('<p class="empty">No documents in this period.</p>\n</section>\n')
        return "".join(parts)
    if not any(a.changes for a in activity):
        parts.append('<p class="empty">Nothing changed in this period.</p>\n')
    parts.append('<p class="legend">' + "".join(
        f'<span class="key t-{k}"></span>{k} ' for k in ("added", "changed", "reverted", "removed")) + "</p>\n")
    parts.append(f'<table class="summary">\n<thead><tr><th scope="col">Document</th>'
                 f'<th scope="col" class="num">Changes</th><th scope="col" class="last">Last change</th>'
                 f'<th scope="col" class="tl"><span>{e(axis.label(axis.start))}</span>'
                 f'<span>{e(axis.label(axis.end))}</span></th></tr></thead>\n')
    for feed, rows in groupby(activity, key=lambda a: a.document.feed):
        docs = list(rows)
        total = sum(a.changes for a in docs)
        parts.append(f'<tbody>\n<tr class="feed"><th colspan="4" scope="colgroup">{e(feed)} '
                     f'<span class="muted">\u00b7 {plural(total, "change")}</span></th></tr>\n')
        parts.extend(_overview_row(a, timelines.get(a.document.id)) for a in docs)
        parts.append("</tbody>\n")
    parts.append("</table>\n</section>\n")
    return "".join(parts)


def _overview_row(a: DocumentActivity, timeline: Timeline | None) -> str:
    d = a.document
    name = f'<a href="#doc-{d.id}">{e(d.title)}</a>' if a.changes else e(d.title)
    gone = ' <span class="tag">removed</span>' if d.removed else ""
    last = f'<time datetime="{iso_z(a.last_at)}">{stamp(a.last_at)}</time>' if a.last_at else "\u2013"
    return (f'<tr><td class="doc">{name}{gone}</td><td class="num">{a.changes}</td><td class="last">{last}</td>'
            f'<td class="tl">{timeline_svg(timeline, d.title, a.changes)}</td></tr>\n')


def _document_head(a: DocumentActivity) -> str:
    d = a.document
    link = web_link(d.link)
    source = (f' \u00b7 <a class="source" href="{e(link)}" rel="noopener noreferrer nofollow">{e(link)}</a>'
              if link else "")
    return (f'<section class="document" id="doc-{d.id}" aria-labelledby="doc-{d.id}-title">\n'
            f'<h2 id="doc-{d.id}-title">{e(d.title)}</h2>\n'
            f'<p class="doc-meta">{e(d.feed)} \u00b7 {plural(a.changes, "change")} in the '
            f'period{source}</p>\n')


def _change(ctx: ChangeContext) -> str:
    c = ctx.change
    kind = kind_label(c)
    parts = [f'<article class="change k-{kind}" id="change-{c.id}">\n<header>\n'
             f'<p class="when"><span class="badge k-{kind}">{kind}</span> '
             f'<span class="ver">{e(version_label(c))}</span> '
             f'<time datetime="{iso_z(c.detected_at)}">{stamp(c.detected_at)}</time> '
             f'<a class="permalink" href="#change-{c.id}" aria-label="link to this change">#</a></p>\n'
             f'<h3>{e(headline(c))}</h3>\n</header>\n', change_body(ctx), "</article>\n"]
    return "".join(parts)


def change_body(ctx: ChangeContext) -> str:
    """What a change says below its heading (also the Atom entries' content): a note for added and removed
    documents, the opening lines of an added one, the section-aware diff of a changed one."""
    parts = []
    text = note(ctx)
    if text:
        parts.append(f'<p class="note">{e(text)}</p>\n')
    if ctx.excerpt:
        parts.append(f'<blockquote class="opening">{opening_html(ctx.excerpt)}</blockquote>\n')
    if ctx.change.diff is not None:
        parts.append(f'<div class="diff">{render.render_html(bare(ctx.change.diff))}</div>\n')
    return "".join(parts)


def opening_html(text: str) -> str:
    """The opening lines of a new document (canonical text) as headings, list items and paragraphs."""
    out = []
    for block in parse_canonical(text):
        if block.kind is BlockKind.HEADING:
            out.append(f'<p class="h">{e(block.text)}</p>')
        elif block.kind is BlockKind.ITEM:
            out.append(f'<p class="li" style="margin-left:{block.level - 1}em">\u2022 {e(block.text)}</p>')
        else:
            out.append(f"<p>{e(block.text)}</p>")
    return "".join(out)


def _foot(meta: ReportMeta) -> str:
    return (f'</main>\n<footer class="foot">Generated {stamp(meta.generated_at)} by feedwatch {__version__}. '
            f"Times are in {zone_name(meta.generated_at)}. "
            "Text from the feeds is shown as text: nothing in this page runs or loads anything."
            "</footer>\n</div>\n</body>\n</html>\n")

