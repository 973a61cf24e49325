"""What every report format shares: the source of history it reads, what a report says about itself,
and the words (titles, periods, kinds, versions, notes) each format writes in its own syntax; a change's
headline is monitor.headline's, as in the notifications.

The formats (monitor.reports.html, .markdown, .atom) import this module and nothing imports them back
but the package's dispatch table (monitor.reports).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec.structs

from monitor import render
from monitor.errors import UsageError
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


def check_scope(scope: ReportScope, known_feeds: list[str], document: DocumentInfo | None) -> None:
    """UsageError for a --feed the database does not know, or a --document outside the --feed(s)."""
    for name in scope.feeds:
        if name not in known_feeds:
            raise UsageError(f"report: --feed {name}: no such feed in the database "
                             f"(feeds: {', '.join(known_feeds) or 'none yet'})")
    if document is not None and scope.feeds and document.feed not in scope.feeds:
        raise UsageError(f"report: document {document.id} is in feed {document.feed}, not in "
                         f"{', '.join(scope.feeds)}")


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
    return msgspec.structs.replace(diff, summary="")
