"""Document identity within a feed (DESIGN §4). Pure functions, table-tested in tests/cases/identity.yaml.

1. An item is identified by its guid (RSS ``guid``, Atom ``id``), when it has one that no other item of
   the same poll shares.
2. Otherwise by its link, when no other item of the poll shares it.
3. Otherwise by a hash of its title and canonical text (identical duplicates collapse into one).

Matching against stored documents goes by that key; in addition, an item whose guid is new but whose
link belongs to a stored document that is absent from this poll *is* that document: publishers change
guids (a CMS migration, a permalink scheme) while the page stays where it was. The document keeps its
history and its key is updated; this is recorded, not reported as removed + added.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Sequence

from monitor.models import Item, KnownDocument


def assign_keys(items: Sequence[Item]) -> list[Item]:
    """Give each item its identity key; drop later items whose key repeats (identical duplicates)."""
    guids = Counter(i.guid for i in items if i.guid)
    links = Counter(i.link for i in items if i.link)
    out: list[Item] = []
    seen: set[str] = set()
    for item in items:
        key = item_key(item, guid_unique=bool(item.guid) and guids[item.guid or ""] == 1,
                       link_unique=bool(item.link) and links[item.link or ""] == 1)
        if key not in seen:
            seen.add(key)
            out.append(dataclasses.replace(item, key=key))
    return out


def item_key(item: Item, *, guid_unique: bool = True, link_unique: bool = True) -> str:
    if item.guid and guid_unique:
        return "guid:" + item.guid
    if item.link and link_unique:
        return "link:" + item.link
    digest = hashlib.sha256(item.title.encode() + b"\x00" + item.text_hash).hexdigest()[:32]
    return "hash:" + digest


def match(items: Sequence[Item], known: Sequence[KnownDocument]) -> list[tuple[Item, KnownDocument | None]]:
    """Pair each (keyed) item with the stored document it is, or None for a new document."""
    by_key = {d.key: d for d in known}
    present = {i.key for i in items}
    # Stored documents not seen under their own key this poll, reachable by link for guid changes.
    by_link = {d.link: d for d in known if d.link and d.key not in present and d.key.startswith("guid:")}
    pairs: list[tuple[Item, KnownDocument | None]] = []
    claimed: set[int] = set()
    for item in items:
        doc = by_key.get(item.key)
        if doc is None and item.key.startswith("guid:") and item.link in by_link:
            candidate = by_link[item.link]
            if candidate.id not in claimed:
                doc = candidate
        if doc is not None:
            claimed.add(doc.id)
        pairs.append((item, doc))
    return pairs
