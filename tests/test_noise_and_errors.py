"""Cosmetic rewrites of a feed record no change; broken bodies record an error and change nothing stored."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lxml.etree
import pytest

from tests.helpers import CORPUS, FeedServer, run_cli, write_config

SEED = (CORPUS / "seed-feed.xml").read_bytes()
PATH = "/community/index.xml"


def rewrite_descriptions(body: bytes, fn: Callable[[str], str]) -> bytes:
    tree = lxml.etree.fromstring(body)
    for desc in tree.iter("description"):
        if desc.getparent() is not None and desc.getparent().tag == "item":
            desc.text = fn(desc.text or "")
    return lxml.etree.tostring(tree, xml_declaration=True, encoding="utf-8")


def whitespace(h: str) -> str:
    h = re.sub(r">\s*<", ">\n      <", h)
    return re.sub(r"(\w) (\w)", r"\1 \n  \2", h, count=200)


def entities(h: str) -> str:
    h = h.replace("&rsquo;", "\u2019").replace("\u2019s", "&#8217;s").replace("&amp;", "&#38;")
    return h.replace("\u201c", "&ldquo;").replace("\u00a0", "&nbsp;")


def attributes(h: str) -> str:
    h = re.sub(r'<h([1-6]) id="([^"]*)">', r'<H\1 data-anchor="\2" class="heading" ID="\2">', h)
    h = re.sub(r"<p>", '<P class="para" data-x="1">', h)
    h = h.replace("</p>", "</P>")
    return re.sub(r'<a href="([^"]*)">', r'<A rel="nofollow" target="_blank" HREF="\1">', h).replace("</a>", "</A>")


def wrapping(h: str) -> str:
    h = re.sub(r"<p>(.*?)</p>", r"<p><span class='s'>\1</span></p>", h, flags=re.S)
    h = re.sub(r"<li>((?:(?!</?li|</?ul|</?ol).)*)</li>", r"<li><strong>\1</strong></li>", h, flags=re.S)
    return f"<div class='page'><main><article>{h}</article></main></div>"


def reorder_items(body: bytes) -> bytes:
    tree = lxml.etree.fromstring(body)
    channel = tree.find("channel")
    items = channel.findall("item")
    for item in items:
        channel.remove(item)
    for item in reversed(items):
        channel.append(item)
    return lxml.etree.tostring(tree, xml_declaration=True, encoding="utf-8")


def new_dates(body: bytes) -> bytes:
    text = body.decode()
    text = text.replace("Mon, 01 Jan 0001 00:00:00 +0000", "Tue, 24 Nov 2026 10:00:00 +0000")
    return text.replace("<language>en</language>",
                        "<language>en</language><lastBuildDate>Tue, 24 Nov 2026 10:00:00 +0000</lastBuildDate>"
                        ).encode()


def to_atom(body: bytes) -> bytes:
    tree = lxml.etree.fromstring(body)
    channel = tree.find("channel")
    entries = []
    for item in channel.findall("item"):
        entries.append(f"""<entry><id>{html.escape(item.findtext('guid'))}</id>
<title>{html.escape(item.findtext('title'))}</title><link rel="alternate" href="{html.escape(item.findtext('link'))}"/>
<updated>2026-11-24T10:00:00Z</updated>
<content type="html">{html.escape(item.findtext('description'))}</content></entry>""")
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>{html.escape(channel.findtext('title'))}</title>
<id>{html.escape(channel.findtext('link'))}</id><updated>2026-11-24T10:00:00Z</updated>
<link href="{html.escape(channel.findtext('link'))}"/>{''.join(entries)}</feed>""".encode()


REWRITES: dict[str, Callable[[bytes], bytes]] = {
    "whitespace": lambda b: rewrite_descriptions(b, whitespace),
    "entity-spelling": lambda b: rewrite_descriptions(b, entities),
    "attribute-order-and-tag-case": lambda b: rewrite_descriptions(b, attributes),
    "wrapping-markup": lambda b: rewrite_descriptions(b, wrapping),
    "item-order": reorder_items,
    "pubdate": new_dates,
    "rss-to-atom": to_atom,
}


@pytest.fixture
def feedwatch(tmp_path: Path, server: FeedServer) -> Callable[..., Any]:
    url = server.set(PATH, SEED)
    config = write_config(tmp_path / "feedwatch.yaml", f"feeds:\n  - name: k8s\n    url: {url}\n")

    def run(*args: str) -> Any:
        return run_cli("--config", str(config), "--database", str(tmp_path / "fw.db"), *args)
    return run


@pytest.mark.parametrize("name", REWRITES)
def test_cosmetic_rewrite_records_no_change(name: str, server: FeedServer, feedwatch: Callable[..., Any]) -> None:
    first = feedwatch("run", "--json")
    assert first.code == 0 and len(first.json()["changes"]) == 4
    variant = REWRITES[name](SEED)
    assert variant != SEED
    server.set(PATH, variant, content_type="application/atom+xml" if name == "rss-to-atom" else
               "application/rss+xml; charset=utf-8")
    second = feedwatch("run", "--force", "--json")
    assert second.code == 0, second.err
    assert second.json()["feeds"][0]["status"] == "ok"       # really fetched and parsed anew
    assert second.json()["changes"] == []
    server.set(PATH, SEED)
    assert feedwatch("run", "--force", "--json").json()["changes"] == []


def test_all_rewrites_at_once_record_no_change(server: FeedServer, feedwatch: Callable[..., Any]) -> None:
    feedwatch("run")
    body = SEED
    for name in ("whitespace", "entity-spelling", "attribute-order-and-tag-case", "wrapping-markup",
                 "item-order", "pubdate", "rss-to-atom"):
        body = REWRITES[name](body)
    server.set(PATH, body, content_type="application/atom+xml")
    assert feedwatch("run", "--force", "--json").json()["changes"] == []


def test_a_real_edit_is_still_seen(server: FeedServer, feedwatch: Callable[..., Any]) -> None:
    feedwatch("run")
    server.set(PATH, rewrite_descriptions(SEED, lambda h: h.replace("harassment-free", "harassment free")))
    out = feedwatch("run", "--force", "--json").json()
    assert [c["kind"] for c in out["changes"]] == ["changed"]
    assert out["changes"][0]["deleted"] and out["changes"][0]["inserted"]


BROKEN = {
    "truncated": (SEED[: len(SEED) // 2], "malformed XML"),
    "truncated-mid-tag": (SEED[: SEED.index(b"</item>") + 3], "malformed XML"),
    "mismatched-tags": (SEED.replace(b"</title>", b"</titel>", 1), "malformed XML"),
    "html-page": (b"<!doctype html><html><body><h1>Moved</h1><p>see elsewhere</p></body></html>",
                  "not an RSS or Atom feed (got an HTML page)"),
    "garbage": (bytes(range(256)) * 20, "not an RSS or Atom feed"),
    "empty": (b"", "empty response"),
}


def _stored(feedwatch: Callable[..., Any]) -> Any:
    history = feedwatch("history", "--json").json()
    texts = {d["id"]: feedwatch("show", str(d["id"])).out for d in history["documents"]}
    return history, texts


@pytest.mark.parametrize("name", BROKEN)
def test_broken_body_records_error_and_keeps_everything(
        name: str, server: FeedServer, feedwatch: Callable[..., Any]) -> None:
    assert feedwatch("run").code == 0
    before = _stored(feedwatch)
    body, message = BROKEN[name]
    server.set(PATH, body)
    result = feedwatch("run", "--force", "--json")
    assert result.code == 1
    feed = result.json()["feeds"][0]
    assert feed["status"] == "error"
    assert feed["error"].startswith("parse: k8s: ") and message in feed["error"]
    assert feed["documents"] == 4
    assert result.json()["changes"] == []
    assert "\n" not in feed["error"]
    assert _stored(feedwatch) == before
    status = feedwatch("status", "--json").json()["feeds"][0]
    assert status["status"] == "error" and status["consecutive_errors"] == 1 and status["documents"] == 4
    # The next good poll works and finds nothing new.
    server.set(PATH, SEED)
    after = feedwatch("run", "--force", "--json")
    assert after.code == 0
    assert after.json()["feeds"][0]["status"] in ("ok", "unchanged", "not_modified")
    assert after.json()["changes"] == []
    assert feedwatch("status", "--json").json()["feeds"][0]["consecutive_errors"] == 0


def test_http_error_is_recorded_per_feed(server: FeedServer, feedwatch: Callable[..., Any]) -> None:
    feedwatch("run")
    server.set(PATH, b"oops", status=503, headers={"Retry-After": "120"})
    result = feedwatch("run", "--force", "--json")
    assert result.code == 1
    assert result.json()["feeds"][0]["error"] == "fetch: k8s: HTTP 503 from 127.0.0.1 (retry after 120 s)"


def test_undefined_html_entity_in_xml_is_accepted(server: FeedServer, feedwatch: Callable[..., Any]) -> None:
    body = SEED.replace(b"<title>Community: Code Of Conduct</title>",
                        b"<title>Community: Code&nbsp;Of&rsquo;Conduct</title>")
    server.set(PATH, body)
    out = feedwatch("run", "--json").json()
    assert out["feeds"][0]["status"] == "ok"
    assert "Community: Code Of\u2019Conduct" in {c["title"] for c in out["changes"]}
