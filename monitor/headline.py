"""The words that say what happened to a document, in one place for every output.

- :func:`change_summary`: the summary line recorded with a change (storage stores it as given; ``history``,
  ``run --json``, history files and message templates show it);
- :func:`headline`: a report's heading for a change, made from its recorded summary;
- :func:`happened`: what a notification title says after the document's title (the ``happened`` template
  variable of change messages).

All three say a revert the same way, :func:`reverted`. Pure functions.
"""

from __future__ import annotations

from monitor.models import ChangeKind, DocumentDiff, RecordedChange


def reverted(version: int) -> str:
    return f"reverted to version {version}"


def change_summary(kind: ChangeKind, diff: DocumentDiff | None, revert_of: int | None, rebaseline: bool, *,
                   returned_from: int | None = None) -> str:
    """The summary line of a change: a document back after its removal (`returned_from`: its last version
    before), new, removed, or changed (the diff's own summary, after a revert's wording)."""
    if kind is ChangeKind.ADDED and returned_from is not None:
        text = "back in the feed after its removal, " + (
            f"changed since v{returned_from}: {diff.summary}" if diff else f"as it was in v{returned_from}")
    elif kind is ChangeKind.ADDED:
        text = "new document"
    elif kind is ChangeKind.REMOVED:
        text = "removed from the feed"
    else:
        text = diff.summary if diff else "changed"
        if revert_of is not None:
            text = f"{reverted(revert_of)}: {text}"
    return f"re-baselined after a configuration change: {text}" if rebaseline else text


def headline(change: RecordedChange) -> str:
    """The change's summary line, capitalised; a revert always says which version it returned to (a summary
    imported from elsewhere may not)."""
    text = change.summary or change.kind.value
    wording = reverted(change.revert_of) if change.revert_of is not None else None
    if wording is not None and wording not in text:
        text = f"{wording}: {text}"
    return text[:1].upper() + text[1:]


def happened(change: RecordedChange) -> str:
    """"is back", "was added", "was removed", "reverted to version N" or "changed"."""
    if change.returned:
        return "is back"
    if change.kind is ChangeKind.ADDED:
        return "was added"
    if change.kind is ChangeKind.REMOVED:
        return "was removed"
    return reverted(change.revert_of) if change.revert_of else "changed"
