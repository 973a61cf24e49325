"""Documents beyond the feed (DESIGN §2b): followed links, single pages, sitemaps, JSON Feed, preview.

A local site serves pages the way real sites do: navigation, a header, a footer and a rotating sidebar that
changes on every request, around a stable article. Only the article is the document.
"""

from __future__ import annotations

import gzip
import itertools
import json
import sqlite3
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FeedServer, run_cli, run_process, write_config

SECTIONS = {
    "Scope": ["This code of conduct applies within all community spaces.",
              "It also applies when an individual represents the community in public spaces."],
    "Our Standards": ["Examples of behavior that contributes to a positive environment include empathy.",
                      "Being respectful of differing opinions, viewpoints and experiences."],
    "Enforcement": ["Instances of abusive behavior may be reported to the steering committee.",
                    "All complaints will be reviewed and investigated promptly and fairly."],
}
_counter = itertools.count()


def article(title: str, sections: dict[str, list[str]]) -> str:
    body = "".join(f"<h2>{h}</h2>" + "".join(f"<p>{p}</p>" for p in ps) for h, ps in sections.items())
    return f"<article><h1>{title}</h1>{body}</article>"


def page_html(title: str, sections: dict[str, list[str]], noise: int = 0) -> str:
    """A whole page around the article; `noise` changes everything but the article."""
    return (f"<!DOCTYPE html><html><head><title>{title} | Site</title>"
            f"<script>var build = {noise};</script><style>.x{{color:red}}</style></head><body>"
            f"<header><a href='/'>Site</a> <span>Visitor {noise}</span></header>"
            f"<nav><ul><li><a href='/a'>Docs</a></li><li>Menu item {noise}</li></ul></nav>"
            f"<main>{article(title, sections)}"
            f"<aside><h3>Recent posts</h3><p>Post number {noise} is trending</p></aside>"
            f"<form><input name=csrf value='{noise}'><button>Subscribe</button></form></main>"
            f"<footer>Last built {noise}. &copy; Site</footer></body></html>")


class Site:
    """Pages whose noise rotates on every request (no ETag: every body differs)."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.pages: dict[str, tuple[str, dict[str, list[str]]]] = {}

    def add(self, path: str, title: str, sections: dict[str, list[str]] | None = None) -> str:
        self.pages[path] = (title, json.loads(json.dumps(sections or SECTIONS)))
        return self.server.set(path, handler=self._handler(path))

    def edit(self, path: str, old: str, new: str) -> None:
        _title, sections = self.pages[path]
        for paragraphs in sections.values():
            for i, p in enumerate(paragraphs):
                paragraphs[i] = p.replace(old, new)

    def _handler(self, path: str) -> Callable[[BaseHTTPRequestHandler], None]:
        def handle(req: BaseHTTPRequestHandler) -> None:
            title, sections = self.pages[path]
            body = page_html(title, sections, noise=next(_counter)).encode()
            FeedServer._send(req, 200, body, {"Content-Type": "text/html; charset=utf-8"})
        return handle


def rss(items: list[tuple[str, str, str]]) -> str:
    """(guid, title, link) items with one-line summaries only."""
    entries = "".join(f"<item><guid>{g}</guid><title>{t}</title><link>{link}</link>"
                      f"<description>Summary of {t}</description></item>" for g, t, link in items)
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>Blog</title>{entries}</channel></rss>"


def sitemap(urls: list[str], lastmod: dict[str, str] | None = None) -> str:
    entries = "".join(f"<url><loc>{u}</loc>" + (f"<lastmod>{lastmod[u]}</lastmod>" if lastmod and u in lastmod
                                                else "") + "</url>" for u in urls)
    return f"<?xml version='1.0' encoding='UTF-8'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>" \
           f"{entries}</urlset>"


@pytest.fixture
def site(server: FeedServer) -> Site:
    return Site(server)


@pytest.fixture
def fw(tmp_path: Path) -> Callable[..., Any]:
    def run(config: Path, *args: str) -> Any:
        result = run_cli("--config", str(config), *args)
        return result
    return run


def config(tmp_path: Path, source: str, database: str | None = None) -> Path:
    database = database or f"sqlite:///{tmp_path / 'fw.db'}"
    return write_config(tmp_path / "feedwatch.yaml", f"database: {database}\nfeeds:\n{source}")


def poll(fw: Callable[..., Any], cfg: Path) -> dict[str, Any]:
    result = fw(cfg, "run", "--force", "--json")
    assert result.code == 0, result.err
    data: dict[str, Any] = result.json()
    return data


# ---------------------------------------------------------------------------------- Must show 1: noise


@pytest.fixture(params=["follow", "page", "sitemap"])
def source(request: pytest.FixtureRequest, server: FeedServer, site: Site, tmp_path: Path) -> tuple[Path, str]:
    """A source of each kind over the rotating site; returns its config and the path of the page to edit."""
    paths = ["/community/coc/", "/community/mentoring/", "/community/values/"]
    for p in paths:
        site.add(p, p.strip("/").split("/")[-1].title())
    if request.param == "follow":
        items = [(f"id-{i}", f"Post {i}", server.url(p)) for i, p in enumerate(paths)]
        feed = server.set("/blog/index.xml", rss(items))
        return config(tmp_path, f"  - name: blog\n    url: {feed}\n    follow: true\n"), paths[0]
    if request.param == "page":
        return config(tmp_path, f"  - name: coc\n    kind: page\n    url: {server.url(paths[0])}\n"), paths[0]
    smap = server.set("/sitemap.xml", sitemap([server.url(p) for p in paths]), content_type="application/xml")
    return config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {smap}\n"), paths[0]


def test_page_noise_is_never_a_change_and_one_sentence_is(source: tuple[Path, str], site: Site,
                                                          fw: Callable[..., Any]) -> None:
    cfg, path = source
    first = poll(fw, cfg)
    assert first["changes"] and {c["kind"] for c in first["changes"]} == {"added"}
    for _ in range(5):
        again = poll(fw, cfg)
        assert again["changes"] == [], again["changes"]
        assert again["feeds"][0]["status"] == "ok"
    site.edit(path, "reported to the steering committee", "reported to the code of conduct committee")
    edited = poll(fw, cfg)
    assert len(edited["changes"]) == 1, edited["changes"]
    change = edited["changes"][0]
    assert change["kind"] == "changed" and change["version"] == 2
    assert any("code of conduct" in t for t in change["inserted"]), change
    assert any("steering" in t for t in change["deleted"]), change
    assert change["sections"] == ["Coc > Enforcement"]
    diff = fw(cfg, "diff", change["document"], "--format", "json")
    assert diff.code == 0, diff.err
    sections = diff.json()["sections"]
    assert [s["path"] for s in sections] == [["Coc", "Enforcement"]]
    # noise is not in the stored text at all
    shown = fw(cfg, "show", change["document"]).out
    assert "Recent posts" not in shown and "Menu item" not in shown and "Last built" not in shown
    assert "# Coc" in shown and "## Enforcement" in shown


# ---------------------------------------------------------------------------------- Must show 2: sitemap


def static_page(n: int, extra: str = "") -> str:
    return page_html(f"Page {n}", {"Body": [f"This is page number {n} of the handbook.{extra}"]})


@pytest.fixture
def big_site(server: FeedServer, tmp_path: Path, database_url: str) -> tuple[Path, list[str]]:
    """45 static pages with ETags in a sitemap, recorded in SQLite and in PostgreSQL."""
    paths = [f"/handbook/{n}/" for n in range(45)]
    for n, p in enumerate(paths):
        server.set(p, static_page(n), content_type="text/html; charset=utf-8")
    server.set("/sitemap.xml", sitemap([server.url(p) for p in paths]), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: handbook\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n"
                           "    removal_grace: 2\n", database_url)
    return cfg, paths


def page_bodies(server: FeedServer, since: int) -> list[str]:
    """Paths of pages whose body was downloaded (status 200) since hit number `since`."""
    return [h.path for h in server.hits[since:] if h.path.startswith("/handbook/") and h.status == 200]


def test_sitemap_pages_added_404_removed_and_unchanged_costs_no_body(
        big_site: tuple[Path, list[str]], server: FeedServer, fw: Callable[..., Any]) -> None:
    cfg, paths = big_site
    first = poll(fw, cfg)
    assert len(first["changes"]) == 45 and {c["kind"] for c in first["changes"]} == {"added"}
    assert first["feeds"][0]["documents"] == 45

    mark = len(server.hits)
    quiet = poll(fw, cfg)
    assert quiet["changes"] == [] and page_bodies(server, mark) == []
    assert server.count("/handbook/3/", status=304) == 1      # a conditional request, answered 304

    server.set(paths[7], b"gone", status=404, content_type="text/plain")
    broken = fw(cfg, "run", "--force", "--json")
    assert broken.code == 0, broken.err
    data = broken.json()
    assert data["changes"] == []
    url = server.url(paths[7])
    errors = data["feeds"][0]["page_errors"]
    assert len(errors) == 1 and url in errors[0] and "404" in errors[0] and "\n" not in errors[0]
    assert url in broken.err
    status = fw(cfg, "status")
    assert url in status.out and "404" in status.out

    # the page leaves the sitemap: absent, then removed after removal_grace (2) polls
    server.set("/sitemap.xml", sitemap([server.url(p) for p in paths if p != paths[9]]),
               content_type="application/xml")
    assert poll(fw, cfg)["changes"] == []
    gone = poll(fw, cfg)["changes"]
    assert [(c["kind"], c["document"]) for c in gone] == [("removed", server.url(paths[9]))]

    # the 404 page comes back changed: one change, and the error is cleared
    server.set(paths[7], static_page(7, " Revised."), content_type="text/html; charset=utf-8")
    back = poll(fw, cfg)
    assert [(c["kind"], c["document"]) for c in back["changes"]] == [("changed", url)]
    assert "page_errors" not in back["feeds"][0]
    assert url not in fw(cfg, "status").out


def test_sitemap_lastmod_unchanged_costs_no_request(server: FeedServer, tmp_path: Path,
                                                    fw: Callable[..., Any]) -> None:
    paths = [f"/doc/{n}" for n in range(5)]
    for n, p in enumerate(paths):
        server.set(p, static_page(n), content_type="text/html", etag=False)
    lastmod = {server.url(p): "2026-01-01" for p in paths}
    body = sitemap([server.url(p) for p in paths], lastmod)
    server.set("/sitemap.xml.gz", gzip.compress(body.encode()), content_type="application/x-gzip")
    cfg = config(tmp_path, f"  - name: docs\n    kind: sitemap\n    url: {server.url('/sitemap.xml.gz')}\n")
    assert len(poll(fw, cfg)["changes"]) == 5
    mark = len(server.hits)
    assert poll(fw, cfg)["changes"] == []
    assert [h.path for h in server.hits[mark:]] == ["/sitemap.xml.gz"]
    # lastmod moves for one page: only that page is fetched
    server.set(paths[2], static_page(2, " Updated."), content_type="text/html", etag=False)
    lastmod[server.url(paths[2])] = "2026-02-01"
    server.set("/sitemap.xml.gz", gzip.compress(sitemap([server.url(p) for p in paths], lastmod).encode()),
               content_type="application/x-gzip")
    mark = len(server.hits)
    changes = poll(fw, cfg)["changes"]
    assert [c["document"] for c in changes] == [server.url(paths[2])]
    assert sorted(h.path for h in server.hits[mark:]) == ["/doc/2", "/sitemap.xml.gz"]


def test_sitemap_include_exclude_and_cap(server: FeedServer, tmp_path: Path, fw: Callable[..., Any]) -> None:
    paths = [f"/community/{n}" for n in range(6)] + [f"/blog/{n}" for n in range(3)] + ["/community/old-1"]
    for n, p in enumerate(paths):
        server.set(p, static_page(n), content_type="text/html")
    server.set("/sitemap.xml", sitemap([server.url(p) for p in paths]), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n"
                           "    include: ['/community/']\n    exclude_urls: ['old-']\n    max_documents: 4\n")
    result = fw(cfg, "run", "--force", "--json")
    assert result.code == 0, result.err
    docs = sorted(c["document"] for c in result.json()["changes"])
    assert docs == sorted(server.url(f"/community/{n}") for n in range(4))
    assert "max_documents is 4" in result.err


def test_sitemap_index_reads_its_sitemaps(server: FeedServer, tmp_path: Path, fw: Callable[..., Any]) -> None:
    for n in range(4):
        server.set(f"/p/{n}", static_page(n), content_type="text/html")
    server.set("/a.xml", sitemap([server.url("/p/0"), server.url("/p/1")]), content_type="application/xml")
    server.set("/b.xml", sitemap([server.url("/p/2"), server.url("/p/3")]), content_type="application/xml")
    index = ("<?xml version='1.0'?><sitemapindex xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
             f"<sitemap><loc>{server.url('/a.xml')}</loc></sitemap><sitemap><loc>{server.url('/b.xml')}</loc>"
             "</sitemap></sitemapindex>")
    server.set("/index.xml", index, content_type="application/xml")
    cfg = config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {server.url('/index.xml')}\n")
    assert len(poll(fw, cfg)["changes"]) == 4


# ---------------------------------------------------------------------------------- follow specifics


def test_follow_unchanged_pages_cost_a_304_and_feed_titles_stay(server: FeedServer, tmp_path: Path,
                                                                fw: Callable[..., Any]) -> None:
    for n in range(3):
        server.set(f"/post/{n}", static_page(n), content_type="text/html")
    items = [(f"g{n}", f"Item title {n}", server.url(f"/post/{n}")) for n in range(3)]
    server.set("/feed.xml", rss(items))
    cfg = config(tmp_path, f"  - name: blog\n    url: {server.url('/feed.xml')}\n    follow: true\n")
    first = poll(fw, cfg)
    assert sorted(c["title"] for c in first["changes"]) == ["Item title 0", "Item title 1", "Item title 2"]
    assert sorted(c["document"] for c in first["changes"]) == ["g0", "g1", "g2"]
    mark = len(server.hits)
    second = poll(fw, cfg)
    assert second["changes"] == [] and second["feeds"][0]["status"] == "not_modified"
    assert sorted((h.path, h.status) for h in server.hits[mark:]) == [
        ("/feed.xml", 304), ("/post/0", 304), ("/post/1", 304), ("/post/2", 304)]
    # the feed is unchanged (304) but a page changed: still seen
    server.set("/post/1", static_page(1, " A new rule."), content_type="text/html")
    third = poll(fw, cfg)
    assert [(c["document"], c["kind"]) for c in third["changes"]] == [("g1", "changed")]
    assert any("A new rule." in t for t in third["changes"][0]["inserted"])
    # a new item: its page is fetched and its document added
    server.set("/post/3", static_page(3), content_type="text/html")
    server.set("/feed.xml", rss([*items, ("g3", "Item title 3", server.url("/post/3"))]))
    fourth = poll(fw, cfg)
    assert [(c["document"], c["kind"]) for c in fourth["changes"]] == [("g3", "added")]
    shown = fw(cfg, "show", "g3").out
    assert "This is page number 3 of the handbook." in shown and "Summary of" not in shown


def test_follow_page_that_fails_keeps_its_document(server: FeedServer, tmp_path: Path,
                                                   fw: Callable[..., Any]) -> None:
    for n in range(2):
        server.set(f"/post/{n}", static_page(n), content_type="text/html")
    server.set("/feed.xml", rss([(f"g{n}", f"Post {n}", server.url(f"/post/{n}")) for n in range(2)]))
    cfg = config(tmp_path, f"  - name: blog\n    url: {server.url('/feed.xml')}\n    follow: true\n"
                           "    removal_grace: 1\n")
    poll(fw, cfg)
    server.set("/post/0", b"\x89PNG\r\n\x1a\n\x00\x00", content_type="image/png")
    server.set("/feed.xml", rss([(f"g{n}", f"Post {n}", server.url(f"/post/{n}")) for n in range(2)]) + " ")
    result = poll(fw, cfg)
    assert result["changes"] == []
    assert "not an HTML page" in result["feeds"][0]["page_errors"][0]
    assert "This is page number 0" in fw(cfg, "show", "g0").out


# ---------------------------------------------------------------------------------- Must show 3: JSON Feed


def json_feed(items: list[dict[str, Any]]) -> str:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "JSON blog",
                       "home_page_url": "https://example.org/", "items": items})


def test_json_feed_behaves_like_rss(server: FeedServer, tmp_path: Path, fw: Callable[..., Any]) -> None:
    items = [{"id": str(n), "url": f"https://example.org/{n}", "title": f"Entry {n}",
              "content_html": f"<h2>Part</h2><p>Text of entry {n} stays the same.</p>"} for n in range(3)]
    url = server.set("/feed.json", json_feed(items), content_type="application/feed+json")
    cfg = config(tmp_path, f"  - name: jf\n    url: {url}\n    removal_grace: 2\n")
    first = poll(fw, cfg)
    assert sorted((c["document"], c["kind"]) for c in first["changes"]) == [
        ("0", "added"), ("1", "added"), ("2", "added")]
    items[1]["content_html"] = "<h2>Part</h2><p>Text of entry 1 changed completely today.</p>"
    server.set("/feed.json", json_feed(items), content_type="application/feed+json")
    changed = poll(fw, cfg)["changes"]
    assert [(c["document"], c["kind"], c["sections"]) for c in changed] == [("1", "changed", ["Part"])]
    assert any("changed completely today" in t for t in changed[0]["inserted"])
    assert any("stays the same" in t for t in changed[0]["deleted"])
    server.set("/feed.json", json_feed(items[:2]), content_type="application/feed+json")
    assert poll(fw, cfg)["changes"] == []
    assert [(c["document"], c["kind"]) for c in poll(fw, cfg)["changes"]] == [("2", "removed")]
    # content_text and numeric ids work too, served as plain application/json
    server.set("/feed.json", json_feed([{"id": 7, "title": "Plain", "content_text": "Just text."}]),
               content_type="application/json")
    assert [c["document"] for c in poll(fw, cfg)["changes"] if c["kind"] == "added"] == ["7"]


# ---------------------------------------------------------------------------------- Must show 4: preview


def test_preview_prints_the_selected_text_and_writes_nothing(server: FeedServer, site: Site, tmp_path: Path,
                                                            fw: Callable[..., Any]) -> None:
    page = site.add("/coc/", "Code of Conduct")
    cfg = config(tmp_path, f"  - name: coc\n    kind: page\n    url: {page}\n")
    poll(fw, cfg)
    db = tmp_path / "fw.db"
    before = _dump(db)
    result = fw(cfg, "preview", page, "--kind", "page", "--exclude", "h2")
    assert result.code == 0, result.err
    assert result.out.startswith("== Code of Conduct | Site")
    assert "This code of conduct applies within all community spaces." in result.out
    assert "Scope" not in result.out and "Recent posts" not in result.out
    as_json = fw(cfg, "preview", page, "--kind", "page", "--select", "xpath://h2[2]/following-sibling::p",
                 "--json").json()
    blocks = as_json["documents"][0]["blocks"]
    assert [b["text"] for b in blocks] == [p for ps in list(SECTIONS.values())[1:] for p in ps]
    default = fw(cfg, "preview", page, "--kind", "page", "--json").json()["documents"][0]["blocks"]
    assert {"kind": "paragraph", "text": SECTIONS["Scope"][0], "path": ["Code of Conduct", "Scope"]} in default
    assert _dump(db) == before
    bad = fw(cfg, "preview", page, "--kind", "page", "--select", "div[[")
    assert bad.code == 2 and "invalid CSS selector" in bad.err and "\n" not in bad.err.strip()


def _dump(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize(("source", "message"), [
    ("  - name: a\n    url: http://x/\n    select: ['main']\n", "feeds[0].select: selects part of a web page"),
    ("  - name: a\n    url: http://x/\n    kind: page\n    follow: true\n", "feeds[0].follow: only a feed"),
    ("  - name: a\n    url: http://x/\n    include: ['x']\n", "feeds[0].include: only applies to kind: sitemap"),
    ("  - name: a\n    url: http://x/\n    kind: page\n    select: ['div[[']\n", "invalid CSS selector"),
    ("  - name: a\n    url: http://x/\n    kind: page\n    select: ['xpath://[']\n", "invalid XPath"),
    ("  - name: a\n    url: http://x/\n    kind: sitemap\n    include: ['(']\n", "feeds[0].include[0]: invalid regex"),
    ("  - name: a\n    url: http://x/\n    kind: pages\n", "feeds[0].kind"),
])
def test_source_config_errors_name_file_line_and_key(tmp_path: Path, fw: Callable[..., Any], source: str,
                                                     message: str) -> None:
    cfg = config(tmp_path, source)
    result = fw(cfg, "check")
    assert result.code == 2 and message in result.err, result.err
    assert f"{cfg}:" in result.err and len(result.err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------- hostile pages


def _slow(req: BaseHTTPRequestHandler) -> None:
    import time
    req.send_response(200)
    req.send_header("Content-Type", "text/html")
    req.end_headers()
    try:
        for _ in range(40):
            req.wfile.write(b"<p>" + b"x" * 10 + b"</p>")
            req.wfile.flush()
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        pass      # feedwatch gave up on the page: what it should do


def _redirect_loop(req: BaseHTTPRequestHandler) -> None:
    other = "/bad/redirects-b" if req.path == "/bad/redirects" else "/bad/redirects"
    FeedServer._send(req, 302, b"", {"Location": other})     # _send adds the one Content-Length


BOMB = ("<?xml version='1.0'?><!DOCTYPE html [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
        "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'>"
        "<!ENTITY e '&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;'><!ENTITY f '&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;'>]>"
        "<html xmlns='http://www.w3.org/1999/xhtml'><body><article><p>&f;&f;&f;&f;</p></article></body></html>")

HOSTILE: dict[str, dict[str, Any]] = {
    "huge": {"body": b"<p>" + b"a" * 300_000 + b"</p>", "content_type": "text/html"},
    "gzip-bomb": {"body": gzip.compress(b"<p>" + b"a" * 20_000_000), "content_type": "text/html",
                  "headers": {"Content-Encoding": "gzip"}},
    "binary": {"body": bytes(range(256)) * 10, "content_type": "application/octet-stream"},
    "binary-as-html": {"body": b"\x00\x01\x02" * 1000, "content_type": "text/html"},
    "slow": {"handler": _slow},
    "redirects": {"handler": _redirect_loop},
    "entity-bomb": {"body": BOMB.encode(), "content_type": "application/xhtml+xml"},
    "deep": {"body": b"<html><head><title>Deep &amp; <b>nested</b></title></head><body><article><p>before</p>"
             + b"<div>" * 5000 + b"x" + b"</div>" * 5000 + b"<p>after</p></article>", "content_type": "text/html"},
}


def test_hostile_pages_are_bounded_and_only_their_own_error(server: FeedServer, tmp_path: Path,
                                                            fw: Callable[..., Any]) -> None:
    server.set("/good", static_page(1), content_type="text/html")
    for name, route in HOSTILE.items():
        server.set(f"/bad/{name}", **route)
    server.set("/bad/redirects-b", handler=_redirect_loop)
    urls = [server.url("/good")] + [server.url(f"/bad/{name}") for name in HOSTILE]
    server.set("/sitemap.xml", sitemap(urls), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n"
                           "    max_bytes: 200KB\n    timeout: 2s\n")
    result = run_process("--config", str(cfg), "run", "--force", "--json", timeout=60)   # a real process
    assert result.code == 0, result.err
    data = result.json()
    added = {c["document"] for c in data["changes"]}
    assert server.url("/good") in added
    errors = data["feeds"][0]["page_errors"]
    failing = {name for name in HOSTILE if any(server.url(f"/bad/{name}") in e for e in errors)}
    # every hostile page is either a one-line page error or (entity bomb, deep nesting) read harmlessly
    assert failing >= {"huge", "gzip-bomb", "binary", "binary-as-html", "slow", "redirects"}, errors
    assert any("too many redirects" in e for e in errors), errors
    assert all("\n" not in e for e in errors)
    assert "Traceback" not in result.err, result.err[-3000:]
    if server.url("/bad/entity-bomb") in added:
        assert "aaaaaaaaaa" not in fw(cfg, "show", server.url("/bad/entity-bomb")).out
    deep = run_process("--config", str(cfg), "show", server.url("/bad/deep")).out   # nothing after it is lost
    assert "before" in deep and "after" in deep and "x" in deep.split()
    [deep_change] = [c for c in data["changes"] if c["document"] == server.url("/bad/deep")]
    assert deep_change["title"] == "Deep & nested"          # its <title>, though the tree could not be built



# ---------------------------------------------------------------------------------- the rest of the house


def test_page_documents_in_messages_reports_history_and_copies(server: FeedServer, site: Site, hook: Any,
                                                               tmp_path: Path, fw: Callable[..., Any]) -> None:
    page = site.add("/community/coc/", "Code of Conduct")
    cfg = write_config(tmp_path / "feedwatch.yaml",
                       f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                       f"targets:\n  chat:\n    urls: ['{hook.url()}']\n    format: markdown\n"
                       f"feeds:\n  - name: coc\n    kind: page\n    url: {page}\n    notify: [chat]\n")
    poll(fw, cfg)
    site.edit("/community/coc/", "promptly and fairly", "within two weeks")
    result = poll(fw, cfg)
    assert result["deliveries"]["sent"] == 1
    [message] = hook.bodies
    assert "Code of Conduct | Site" in message["title"]
    assert "within two weeks" in message["message"] and "Enforcement" in message["message"]
    assert "Recent posts" not in message["message"]
    history = fw(cfg, "history", "--json")
    assert history.code == 0, history.err
    assert page in history.out and "Code of Conduct | Site" in history.out
    report = fw(cfg, "report", "--format", "markdown")
    assert report.code == 0 and "within two weeks" in report.out and page in report.out
    # a history file and a database copy carry page documents like any other
    exported = tmp_path / "history.jsonl"
    assert fw(cfg, "export", "--output", str(exported)).code == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run_cli("--database", other, "import", str(exported)).code == 0
    assert run_cli("--database", other, "diff", page, "--format", "json").json()["sections"] == \
        fw(cfg, "diff", page, "--format", "json").json()["sections"]
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    assert fw(cfg, "db", "copy", "--to", copy).code == 0
    assert run_cli("--database", copy, "show", page).out == fw(cfg, "show", page).out


def test_a_page_asking_to_wait_stops_requests_to_its_host(server: FeedServer, tmp_path: Path,
                                                          fw: Callable[..., Any]) -> None:
    paths = [f"/p/{n}" for n in range(12)]
    for n, p in enumerate(paths):
        server.set(p, static_page(n), content_type="text/html")
    server.set("/sitemap.xml", sitemap([server.url(p) for p in paths]), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n")
    assert len(poll(fw, cfg)["changes"]) == 12
    for p in paths:
        server.set(p, b"slow down", status=429, headers={"Retry-After": "120"}, content_type="text/plain")
    mark = len(server.hits)
    run = fw(cfg, "run", "--force", "--json")
    result = run.json()
    assert run.code == 1 and result["changes"] == []
    asked = [h for h in server.hits[mark:] if h.path.startswith("/p/")]
    assert 0 < len(asked) < 12, "after the first 429s nothing more is asked of the host"
    error = result["feeds"][0]["error"]       # every page failed: the source failed, its documents stay
    assert result["feeds"][0]["status"] == "error" and "every page failed (12)" in error, error
    assert "retry after 120 s" in error
    assert all("This is page number" in fw(cfg, "show", server.url(p)).out for p in paths[:3])


def test_follow_resolves_relative_links_against_the_feed(server: FeedServer, tmp_path: Path,
                                                         fw: Callable[..., Any]) -> None:
    server.set("/blog/posts/one.html", static_page(1), content_type="text/html")
    server.set("/blog/feed.xml", rss([("g1", "One", "posts/one.html")]))
    cfg = config(tmp_path, f"  - name: blog\n    url: {server.url('/blog/feed.xml')}\n    follow: true\n")
    [change] = poll(fw, cfg)["changes"]
    assert change["document"] == "g1" and server.count("/blog/posts/one.html") == 1
    assert "This is page number 1" in fw(cfg, "show", "g1").out
    assert server.url("/blog/posts/one.html") in fw(cfg, "history", "--json").out


def test_a_new_title_over_an_unchanged_page_keeps_the_page_text(server: FeedServer, tmp_path: Path,
                                                                fw: Callable[..., Any]) -> None:
    server.set("/post/1", static_page(1), content_type="text/html")
    server.set("/feed.xml", rss([("g1", "Old title", server.url("/post/1"))]))
    cfg = config(tmp_path, f"  - name: blog\n    url: {server.url('/feed.xml')}\n    follow: true\n"
                           "    removal_grace: 1\n")
    poll(fw, cfg)
    server.set("/feed.xml", rss([("g1", "New title", server.url("/post/1"))]))
    [change] = poll(fw, cfg)["changes"]
    assert (change["kind"], change["title"], change["version"]) == ("changed", "New title", 2)
    assert change["inserted"] == ["New"] and change["deleted"] == ["Old"], "only the title changed, not the text"
    assert server.count("/post/1", status=304) == 1                    # the page itself was not downloaded
    assert fw(cfg, "show", "g1", "--version", "2").out == fw(cfg, "show", "g1", "--version", "1").out
    assert "This is page number 1" in fw(cfg, "show", "g1").out
    # gone from the feed, then back with the page unchanged: its text comes back with it
    server.set("/feed.xml", rss([]))
    assert [c["kind"] for c in poll(fw, cfg)["changes"]] == ["removed"]
    server.set("/feed.xml", rss([("g1", "New title", server.url("/post/1"))]))
    [back] = poll(fw, cfg)["changes"]
    assert back["kind"] == "added"
    assert "This is page number 1" in fw(cfg, "show", "g1").out


@pytest.mark.parametrize(("body", "message"), [
    (gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"</urlset>"), "larger than"),
    ((b"<?xml version='1.0'?><!DOCTYPE urlset [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>"
      b"<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;'>]>"
      b"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'><url><loc>LOCAL/&d;</loc></url></urlset>"
      ), None),
    (b"<html><body>not a sitemap</body></html>", "not a sitemap"),
    (b"<urlset><url><loc>http://x/", "malformed sitemap"),
])
def test_hostile_sitemaps_are_one_line_errors(server: FeedServer, tmp_path: Path, fw: Callable[..., Any],
                                              body: bytes, message: str | None) -> None:
    url = server.set("/sitemap.xml", body.replace(b"LOCAL", server.url("").encode()), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {url}\n    max_bytes: 1MiB\n")
    result = fw(cfg, "run", "--force", "--json")
    feed = result.json()["feeds"][0]
    if message is None:      # the entity is never expanded: no URL made of it is fetched
        assert "aaaaaaaaaa" not in result.out + result.err
        assert all("aaaaaaaaaa" not in h.path for h in server.hits)
    else:
        assert result.code == 1 and feed["status"] == "error" and message in feed["error"], feed
        assert "\n" not in feed["error"] and "Traceback" not in result.err


def test_a_huge_sitemap_is_capped(server: FeedServer, tmp_path: Path, fw: Callable[..., Any]) -> None:
    server.set("/p", static_page(1), content_type="text/html")
    urls = [server.url("/p")] + [server.url(f"/missing/{n}") for n in range(100_000)]
    server.set("/sitemap.xml", sitemap(urls), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n"
                           "    max_documents: 1\n")
    result = fw(cfg, "run", "--force", "--json")
    assert [c["document"] for c in result.json()["changes"]] == [server.url("/p")]
    assert "the sitemap lists 100001 pages; max_documents is 1" in result.err
    assert server.count() == 2


# ---------------------------------------------------------------------------------- found by an outside review


def test_a_remote_source_can_never_make_feedwatch_read_a_local_file(server: FeedServer, tmp_path: Path,
                                                                     fw: Callable[..., Any]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    server.set("/ok", static_page(1), content_type="text/html")
    server.set("/sitemap.xml", sitemap([server.url("/ok"), secret.as_uri()]), content_type="application/xml")
    server.set("/feed.xml", rss([("g1", "One", secret.as_uri()), ("g2", "Two", "file://localhost" + str(secret))]))
    cfg = config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n"
                           f"  - name: blog\n    url: {server.url('/feed.xml')}\n    follow: true\n")
    result = fw(cfg, "run", "--force", "--json")
    assert result.code == 0, result.err
    everything = result.out + result.err + "".join(fw(cfg, "show", c["document"]).out
                                                   for c in result.json()["changes"])
    assert "TOP SECRET" not in everything
    preview = fw(cfg, "preview", server.url("/sitemap.xml"), "--kind", "sitemap")
    assert "TOP SECRET" not in preview.out + preview.err
    # a local source may follow local pages: the user chose the file
    local = tmp_path / "local.xml"
    local.write_text(sitemap([(tmp_path / "page.html").as_uri()]))
    (tmp_path / "page.html").write_text(static_page(5))
    shown = fw(cfg, "preview", str(local), "--kind", "sitemap")
    assert "This is page number 5" in shown.out


@pytest.mark.parametrize("loc", ["http://127.0.0.1:99999/x", "http://[::1"])
def test_a_malformed_page_url_is_that_pages_error(server: FeedServer, tmp_path: Path, fw: Callable[..., Any],
                                                  loc: str) -> None:
    server.set("/ok", static_page(1), content_type="text/html")
    server.set("/sitemap.xml", sitemap([server.url("/ok"), loc]), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: site\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n")
    result = fw(cfg, "run", "--force", "--json")
    assert result.code == 0 and "Traceback" not in result.err, result.err
    [error] = result.json()["feeds"][0]["page_errors"]
    assert "invalid URL" in error and loc in error
    assert [c["document"] for c in result.json()["changes"]] == [server.url("/ok")]


@pytest.mark.parametrize(("selector", "message"), [
    ("xpath://h:main", "Undefined namespace prefix"), ("xpath:$var", "invalid XPath"),
    ("xpath://p[foo()]", "invalid XPath"), ("xpath:count(//p)", "must select elements"),
])
def test_xpath_that_cannot_select_elements_is_refused_up_front(tmp_path: Path, fw: Callable[..., Any],
                                                               selector: str, message: str) -> None:
    cfg = config(tmp_path, f"  - name: a\n    kind: page\n    url: http://127.0.0.1:9/\n    select: ['{selector}']\n")
    result = fw(cfg, "check")
    assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1, result.err


def test_xpath_text_results_and_empty_documents_are_page_errors(server: FeedServer, tmp_path: Path,
                                                                fw: Callable[..., Any]) -> None:
    url = server.set("/p", "<main><div class='x'><p id='v'>text</p></div></main>", content_type="text/html")
    attr = fw(config(tmp_path, ""), "preview", url, "--kind", "page", "--select", "xpath://p/@id")
    assert attr.code == 1 and "must select elements, not text or attributes" in attr.err
    empty = fw(config(tmp_path, ""), "preview", url, "--kind", "page", "--exclude", ".x", "--json")
    assert empty.code == 1 and "nothing is left of the page" in empty.json()["errors"][0]
    assert empty.json()["documents"] == []


def test_json_feed_nested_too_deeply_or_with_a_bom(server: FeedServer, tmp_path: Path,
                                                   fw: Callable[..., Any]) -> None:
    deep = b'{"version":"https://jsonfeed.org/version/1","items":[' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    url = server.set("/deep.json", deep, content_type="application/feed+json")
    result = fw(config(tmp_path, f"  - name: j\n    url: {url}\n"), "run", "--force", "--json")
    assert result.code == 1 and "nested too deeply" in result.json()["feeds"][0]["error"]
    bom = b"\xef\xbb\xbf" + json_feed([{"id": 1, "content_text": "With a BOM."}]).encode()
    url = server.set("/bom.json", bom, content_type="application/json")
    result = fw(config(tmp_path, f"  - name: j\n    url: {url}\n"), "run", "--force", "--json")
    assert [c["document"] for c in result.json()["changes"]] == ["1"]


def test_changing_which_sitemap_pages_are_watched_is_a_silent_rebaseline(server: FeedServer, tmp_path: Path,
                                                                         fw: Callable[..., Any]) -> None:
    for n in range(5):
        server.set(f"/p/{n}", static_page(n), content_type="text/html")
    server.set("/sitemap.xml", sitemap([server.url(f"/p/{n}") for n in range(5)]), content_type="application/xml")
    source = f"  - name: s\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n    include: ['/p/[0-1]']\n"
    cfg = config(tmp_path, source)
    assert len(poll(fw, cfg)["changes"]) == 2
    cfg = config(tmp_path, source.replace("[0-1]", "[0-3]"))
    widened = poll(fw, cfg)["changes"]
    assert len(widened) == 2 and all(c.get("baseline") for c in widened), widened   # recorded, not news


def test_a_reordered_sitemap_keeps_the_capped_choice(server: FeedServer, tmp_path: Path,
                                                     fw: Callable[..., Any]) -> None:
    urls = [server.url(f"/p/{n}") for n in range(6)]
    for n in range(6):
        server.set(f"/p/{n}", static_page(n), content_type="text/html")
    server.set("/sitemap.xml", sitemap(urls), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: s\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n"
                           "    max_documents: 4\n    removal_grace: 1\n")
    assert len(poll(fw, cfg)["changes"]) == 4
    server.set("/sitemap.xml", sitemap(urls[::-1]), content_type="application/xml")
    assert poll(fw, cfg)["changes"] == []


def test_a_page_that_never_worked_is_retried_while_the_sitemap_stays_the_same(
        server: FeedServer, tmp_path: Path, fw: Callable[..., Any]) -> None:
    server.set("/p/0", static_page(0), content_type="text/html")
    server.set("/p/1", b"oops", status=500, content_type="text/plain")
    server.set("/sitemap.xml", sitemap([server.url("/p/0"), server.url("/p/1")], {server.url("/p/1"): "2026-01-01"}),
               content_type="application/xml")                   # with an ETag: the sitemap could answer 304
    cfg = config(tmp_path, f"  - name: s\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n")
    assert [c["document"] for c in poll(fw, cfg)["changes"]] == [server.url("/p/0")]
    server.set("/p/1", static_page(1), content_type="text/html")
    assert [c["document"] for c in poll(fw, cfg)["changes"]] == [server.url("/p/1")]
    assert "page_errors" not in poll(fw, cfg)["feeds"][0]


def test_page_errors_leave_status_once_the_page_works_or_leaves(server: FeedServer, tmp_path: Path,
                                                               fw: Callable[..., Any]) -> None:
    for n in range(3):
        server.set(f"/p/{n}", static_page(n), content_type="text/html")
    server.set("/sitemap.xml", sitemap([server.url(f"/p/{n}") for n in range(3)]), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: s\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n")
    poll(fw, cfg)
    server.set("/p/1", b"gone", status=404, content_type="text/plain")
    server.set("/p/2", b"gone", status=404, content_type="text/plain")
    poll(fw, cfg)
    assert server.url("/p/1") in fw(cfg, "status").out and server.url("/p/2") in fw(cfg, "status").out
    server.set("/p/1", static_page(1), content_type="text/html")          # the same page again: a 304
    server.set("/sitemap.xml", sitemap([server.url(f"/p/{n}") for n in range(2)]), content_type="application/xml")
    poll(fw, cfg)
    status = fw(cfg, "status")
    assert server.url("/p/1") not in status.out and server.url("/p/2") not in status.out, status.out
    assert fw(cfg, "status", "--json").json()["feeds"][0]["page_errors"] == []


@pytest.mark.parametrize(("body", "content_type"), [
    ("<html><body><main><p>Größe und Maß</p></main></body></html>".encode("utf-16"), "text/html"),
    ("<html><body><main><p>Größe und Maß</p></main></body></html>".encode("utf-16-le"), "text/html; charset=utf-16le"),
    ("<html><body><main><p>Größe und Maß</p></main></body></html>".encode(), "text/html; charset=no-such-charset"),
    ("<?xml version='1.0' encoding='iso-8859-1'?><html xmlns='http://www.w3.org/1999/xhtml'><body><main>"
     "<p>Größe und Maß</p></main></body></html>".encode("latin-1"), "application/xhtml+xml"),
    ("<!DOCTYPE html [ <!ENTITY co 'Example Corp'> ]><html><body><main><p>Größe und Maß</p></main></body></html>"
     .encode(), "application/xhtml+xml"),
])
def test_page_charsets_and_doctype_subsets(server: FeedServer, tmp_path: Path, fw: Callable[..., Any],
                                           body: bytes, content_type: str) -> None:
    url = server.set("/p", body, content_type=content_type)
    result = fw(config(tmp_path, ""), "preview", url, "--kind", "page")
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith("\nGröße und Maß"), result.out


def test_url_spelling_is_not_a_change(server: FeedServer, tmp_path: Path, fw: Callable[..., Any]) -> None:
    server.set("/p", static_page(1), content_type="text/html")
    upper = server.url("/p").replace("http://", "HTTP://")
    server.set("/sitemap.xml", sitemap([server.url("/p")]), content_type="application/xml")
    cfg = config(tmp_path, f"  - name: s\n    kind: sitemap\n    url: {server.url('/sitemap.xml')}\n")
    poll(fw, cfg)
    server.set("/sitemap.xml", sitemap([upper, server.url("/p") + "#top"]), content_type="application/xml")
    assert poll(fw, cfg)["changes"] == []


def test_nested_sitemap_indexes_and_a_missing_child(server: FeedServer, tmp_path: Path,
                                                    fw: Callable[..., Any]) -> None:
    server.set("/p", static_page(1), content_type="text/html")
    server.set("/leaf.xml", sitemap([server.url("/p")]), content_type="application/xml")
    index = ("<?xml version='1.0'?><sitemapindex xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
             + "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in ["{inner}", "{self}"]) + "</sitemapindex>")
    for name, child in (("/inner.xml", "/leaf.xml"), ("/index.xml", "/inner.xml")):
        server.set(name, index.replace("{inner}", server.url(child)).replace("{self}", server.url(name)),
                   content_type="application/xml")
    cfg = config(tmp_path, f"  - name: s\n    kind: sitemap\n    url: {server.url('/index.xml')}\n")
    assert [c["document"] for c in poll(fw, cfg)["changes"]] == [server.url("/p")]
    server.set("/leaf.xml", b"gone", status=404, content_type="text/plain")
    result = fw(cfg, "run", "--force", "--json")
    assert result.code == 1 and server.url("/leaf.xml") in result.json()["feeds"][0]["error"]
    assert result.json()["changes"] == []                       # nothing is removed because a sitemap failed
    server.set("/leaf.xml", sitemap([server.url("/p")])[:60], content_type="application/xml")   # cut short
    result = fw(cfg, "run", "--force", "--json")
    error = result.json()["feeds"][0]["error"]
    assert result.code == 1 and error.startswith(f"parse: s: sitemap {server.url('/leaf.xml')}: malformed sitemap")
    assert result.json()["changes"] == []


def test_preview_usage_errors(server: FeedServer, tmp_path: Path, fw: Callable[..., Any]) -> None:
    cfg = config(tmp_path, "")
    assert fw(cfg, "preview", "").code == 2
    feed = server.set("/feed.xml", rss([]))
    wrong = fw(cfg, "preview", feed, "--select", "main")
    assert wrong.code == 2 and "--follow" in wrong.err
    failing = fw(cfg, "preview", server.url("/nothing-here"), "--kind", "page", "--json")
    assert failing.code == 1 and "404" in failing.json()["errors"][0] and failing.json()["documents"] == []
