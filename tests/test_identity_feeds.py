"""Identity end to end: real feeds served on 127.0.0.1, polled by `feedwatch run` into a SQLite file.

The shapes of issue 14: an RSS feed without guids re-published as Atom with permalink ids (and back), and
every guid changed in a feed whose items share one link.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FeedServer, run_cli, write_config

PATH = "/feed.xml"
Post = tuple[str | None, str, str, str]          # guid, link, title, html body


def guid(g: str | None) -> str:
    return f'<guid isPermaLink="false">{g}</guid>' if g else ""


def rss(posts: list[Post]) -> bytes:
    items = "".join(
        f"<item>{guid(g)}<link>{html.escape(link)}</link>"
        f"<title>{html.escape(title)}</title><description>{html.escape(body)}</description></item>"
        for g, link, title, body in posts)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Blog</title>'
            f"<link>https://blog.example/</link>{items}</channel></rss>").encode()


def atom(posts: list[Post]) -> bytes:
    entries = "".join(
        f'<entry><id>{html.escape(g or link)}</id><link rel="alternate" href="{html.escape(link)}"/>'
        f'<title>{html.escape(title)}</title><updated>2026-11-30T10:00:00Z</updated>'
        f'<content type="html">{html.escape(body)}</content></entry>'
        for g, link, title, body in posts)
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title>'
            f'<id>https://blog.example/</id><updated>2026-11-30T10:00:00Z</updated>{entries}</feed>').encode()


@pytest.fixture
def feedwatch(tmp_path: Path, server: FeedServer) -> Callable[..., Any]:
    url = server.url(PATH)
    config = write_config(tmp_path / "feedwatch.yaml", f"feeds:\n  - name: blog\n    url: {url}\n")

    def run(body: bytes) -> list[dict[str, Any]]:
        server.set(PATH, body)
        result = run_cli("--config", str(config), "--database", str(tmp_path / "fw.db"), "run", "--force", "--json")
        assert result.code == 0, result.err
        changes: list[dict[str, Any]] = result.json()["changes"]
        return changes
    return run


POSTS: list[Post] = [(None, f"https://blog.example/{n}/", f"Post {n}", f"<p>Body of post {n}.</p>") for n in range(5)]


def test_rss_without_guids_republished_as_atom_with_permalink_ids_and_back(feedwatch: Callable[..., Any]) -> None:
    assert [c["kind"] for c in feedwatch(rss(POSTS))] == ["added"] * 5
    for _ in range(3):                                   # past removal_grace: nothing is removed later either
        assert feedwatch(atom(POSTS)) == []
    for _ in range(3):
        assert feedwatch(rss(POSTS)) == []
    edited = [*POSTS[:2], (None, POSTS[2][1], "Post 2", "<p>Body of post 2, edited.</p>"), *POSTS[3:]]
    [change] = feedwatch(atom(edited))
    assert (change["kind"], change["title"], change["inserted"]) == ("changed", "Post 2", [", edited"])


def test_every_guid_changed_where_items_share_a_link(feedwatch: Callable[..., Any]) -> None:
    shared = "https://sponsor.example/"
    before: list[Post] = [("g1", shared, "Sponsor: Acme", "<p>Acme sponsors this week.</p>"),
                          ("g2", shared, "Why we moved", "<p>An article about the sponsor.</p>"),
                          ("g3", "https://blog.example/unique", "Unique", "<p>Unique post.</p>")]
    feedwatch(rss(before))
    after: list[Post] = [("n1", shared, "Sponsor: Acme", "<p>Acme sponsors this week again.</p>"),
                         ("n2", shared, "Why we moved", "<p>An article about the sponsor, revised.</p>"),
                         ("n3", "https://blog.example/unique", "Unique", "<p>Unique post, edited.</p>")]
    changes = feedwatch(rss(after))
    # The unique link carries its document across the guid change; the shared link pairs nothing.
    assert sorted((c["kind"], c["document"], c["title"]) for c in changes) == [
        ("added", "n1", "Sponsor: Acme"), ("added", "n2", "Why we moved"), ("changed", "n3", "Unique")]
    later = [c for _ in range(3) for c in feedwatch(rss(after))]
    assert sorted(c["document"] for c in later if c["kind"] == "removed") == ["g1", "g2"]
