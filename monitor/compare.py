"""Decide what changed in one poll (DESIGN §4). Pure functions over known documents and new items.

- A new document is ``added``. One seen before under the same identity whose state (title, link,
  canonical text) differs is ``changed``; returning to a state among its last few versions is a change
  with ``revert_of`` (flapping is reported as a revert, not as fresh news).
- Feeds are windows: a document missing from a poll is *absent*. Only after ``removal_grace`` consecutive
  successful polls without it is it ``removed``. Coming back unchanged during the grace period is no
  change; coming back after it was reported removed *continues its history*: a new version, kind
  ``added``, which the change record marks as a return (``from_version`` is its last version before).
- A document whose guid changed but which was matched by link keeps its history: its key is updated
  without a reportable change (unless its content changed too).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.models import ChangeKind, Decision, Item, KnownDocument

REVERT_WINDOW = 5   # a return to any of this many latest versions is a revert


def compare(pairs: Sequence[tuple[Item, KnownDocument | None]], known: Sequence[KnownDocument], *,
            removal_grace: int) -> list[Decision]:
    """Decisions for every document that needs a write; unchanged documents produce none."""
    decisions = [d for item, doc in pairs if (d := _present(item, doc)) is not None]
    seen = {doc.id for _, doc in pairs if doc is not None}
    decisions.extend(absences([d for d in known if d.id not in seen], removal_grace=removal_grace))
    return decisions


def _present(item: Item, doc: KnownDocument | None) -> Decision | None:
    if doc is None:
        return Decision(ChangeKind.ADDED, item, None, new_version=True)
    if doc.removed:     # back after its removal: a new version continues its history
        return Decision(ChangeKind.ADDED, item, doc.id, new_version=True)
    if item.state_hash != doc.state_hash:
        return Decision(ChangeKind.CHANGED, item, doc.id, new_version=True, revert_of=_revert_of(item, doc))
    if doc.absent_polls or item.key != doc.key or item.guid != doc.guid:
        return Decision(None, item, doc.id, new_version=False)   # back in the window, or a new guid
    return None


def _revert_of(item: Item, doc: KnownDocument) -> int | None:
    for version, state in doc.recent_states[1:REVERT_WINDOW]:
        if state == item.state_hash:
            return version
    return None


def absences(missing: Sequence[KnownDocument], *, removal_grace: int) -> list[Decision]:
    """Count one more absent poll for each missing document; report removal once the grace is used up."""
    out = []
    for doc in missing:
        if doc.removed:
            continue
        absent = doc.absent_polls + 1
        kind = ChangeKind.REMOVED if absent >= removal_grace else None
        out.append(Decision(kind, None, doc.id, new_version=False, absent_polls=absent))
    return out
