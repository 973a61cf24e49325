"""History reports: what changed in a period, as one self-contained HTML page, markdown, or an Atom feed.

A report reads a :class:`~monitor.reports.common.HistorySource` (storage.history.History) and never the
database itself:

1. ``activity()``: one row per document with its number of changes in the period (the overview), and a
   light pass over ``changes(diffs=False)`` for the HTML timelines;
2. ``changes(document_id)`` per document (HTML, markdown) or ``changes()`` over all (Atom), streamed newest
   first with their stored diffs: each change is rendered and written before the next one is read, so a
   report over 10,000+ changes never holds the history in memory.

Renderers are generators of text chunks, one module per format, picked from one table (:data:`RENDERERS`);
what the formats share is in monitor.reports.common. The command writes the chunks to stdout or to a file
that appears atomically (monitor.files). The diffs themselves are drawn by monitor.render. Feed content is
untrusted: the HTML page escapes every character of it and forbids scripts and remote loads in its
Content-Security-Policy; markdown escapes its syntax.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from monitor.errors import UsageError
from monitor.reports import atom, html, markdown
from monitor.reports.common import HistorySource, ReportMeta

Renderer = Callable[[HistorySource, ReportMeta], Iterator[str]]
RENDERERS: dict[str, Renderer] = {"html": html.render_page, "markdown": markdown.render_markdown,
                                  "atom": atom.render_feed}
FORMATS = tuple(RENDERERS)


def render_report(fmt: str, source: HistorySource, meta: ReportMeta) -> Iterator[str]:
    """The report in `fmt` (html, markdown or atom), as chunks of text."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise UsageError(f"report: unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    return renderer(source, meta)
