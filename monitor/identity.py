"""Document identity within a feed (DESIGN §4). Pure functions, table-tested in tests/cases/identity.yaml.

Keys. An item's key is the first of these that no other item of the same poll shares:

1. ``guid:`` its guid (RSS ``guid``, Atom ``id``);
2. ``link:`` its link;
3. ``hash:`` a hash of its title and canonical text (identical duplicates collapse into one).

Matching an item to a stored document goes in three rounds; each round only sees the items and documents
that the rounds before it left unpaired, and never pairs anything ambiguously:

1. **Same key.**
2. **Same link**, compared after :func:`normalize_link` (``http``/``https``, host case, default port,
   trailing slash, ``utm_*`` and other tracking parameters, parameter order). The link must be *unique on
   both sides* — held by exactly one item of the poll and by exactly one stored document of the feed — and
   the pair must be *confirmed*: the same title, or the same canonical text. A feed whose items share one
   link (podcast episodes linking the show, a sponsor post and an article linking the sponsor) never pairs
   by that link, so a guid change cannot turn one post into another.
3. **Same content**: the same title and the same canonical text, unique on both sides.

A document paired in round 2 or 3 keeps its history and takes the item's key (a *rename*), recorded
silently — not reported as removed + added. This is what carries a document across a change of key kind:
RSS items without a guid (keyed by link, or by content when links are shared) re-published as Atom
entries with ids, and back; and across a guid change (a CMS migration) while the page stays where it was.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec.structs

from monitor.models import Item, KnownDocument

# Query parameters that say where a reader came from, never which page it is.
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_hsenc",
                             "_hsmi", "igshid", "ref_src"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


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
            out.append(msgspec.structs.replace(item, key=key))
    return out


def item_key(item: Item, *, guid_unique: bool = True, link_unique: bool = True) -> str:
    if item.guid and guid_unique:
        return "guid:" + item.guid
    if item.link and link_unique:
        return "link:" + item.link
    return content_key(item.title, item.text_hash)


def content_key(title: str, text_hash: bytes) -> str:
    """The ``hash:`` key: title and canonical text."""
    return "hash:" + hashlib.sha256(title.encode() + b"\x00" + text_hash).hexdigest()[:32]


def normalize_link(url: str) -> str:
    """A link as compared by the link fallback: the same page however the feed spells its URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS)
    scheme = "http" if scheme == "https" else scheme
    return urlunsplit((scheme, host, parts.path.rstrip("/"), urlencode(query), parts.fragment))


def match(items: Sequence[Item], known: Sequence[KnownDocument]) -> list[tuple[Item, KnownDocument | None]]:
    """Pair each (keyed) item with the stored document it is, or None for a new document."""
    by_key = {d.key: d for d in known}
    paired: dict[int, KnownDocument] = {}       # index into items -> document
    for n, item in enumerate(items):
        doc = by_key.get(item.key)
        if doc is not None:
            paired[n] = doc
    taken = {d.id for d in paired.values()}
    if len(paired) == len(items) or len(taken) == len(known):
        return [(item, paired.get(n)) for n, item in enumerate(items)]    # nothing left to pair otherwise
    link_counts = Counter(normalize_link(i.link) for i in items if i.link)
    doc_link_counts = Counter(normalize_link(d.link) for d in known if d.link)

    def unique_link(link: str | None, counts: Counter[str], other: Counter[str]) -> str | None:
        norm = normalize_link(link) if link else None
        return norm if norm and counts[norm] == 1 and other[norm] == 1 else None

    _pair_unique(items, known, paired,
                 lambda i: unique_link(i.link, link_counts, doc_link_counts),
                 lambda d: unique_link(d.link, doc_link_counts, link_counts),
                 confirm=_confirmed)
    _pair_unique(items, known, paired, lambda i: content_key(i.title, i.text_hash),
                 lambda d: content_key(d.title, d.text_hash) if d.text_hash is not None else None,
                 confirm=lambda i, d: True)
    return [(item, paired.get(n)) for n, item in enumerate(items)]


K = TypeVar("K", bound=Hashable)


def _pair_unique(items: Sequence[Item], known: Sequence[KnownDocument], paired: dict[int, KnownDocument],
                 item_value: Callable[[Item], K | None], doc_value: Callable[[KnownDocument], K | None], *,
                 confirm: Callable[[Item, KnownDocument], bool]) -> None:
    """Pair the unpaired items and documents whose value is unique among the unpaired on both sides."""
    taken = {d.id for d in paired.values()}
    free_items = {n: v for n, i in enumerate(items) if n not in paired and (v := item_value(i)) is not None}
    free_docs = [(d, v) for d in known if d.id not in taken and (v := doc_value(d)) is not None]
    item_counts = Counter(free_items.values())
    doc_by_value: dict[K, list[KnownDocument]] = {}
    for d, v in free_docs:
        doc_by_value.setdefault(v, []).append(d)
    for n, value in free_items.items():
        docs = doc_by_value.get(value, [])
        if item_counts[value] == 1 and len(docs) == 1 and confirm(items[n], docs[0]):
            paired[n] = docs[0]


def _confirmed(item: Item, doc: KnownDocument) -> bool:
    """A link pairing stands when the title or the canonical text is the same."""
    same_title = bool(item.title) and item.title.casefold() == doc.title.casefold()
    return same_title or item.text_hash == doc.text_hash
