"""What a change is called, everywhere the same: the stored summary line, the report's heading and the
notification title say a new, removed, returned, reverted or changed document exactly as before they came
from one module (monitor.headline). Expected values are written out, never computed by the code under test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.config import loads
from monitor.headline import change_summary, headline
from monitor.messages import Renderer
from monitor.models import ChangeContext, ChangeKind, DocumentDiff, RecordedChange

DIFF = DocumentDiff(sections=(), summary="Our Standards: 1 paragraph changed")
A, C, R = ChangeKind.ADDED, ChangeKind.CHANGED, ChangeKind.REMOVED


@pytest.mark.parametrize(("kind", "diff", "revert_of", "rebaseline", "returned_from", "expected"), [
    (A, None, None, False, None, "new document"),
    (R, None, None, False, None, "removed from the feed"),
    (C, DIFF, None, False, None, "Our Standards: 1 paragraph changed"),
    (C, None, None, False, None, "changed"),
    (C, DIFF, 2, False, None, "reverted to version 2: Our Standards: 1 paragraph changed"),
    (A, None, None, False, 3, "back in the feed after its removal, as it was in v3"),
    (A, DIFF, None, False, 3, "back in the feed after its removal, changed since v3: Our Standards: 1 paragraph "
                              "changed"),
    (A, None, None, True, None, "re-baselined after a configuration change: new document"),
    (C, DIFF, 1, True, None, "re-baselined after a configuration change: reverted to version 1: Our Standards: "
                             "1 paragraph changed"),
])
def test_the_stored_summary_line_of_every_kind_of_change(kind: ChangeKind, diff: DocumentDiff | None,
                                                         revert_of: int | None, rebaseline: bool,
                                                         returned_from: int | None, expected: str) -> None:
    assert change_summary(kind, diff, revert_of, rebaseline, returned_from=returned_from) == expected


def change(kind: ChangeKind, summary: str, *, revert_of: int | None = None,
           from_version: int | None = None) -> RecordedChange:
    return RecordedChange(id=1, feed="k8s", document_id=7, guid="g", link=None, title="Code of Conduct", kind=kind,
                          version=4, from_version=from_version, revert_of=revert_of,
                          detected_at=datetime(2026, 1, 1, tzinfo=UTC), summary=summary, baseline=False)


@pytest.mark.parametrize(("recorded", "expected"), [
    (change(A, "new document"), "New document"),
    (change(R, ""), "Removed"),                                      # no summary: the kind
    (change(C, "reverted to version 2: changed", revert_of=2), "Reverted to version 2: changed"),
    (change(C, "changed", revert_of=2), "Reverted to version 2: changed"),   # a summary without the wording
])
def test_a_report_heading_is_the_summary_and_always_names_a_revert(recorded: RecordedChange, expected: str) -> None:
    assert headline(recorded) == expected


@pytest.mark.parametrize(("recorded", "expected"), [
    (change(A, "new document"), "feedwatch: Code of Conduct was added"),
    (change(A, "back in the feed after its removal, as it was in v3", from_version=3),
     "feedwatch: Code of Conduct is back"),
    (change(R, "removed from the feed"), "feedwatch: Code of Conduct was removed"),
    (change(C, "reverted to version 2: changed", revert_of=2), "feedwatch: Code of Conduct reverted to version 2"),
    (change(C, "changed"), "feedwatch: Code of Conduct changed"),
])
@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_the_default_notification_title_of_every_kind_of_change(recorded: RecordedChange, expected: str,
                                                                fmt: str) -> None:
    settings = loads(f"targets:\n  chat:\n    urls: ['json://127.0.0.1:9/hook']\n    format: {fmt}\n"
                     "feeds:\n  - {name: k8s, url: 'http://127.0.0.1:9/feed.xml', notify: [chat]}\n")
    renderer = Renderer(settings)
    target = settings.targets["chat"]
    variables = renderer.change_variables(ChangeContext(recorded), fmt, 1000)
    assert renderer.message(target, "change", variables).title == expected
