"""Histories recorded at chosen times through the real stages and the real store.

`feedwatch run` stamps changes with the wall clock; report tests need changes at known times (periods,
ages) and in the thousands (streaming), and bench/report_bench.py needs 10,000 of them. `record` does
what one poll does after parsing — identity, compare, diff, Store.record_poll — with `now` chosen by the
caller, so the stored rows are exactly what feedwatch itself would store.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor import identity, normalize
from monitor.compare import compare
from monitor.diff import Version, diff_versions
from monitor.models import ChangeKind, DocumentUpdate, Item, PollRecord, PollStatus, RecordedChange
from storage.store import Store

OWNER = "tests:history-data"


@dataclass(frozen=True)
class Page:
    """One document as a feed item shows it in one poll."""

    guid: str
    title: str
    text: str                      # canonical text: "# heading" lines, paragraphs, "- item" lines
    link: str | None = None


def item(page: Page) -> Item:
    text_hash = hashlib.sha256(page.text.encode()).digest()
    raw = json.dumps({"guid": page.guid, "title": page.title, "link": page.link}).encode()
    return Item(key="", guid=page.guid, link=page.link, title=page.title, text=page.text, raw=raw,
                text_hash=text_hash, state_hash=normalize.state_hash(page.title, page.link, text_hash))


def record(store: Store, feed: str, now: datetime, pages: Sequence[Page], *,
           removal_grace: int = 1) -> list[RecordedChange]:
    """Record one successful poll of `feed` at `now` that found exactly `pages`."""
    feed_id = store.sync_feeds([(feed, f"http://127.0.0.1/{feed}.xml")], now=now)[feed]
    store.make_due([feed_id], now=now)
    [state] = store.claim_due_feeds([feed_id], OWNER, limit=1, lease=300, now=now)
    known = store.known_documents(feed_id)
    items = identity.assign_keys([item(p) for p in pages])
    decisions = compare(identity.match(items, known), known, removal_grace=removal_grace)
    changed = [d.document_id for d in decisions if d.kind is ChangeKind.CHANGED and d.document_id]
    previous = store.latest_versions(changed) if changed else {}
    updates = []
    for d in decisions:
        old = previous.get(d.document_id or 0)
        diff = None
        if old is not None and d.item is not None and d.kind is ChangeKind.CHANGED:
            diff = diff_versions(Version(old.title, old.link, old.text or ""),
                                 Version(d.item.title, d.item.link, d.item.text))
        updates.append(DocumentUpdate(d, diff))
    return store.record_poll(PollRecord(
        feed_id=feed_id, feed=feed, owner=OWNER, now=now, status=PollStatus.OK, next_due_at=now,
        updates=tuple(updates), baseline=not state.baseline_done))


WORDS = ("community", "conduct", "mentoring", "review", "release", "policy", "steering", "committee", "values",
         "contributor", "meeting", "election", "charter", "security", "process", "incident", "report", "docs")


def page_text(doc: int, version: int, *, sections: int = 4, seed: int = 7) -> str:
    """A document of a few sections whose words drift a little from one version to the next."""
    lines = [f"# Document {doc}"]
    for s in range(sections):
        rng = random.Random(f"{seed}:{doc}:{s}")
        words = [rng.choice(WORDS) for _ in range(30)]
        if s == version % sections:             # this version edits one section
            edit = random.Random(f"{seed}:{doc}:{version}")
            for _ in range(3):
                words[edit.randrange(len(words))] = edit.choice(WORDS).upper()
        lines += [f"## Section {s}", " ".join(words).capitalize() + ".", f"- item {s} of document {doc}"]
    return "\n".join(lines)
