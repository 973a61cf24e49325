"""Differential property: the RSS 2.0 and the Atom 1.0 rendering of the same items are the same documents.

For generated feeds (items with and without guids, with unique, shared or no links), polling one rendering
after the other — either way round — pairs every stored document with its item and reports no change.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.compare import compare
from monitor.identity import assign_keys, match
from monitor.models import FetchResult, Item, KnownDocument, Validators
from monitor.normalize import normalize_item
from monitor.parse import parse

SHARED = "https://show.example/"


@dataclass(frozen=True)
class Spec:
    title: str
    body: str
    guid: str | None
    link: str | None


@st.composite
def feeds(draw: st.DrawFn) -> list[Spec]:
    words = st.sampled_from(["alpha", "beta", "gamma", "delta", "policy", "mentor", "café", "x<y", "a&b"])
    count = draw(st.integers(min_value=1, max_value=6))
    specs = []
    for n in range(count):
        link_kind = draw(st.sampled_from(["unique", "shared", "none"]))
        link = {"unique": f"https://e.org/posts/{n}", "shared": SHARED, "none": None}[link_kind]
        guid = f"urn:example:{n}" if draw(st.booleans()) else None
        body = " ".join(draw(st.lists(words, min_size=0, max_size=6)))
        specs.append(Spec(f"Post {n} {draw(words)}", body, guid, link))
    return specs


def rss(specs: list[Spec]) -> bytes:
    items = []
    for s in specs:
        guid = f'<guid isPermaLink="false">{s.guid}</guid>' if s.guid else ""
        link = f"<link>{html.escape(s.link)}</link>" if s.link else ""
        body = html.escape(f"<p>{html.escape(s.body)}</p>")
        items.append(f"<item><title>{html.escape(s.title)}</title>{link}{guid}<description>{body}</description>"
                     "<pubDate>Tue, 24 Nov 2026 10:00:00 +0000</pubDate></item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>f</title>'
            f'<link>https://e.org/</link>{"".join(items)}</channel></rss>').encode()


def atom(specs: list[Spec]) -> bytes:
    entries = []
    for n, s in enumerate(specs):
        entry_id = s.guid or s.link or f"tag:e.org,2026:{n}"       # permalink ids where RSS had no guid
        link = f'<link rel="alternate" href="{html.escape(s.link)}"/>' if s.link else ""
        body = html.escape(f"<p>{html.escape(s.body)}</p>")
        entries.append(f"<entry><id>{html.escape(entry_id)}</id><title>{html.escape(s.title)}</title>{link}"
                       f'<updated>2026-11-24T10:00:00Z</updated><content type="html">{body}</content></entry>')
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>f</title>'
            '<id>https://e.org/</id><updated>2026-11-24T10:00:00Z</updated>'
            f'{"".join(entries)}</feed>').encode()


def poll(body: bytes) -> list[Item]:
    feed = parse("f", FetchResult("https://e.org/feed", 200, body, None, Validators()))
    return assign_keys([normalize_item(p, base="https://e.org/feed") for p in feed.items])


def stored(items: list[Item]) -> list[KnownDocument]:
    return [KnownDocument(id=n, key=i.key, guid=i.guid, link=i.link, latest_version=1, state_hash=i.state_hash,
                          recent_states=((1, i.state_hash),), title=i.title, text_hash=i.text_hash)
            for n, i in enumerate(items, start=1)]


@settings(max_examples=100, deadline=None)
@given(feeds(), st.booleans())
def test_rss_and_atom_renderings_are_the_same_documents(specs: list[Spec], rss_first: bool) -> None:
    first, second = (rss(specs), atom(specs)) if rss_first else (atom(specs), rss(specs))
    before, after = poll(first), poll(second)
    assert len(before) == len(after) == len(specs)
    known = stored(before)
    pairs = match(after, known)
    assert all(doc is not None for _, doc in pairs)                           # nothing new
    assert sorted(doc.id for _, doc in pairs if doc) == [d.id for d in known]  # nothing left behind
    for item, doc in pairs:
        assert doc is not None and (item.title, item.text_hash) == (doc.title, doc.text_hash)
    assert [d.kind for d in compare(pairs, known, removal_grace=1)
            if d.kind is not None or d.new_version] == []                        # renames only, silent
