"""An item whose raw form is its document's latest stored one is not normalised again (monitor.poll).

Each case polls the same sequence of feed bodies into two databases, once as `run` does and once with
the shortcut switched off (every item normalised), and requires the same history: documents, versions
(titles, links, text, raw and state hashes) and change records (kinds, summaries, diffs). Normalisations
are counted, so the cases also show the work is skipped where it should be and done where it must be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor import config, cycle, poll
from monitor.models import ParsedItem
from storage.schema import Blob, Change, Document, Version
from storage.store import Store
from tests.helpers import corpus_steps, write_config


def history(store: Store) -> dict[str, Any]:
    """Everything a poll writes about documents, without ids and times."""
    with store.engine.connect() as conn:
        keys = {r.id: r.key for r in conn.execute(select(Document.c.id, Document.c.key))}
        texts = {r.hash: r.data for r in conn.execute(select(Blob.c.hash, Blob.c.data))}
        return {
            "documents": sorted((r.key, r.guid, r.link, r.title, r.latest_version, r.state_hash, r.absent_polls,
                                 r.removed_at is not None) for r in conn.execute(select(Document))),
            "versions": sorted((keys[r.document_id], r.number, r.title, r.link, r.text_hash, r.raw_hash,
                                r.state_hash) for r in conn.execute(select(Version))),
            "changes": sorted((keys[r.document_id], r.kind, r.version, r.from_version, r.revert_of, r.title,
                               r.summary, r.diff_hash) for r in conn.execute(select(Change))),
            "blobs": len(texts),
        }


def replay(tmp: Path, bodies: Sequence[bytes], monkeypatch: pytest.MonkeyPatch, *, skip: bool,
           options: Sequence[str] = ()) -> tuple[dict[str, Any], list[int]]:
    """Poll `bodies` one after the other (the options list may change the feed's settings per body:
    one line of YAML or ''); the history and the normalisations per poll."""
    feed = tmp / "feed.xml"
    count = [0]
    normalize = poll.normalize_item

    def counted(item: ParsedItem, **kw: Any) -> Any:
        count[0] += 1
        return normalize(item, **kw)

    monkeypatch.setattr(poll, "normalize_item", counted)
    if not skip:
        monkeypatch.setattr(poll.Poller, "_stored_texts", staticmethod(lambda *a: {}))
    per_poll = []
    for n, body in enumerate(bodies):
        feed.write_bytes(body)
        option = options[n] if options else ""
        settings = config.load(write_config(tmp / "feedwatch.yaml", f"database: sqlite:///{tmp / 'fw.db'}\n"
                                            f"feeds:\n  - name: f\n    url: {feed}\n{option}"))
        store = Store.open(settings.database_url)
        before = count[0]
        outcomes = asyncio.run(cycle.poll_due(store, settings, force=True))
        assert [o.error for o in outcomes] == [None]
        per_poll.append(count[0] - before)
        if n == len(bodies) - 1:
            result = history(store)
        store.close()
    monkeypatch.undo()
    return result, per_poll


def both(tmp: Path, bodies: Sequence[bytes], monkeypatch: pytest.MonkeyPatch,
         options: Sequence[str] = ()) -> list[int]:
    """Replay with and without the shortcut; require the same history; the normalisations with it."""
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    fast, counts = replay(tmp / "a", bodies, monkeypatch, skip=True, options=options)
    slow, full = replay(tmp / "b", bodies, monkeypatch, skip=False, options=options)
    assert fast == slow
    assert full == [len(_items(b)) for b in bodies]     # the reference normalised everything
    return counts


def _items(body: bytes) -> list[str]:
    return body.decode().split("<item>")[1:] or body.decode().split("<entry>")[1:]


def feed(*items: tuple[str, str, str]) -> bytes:
    """RSS 2.0 of (guid, title, text) items."""
    body = "".join(f"<item><guid>{g}</guid><title>{t}</title><link>https://example.org/{g}</link>"
                   f"<description>&lt;h2&gt;{t}&lt;/h2&gt;&lt;p&gt;{x}&lt;/p&gt;</description></item>"
                   for g, t, x in items)
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{body}</channel></rss>".encode()


ITEMS = [(f"g{n}", f"Title {n}", f"Text of item {n}.") for n in range(40)]


def test_the_replay_corpus_gives_the_same_history_and_normalises_only_what_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = [p.read_bytes() for p in corpus_steps()]
    counts = both(tmp_path, bodies, monkeypatch)
    assert counts[0] == len(_items(bodies[0]))
    # Every later step edits one item (most of them visibly). An item whose markup alone changed keeps its
    # latest version, whose raw form is then the old one: it is normalised again until its text changes.
    assert sum(counts[1:]) < sum(len(_items(b)) for b in bodies[1:]) / 2


def test_one_changed_item_is_the_only_one_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edited = [*ITEMS[:7], ("g7", "Title 7", "Text of item 7, edited."), *ITEMS[8:]]
    added = [*edited, ("new", "New", "A new item.")]
    assert both(tmp_path, [feed(*ITEMS), feed(*edited), feed(*added), feed(*reversed(added))],
                monkeypatch) == [40, 1, 1, 0]


def test_a_title_read_differently_from_the_same_raw_item_is_a_change_with_its_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An Atom title's type is not in the raw item: the title is read afresh from every entry, and the
    new version takes its text from the stored one."""
    def atom(kind: str) -> bytes:
        return ("<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>t</title><id>f</id>"
                f"<entry><id>e1</id><title type='{kind}'>A &lt;b&gt;bold&lt;/b&gt; move</title>"
                "<link href='https://example.org/e1'/><content type='html'>&lt;p&gt;Body one.&lt;/p&gt;</content>"
                "</entry><entry><id>e2</id><title>Other</title><link href='https://example.org/e2'/>"
                "<content type='html'>&lt;p&gt;Body two.&lt;/p&gt;</content></entry></feed>").encode()

    from monitor.models import FetchResult, Validators
    from monitor.parse import parse

    def raw(kind: str) -> bytes:
        fetched = FetchResult("f", 200, atom(kind), "application/atom+xml", Validators())
        return parse("t", fetched).items[0].raw

    assert raw("text") == raw("html")       # what makes this case: the raw item does not tell them apart
    assert both(tmp_path, [atom("text"), atom("html")], monkeypatch) == [2, 0]
    store = Store.open(f"sqlite:///{tmp_path / 'a' / 'fw.db'}")
    changes = [(c.kind.value, c.title, c.summary) for c in store.changes(store.find_document("e1").id)]
    text = store.version(store.find_document("e1").id, 2).text
    store.close()
    assert ("changed", "A bold move", "title changed to \u201cA bold move\u201d") in changes
    assert text == "Body one."


def test_items_are_normalised_again_when_settings_change_or_a_document_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without = [i for i in ITEMS if i[0] != "g3"]
    counts = both(tmp_path, [feed(*ITEMS), feed(*without), feed(*ITEMS), feed(*ITEMS), feed(*ITEMS[::-1])],
                  monkeypatch, options=["", "", "", "    ignore: ['item 1']\n", "    ignore: ['item 1']\n"])
    assert counts == [40, 0, 1, 40, 0]


def test_links_true_normalises_every_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edited = [*ITEMS[:7], ("g7", "Title 7", "Text of item 7, edited."), *ITEMS[8:]]
    assert both(tmp_path, [feed(*ITEMS), feed(*edited)], monkeypatch,
                options=["    links: true\n"] * 2) == [40, 40]
