"""`run --json` is streamed (monitor.runjson): its bytes are exactly json.dump's of the whole document."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

from monitor import runjson
from monitor.models import (
    ChangeKind,
    DeliveryCounts,
    DiffOp,
    DocumentDiff,
    FeedOutcome,
    Op,
    PollStatus,
    RecordedChange,
    SectionDiff,
)

AT = datetime(2026, 12, 1, tzinfo=UTC)


def change(feed: str, n: int, kind: ChangeKind = ChangeKind.ADDED, **kw: Any) -> RecordedChange:
    fields: dict[str, Any] = {
        "id": n, "feed": feed, "document_id": n, "guid": f"g{n}", "link": None, "title": f"T\u00e9 \"{n}\"\n",
        "kind": kind, "version": 1, "from_version": None, "revert_of": None, "detected_at": AT,
        "summary": "new document", "baseline": False, **kw}
    return RecordedChange(**fields)


def streamed(outcomes: list[FeedOutcome], deliveries: DeliveryCounts | None = None,
             arrival: list[FeedOutcome] | None = None) -> str:
    """The document as `run --json` writes it, the outcomes arriving in `arrival` order."""
    out = io.StringIO()
    with runjson.ChangeSpool() as spool:
        for o in arrival or outcomes:
            spool.add(o)
        runjson.write(out, [o.counted() for o in outcomes], spool, deliveries or DeliveryCounts())
    return out.getvalue()


def dumped(document: dict[str, Any]) -> str:
    """What `run --json` printed when it held the whole document: json.dump, indent 2, then a newline."""
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


NOTHING = {"sent": 0, "failed": 0, "pending": 0}


def test_a_run_that_polled_nothing_prints_empty_lists() -> None:
    assert streamed([]) == dumped({"feeds": [], "changes": [], "deliveries": NOTHING})


def test_feeds_without_changes_print_an_empty_change_list() -> None:
    outcomes = [FeedOutcome("a", PollStatus.NOT_MODIFIED, documents=3),
                FeedOutcome("b", PollStatus.ERROR, error="fetch: b: HTTP 500", page_errors=("p1", "p2"))]
    assert streamed(outcomes, DeliveryCounts(sent=2, failed=1, pending=3)) == dumped({
        "feeds": [{"name": "a", "status": "not_modified", "error": None, "documents": 3},
                  {"name": "b", "status": "error", "error": "fetch: b: HTTP 500", "documents": 0,
                   "page_errors": ["p1", "p2"]}],
        "changes": [], "deliveries": {"sent": 2, "failed": 1, "pending": 3}})


def test_changes_print_in_feed_order_whatever_order_the_outcomes_arrived_in() -> None:
    diff = DocumentDiff(sections=(SectionDiff(("Intro", "Why"), (DiffOp(Op.INSERT, "new words"),)),),
                        inserted=("new words",), deleted=("old\u2028words",))
    outcomes = [
        FeedOutcome("a", PollStatus.OK, documents=2, changes=(change("a", 1, baseline=True),
                                                              change("a", 2, baseline=True))),
        FeedOutcome("b", PollStatus.OK, documents=1),
        FeedOutcome("c", PollStatus.OK, documents=5, changes=(
            change("c", 3, ChangeKind.CHANGED, version=4, from_version=3, revert_of=2, diff=diff,
                   summary="1 section changed"),
            change("c", 4, from_version=2, guid=None, link="https://example.org/4"),
            change("c", 5, ChangeKind.REMOVED, guid=None, version=2, summary="removed"))),
    ]
    expected = dumped({
        "feeds": [{"name": n, "status": "ok", "error": None, "documents": d} for n, d in (("a", 2), ("b", 1),
                                                                                         ("c", 5))],
        "changes": [
            {"feed": "a", "document": "g1", "title": "T\u00e9 \"1\"\n", "kind": "added", "version": 1,
             "sections": [], "inserted": [], "deleted": [], "summary": "new document", "baseline": True},
            {"feed": "a", "document": "g2", "title": "T\u00e9 \"2\"\n", "kind": "added", "version": 1,
             "sections": [], "inserted": [], "deleted": [], "summary": "new document", "baseline": True},
            {"feed": "c", "document": "g3", "title": "T\u00e9 \"3\"\n", "kind": "changed", "version": 4,
             "sections": ["Intro > Why"], "inserted": ["new words"], "deleted": ["old\u2028words"],
             "summary": "1 section changed", "revert_of": 2},
            {"feed": "c", "document": "https://example.org/4", "title": "T\u00e9 \"4\"\n", "kind": "added",
             "version": 1, "sections": [], "inserted": [], "deleted": [], "summary": "new document",
             "returned": True},
            {"feed": "c", "document": "5", "title": "T\u00e9 \"5\"\n", "kind": "removed", "version": 2,
             "sections": [], "inserted": [], "deleted": [], "summary": "removed"},
        ],
        "deliveries": NOTHING})
    assert streamed(outcomes) == expected
    assert streamed(outcomes, arrival=[outcomes[2], outcomes[1], outcomes[0]]) == expected
