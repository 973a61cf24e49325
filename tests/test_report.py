"""`feedwatch report`: HTML, markdown and Atom history reports, their filters, their safety, and streaming.

The corpus tests replay all 60 k8s-community steps through a real HTTP server and `run`, then read the
reports back (lxml for HTML, feedparser for Atom). The browser test opens the HTML report from file:// in
the distribution's Chromium. Period filters and streaming use histories recorded at chosen times through
the real stages and store (tests/history_data.py).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import lxml.etree
import lxml.html
import pytest
import yaml
from sqlalchemy import event

from monitor.errors import UsageError
from monitor.humanize import parse_when
from monitor.models import ReportScope
from monitor.reports import render_report
from monitor.reports.common import ReportMeta
from storage.history import History
from storage.store import Store
from tests.conftest import require
from tests.helpers import (
    FeedServer,
    empty_postgres,
    manifest,
    replay_corpus,
    run_cli,
    write_config,
)
from tests.history_data import Page, page_text, record

ATOM = "{http://www.w3.org/2005/Atom}"
CASES = Path(__file__).parent / "cases"
COC, MENTORING = (next(i["guid"] for i in manifest()["items"] if i["key"] == k) for k in ("coc", "mentoring"))


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ------------------------------------------------------------------------------------------------ corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole k8s-community history, replayed with `run`; the config and each step's `run --json`."""
    config, runs = replay_corpus(tmp_path_factory.mktemp("report-corpus"))
    history = run_cli("--config", str(config), "history", "--json")
    assert history.code == 0, history.err
    return {"config": str(config), "runs": runs, "history": history.json()["documents"]}


def version_at(corpus: dict[str, Any], step: int, guid: str) -> int:
    """The version a corpus step gave a document (from that step's `run --json`)."""
    [change] = [c for c in corpus["runs"][step]["changes"] if c["document"] == guid]
    return int(change["version"])


def report_html(config: str, *args: str) -> lxml.html.HtmlElement:
    result = run_cli("--config", config, "report", *args)
    assert result.code == 0, result.err
    return lxml.html.document_fromstring(result.out)


def articles_by_version(page: lxml.html.HtmlElement, doc_id: int) -> dict[int, lxml.html.HtmlElement]:
    [section] = page.xpath(f'//section[@id="doc-{doc_id}"]')
    out = {}
    for article in section.xpath('.//article[contains(@class, "change")]'):
        ver = squash(article.xpath('.//span[@class="ver"]')[0].text_content())
        out[int(re.search(r"v(\d+)$", ver).group(1))] = article  # type: ignore[union-attr]
    return out


def test_html_report_lists_every_recorded_change(corpus: dict[str, Any]) -> None:
    page = report_html(corpus["config"], "--format", "html")
    assert len(corpus["history"]) == 4
    total = 0
    for doc in corpus["history"]:
        recorded = [(v["kind"], v["version"]) for v in reversed(doc["versions"])]    # newest first
        [section] = page.xpath(f'//section[@id="doc-{doc["id"]}"]')
        assert squash(section.xpath("./h2")[0].text_content()) == doc["title"]
        shown = [(a.xpath('.//span[contains(@class, "badge")]')[0].text_content(),
                  int(re.search(r"v(\d+)$", squash(a.xpath('.//span[@class="ver"]')[0].text_content())).group(1)))
                 for a in section.xpath('.//article[contains(@class, "change")]')]
        assert shown == recorded, doc["title"]
        [row] = [r for r in page.xpath('//table[@class="summary"]//tr[td]')
                 if r.xpath(f'.//a[@href="#doc-{doc["id"]}"]')]
        assert int(row.xpath('./td[@class="num"]')[0].text_content()) == len(recorded)
        # The timeline draws every change: its bars' tooltips add up to the document's count.
        tips = [t.text for t in row.xpath('.//*[local-name()="rect"]/*[local-name()="title"]')]
        assert sum(int(m.group(1)) if (m := re.match(r"(\d+) changes", t)) else 1 for t in tips) == len(recorded)
        total += len(recorded)
    assert len(page.xpath('//article[contains(@class, "change")]')) == total == 56
    assert f"{total} changes in 4 documents" in squash(page.xpath('//p[@class="period"]')[0].text_content())


@pytest.mark.parametrize(("step", "old", "new"), [(36, "v1.0", "v1.1"), (38, "v1.1", "v1.2"), (44, "v1.2", "v1.3")])
def test_html_report_shows_the_coc_version_bumps(corpus: dict[str, Any], step: int, old: str, new: str) -> None:
    page = report_html(corpus["config"])
    doc_id = next(d["id"] for d in corpus["history"] if d["document"] == COC)
    article = articles_by_version(page, doc_id)[version_at(corpus, step, COC)]
    text = squash(article.text_content())
    assert f"CNCF Community Code of Conduct {old}{new}" in text      # the heading, old word struck, new inserted
    assert old in [squash(d.text_content()) for d in article.iter("del")]
    assert new in [squash(i.text_content()) for i in article.iter("ins")]
    assert f"CNCF Community Code of Conduct {new}" in squash(article.xpath(".//h3")[0].text_content())


@pytest.mark.parametrize(("step", "moved"), [(55, "The 1:1 Hour"), (56, "Google Season of Docs (2019-2024)")])
def test_html_report_shows_the_discontinued_activities_moves(corpus: dict[str, Any], step: int, moved: str) -> None:
    page = report_html(corpus["config"])
    doc_id = next(d["id"] for d in corpus["history"] if d["document"] == MENTORING)
    article = articles_by_version(page, doc_id)[version_at(corpus, step, MENTORING)]
    moves = [line for line in article.text_content().split("\n") if "Moved" in line]
    assert any(f"\u201c{moved}\u201d" in m and m.endswith("from Current mentoring activities to Discontinued "
                                                        "activities") for m in map(squash, moves)), moves


def test_html_report_is_self_contained_and_inert(corpus: dict[str, Any]) -> None:
    result = run_cli("--config", corpus["config"], "report")
    page = lxml.html.document_fromstring(result.out)
    [csp] = page.xpath('//meta[@http-equiv="Content-Security-Policy"]/@content')
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert not page.xpath("//script | //iframe | //object | //embed | //img | //link[@rel='stylesheet']")
    assert not [a for a in page.xpath("//*/@*") if a.attrname.lower().startswith("on")]
    for href in page.xpath("//a/@href"):
        assert href.startswith(("#", "https://", "http://")), href
    assert page.xpath("//style") and page.xpath('//meta[@name="viewport"]')
    style = page.xpath("//style")[0].text
    assert "@media print" in style and "@media (max-width" in style
    assert "url(" not in style and "@import" not in style and not page.xpath("//@src")


def test_markdown_report_has_the_same_content(corpus: dict[str, Any]) -> None:
    result = run_cli("--config", corpus["config"], "report", "--format", "markdown")
    assert result.code == 0, result.err
    md = result.out
    total = sum(len(d["versions"]) for d in corpus["history"])
    assert len(re.findall(r"^### ", md, re.M)) == total
    for doc in corpus["history"]:
        assert re.search(rf"\| {len(doc['versions'])} \|", md)
    for old, new in (("v1.0", "v1.1"), ("v1.1", "v1.2"), ("v1.2", "v1.3")):
        assert re.search(rf"~~{re.escape(old)}~~\s*\*\*{re.escape(new)}\*\*", md), (old, new)
    # "Google Season of Docs **(2019-2024)**": words added on the way (a zero-width space inside the marks)
    unmarked = md.replace("**", "").replace("\u200b", "")
    for moved in ("The 1:1 Hour", "Google Season of Docs (2019-2024)"):
        assert re.search(rf"Moved [^\n]*\u201c{re.escape(moved)}\u201d[^\n]* from _?Current mentoring activities_? to "
                         r"_?Discontinued activities", unmarked), moved


def test_atom_report_of_the_corpus_has_one_entry_per_change(corpus: dict[str, Any]) -> None:
    result = run_cli("--config", corpus["config"], "report", "--format", "atom")
    feed = feedparser.parse(result.out)
    assert not feed.bozo and feed.version == "atom10"
    assert len(feed.entries) == sum(len(d["versions"]) for d in corpus["history"]) == 56
    assert len({e.id for e in feed.entries}) == 56
    summaries = {(d["document"], v["version"]): v["summary"] for d in corpus["history"] for v in d["versions"]}
    for entry in feed.entries:
        version = int(entry.summary.rsplit("v", 1)[1])
        summary = summaries[entry.link, version]        # the title is the document's title then + the summary
        assert entry.title.startswith("Community: ") and entry.title.endswith(": " + summary[0].upper() + summary[1:])


# ------------------------------------------------------------------------------------------------ browser

PAYLOAD_JS = "document.title='pwned';document.body.appendChild(document.createElement('blink'))"
HOSTILE_ITEM = """<item><guid>evil-1</guid><link>javascript:{js}</link>
<title>Evil {n} &lt;script&gt;{js}&lt;/script&gt; &lt;img src=x onerror="{js}"&gt;</title>
<description>&lt;h2&gt;Payloads &amp;lt;img src=x onerror=alert(1)&amp;gt;&lt;/h2&gt;
&lt;p&gt;Visible &amp;lt;script&amp;gt;alert('xss{n}')&amp;lt;/script&amp;gt; text {n}.&lt;/p&gt;
&lt;script&gt;alert('real')&lt;/script&gt;
&lt;p&gt;&amp;lt;img src=x onerror="{js}"&amp;gt; line {n}&lt;/p&gt;</description>
</item>"""
CHROMIUM = Path(os.environ.get("FEEDWATCH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def hostile_feed(n: int) -> str:
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Hostile</title>"
            f"<link>https://example.org/</link><description>x</description>"
            f"{HOSTILE_ITEM.format(n=n, js=PAYLOAD_JS.replace(chr(39), '&apos;'))}</channel></rss>")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """The distribution's Chromium driven by Playwright (whose event loop then runs in this thread: start it
    after any `feedwatch run`, which runs its own)."""
    if not CHROMIUM.exists():
        require("Chromium", f"{CHROMIUM} not found (apt-get install chromium, or set FEEDWATCH_TEST_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require("Chromium", "the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def open_page(browser: Any, path: Path, width: int = 1200) -> tuple[Any, dict[str, list[str]]]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    seen: dict[str, list[str]] = {"dialogs": [], "console": [], "errors": [], "requests": []}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("console", lambda m: seen["console"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(300)     # let any timer- or load-triggered payload fire (none may)
    return page, seen


def keep_artifact(path: Path) -> None:
    target = os.environ.get("FEEDWATCH_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


@pytest.mark.browser
def test_hostile_feed_text_renders_as_text_in_chromium(server: FeedServer, tmp_path: Path) -> None:
    url = server.set("/hostile.xml", hostile_feed(1))
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - name: hostile\n    url: {url}\n")
    for n in (1, 2):     # added, then changed: the payload is in the title, the opening lines and the diff
        server.set("/hostile.xml", hostile_feed(n))
        assert run_cli("--config", str(config), "run", "--force").code == 0
    stored = run_cli("--config", str(config), "history", "--json").json()["documents"][0]
    assert "<script>" in stored["title"] and "onerror=" in stored["title"]      # the payload really got in
    report = tmp_path / "report.html"
    assert run_cli("--config", str(config), "report", "--output", str(report)).code == 0
    without_csp = tmp_path / "report-without-csp.html"      # escaping alone must keep it inert
    without_csp.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "",
                                  report.read_text(encoding="utf-8")), encoding="utf-8")
    assert "Content-Security-Policy" not in without_csp.read_text(encoding="utf-8")

    with chromium() as browser:
        check_inert_report(browser, report, tmp_path)
        check_inert_report(browser, without_csp, tmp_path)
        phone, _ = open_page(browser, report, width=390)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390      # no sideways scrolling
        phone.screenshot(path=str(tmp_path / "report-phone.png"), full_page=True)
        keep_artifact(tmp_path / "report-phone.png")


def check_inert_report(browser: Any, path: Path, tmp_path: Path) -> None:
    """`path` renders, runs nothing, loads nothing and shows the payloads as text."""
    page, seen = open_page(browser, path)
    shot = tmp_path / f"{path.stem}.png"
    page.screenshot(path=str(shot), full_page=True)
    keep_artifact(shot)
    assert shot.stat().st_size > 10_000
    assert seen["dialogs"] == [] and seen["errors"] == [] and seen["console"] == [], seen
    assert seen["requests"] == [path.as_uri()]
    assert page.title() == "Changes in hostile \u2014 feedwatch"
    counts = page.evaluate("""() => ({
        scripts: document.querySelectorAll('script').length, imgs: document.querySelectorAll('img').length,
        blinks: document.querySelectorAll('blink').length,
        handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(
            a => a.name.startsWith('on'))).length,
        hrefs: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))})""")
    assert counts["scripts"] == counts["imgs"] == counts["blinks"] == counts["handlers"] == 0, counts
    assert all(h.startswith("#") for h in counts["hrefs"]), counts["hrefs"]   # javascript: link dropped
    body = page.inner_text("body")
    assert "<script>document.title='pwned';" in body and '<img src=x onerror="document.title' in body
    assert "Visible <script>alert('xss1')</script> text 1." in body         # the added version's opening
    assert page.locator("h1").is_visible() and page.locator("svg.timeline").first.bounding_box()["width"] > 100


# ------------------------------------------------------------------------------------------------ Atom


def rss(items: dict[str, str]) -> str:
    body = "".join(f"<item><guid>{g}</guid><link>https://example.org/{g}</link><title>Page {g}</title>"
                   f"<description>&lt;h2&gt;Rules&lt;/h2&gt;&lt;p&gt;{text}&lt;/p&gt;</description></item>"
                   for g, text in items.items())
    return f"<rss version='2.0'><channel><title>t</title><link>https://example.org/</link>{body}</channel></rss>"


def test_atom_feed_is_valid_and_keeps_its_entry_ids(server: FeedServer, tmp_path: Path) -> None:
    url = server.set("/feed.xml", rss({"a": "one two three", "b": "alpha beta"}))
    config = str(write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                              f"report_url: https://reports.example.org/changes.html\n"
                              f"feeds:\n  - name: site\n    url: {url}\n"))
    for items in ({"a": "one two three", "b": "alpha beta"}, {"a": "one 2 three", "b": "alpha beta"},
                  {"a": "one 2 three", "b": "alpha beta gamma"}):
        server.set("/feed.xml", rss(items))
        assert run_cli("--config", config, "run", "--force").code == 0

    def atom() -> tuple[Any, lxml.etree._Element]:
        result = run_cli("--config", config, "report", "--format", "atom")
        assert result.code == 0, result.err
        return feedparser.parse(result.out), lxml.etree.fromstring(result.out.encode())

    before, tree = atom()
    history = run_cli("--config", config, "history", "--json").json()["documents"]
    times = sorted((v["time"] for d in history for v in d["versions"]), reverse=True)
    assert not before.bozo and before.version == "atom10"
    assert [e.updated for e in before.entries] == times and len(before.entries) == 4
    assert before.feed.updated == times[0] and before.feed.id.startswith("tag:")
    assert before.feed.author == "feedwatch" and before.feed.link == "https://reports.example.org/changes.html"
    for entry in before.entries:
        assert re.fullmatch(r"tag:feedwatch,\d{4}:site/\d+/\d+", entry.id)
        assert entry.link in ("https://example.org/a", "https://example.org/b")
        assert entry.content[0].type == "text/html" and entry.updated_parsed and entry.published_parsed
    newest = before.entries[0]
    assert newest.title == "Page b: Rules: 1 paragraph changed, 1 word added"
    assert "<ins" in newest.content[0].value and "gamma" in newest.content[0].value
    # RFC 4287 structure: one id, title and updated per entry and for the feed.
    for element in [tree, *tree.iter(f"{ATOM}entry")]:
        for child in ("id", "title", "updated"):
            assert len(element.findall(f"{ATOM}{child}")) == 1, child

    server.set("/feed.xml", rss({"a": "one 2 three 4", "b": "alpha beta gamma"}))
    assert run_cli("--config", config, "run", "--force").code == 0
    after, _ = atom()
    old_ids, new_ids = [e.id for e in before.entries], [e.id for e in after.entries]
    assert set(old_ids) < set(new_ids) and len(new_ids) == len(old_ids) + 1
    assert new_ids[1:] == old_ids and after.feed.id == before.feed.id
    assert {e.id: e.updated for e in after.entries[1:]} == {e.id: e.updated for e in before.entries}


# ------------------------------------------------------------------------------------------------ filters

T0 = datetime(2024, 1, 10, 12, tzinfo=UTC)


@pytest.fixture
def dated(tmp_path: Path) -> dict[str, Any]:
    """alpha/a: added 2024-01-10, changed 02-10 and 03-10; beta/b: added 02-15, changed 03-20; alpha/c:
    added 40 days ago and changed 10 days ago. All at 12:00 UTC."""
    database = f"sqlite:///{tmp_path / 'fw.db'}"
    store = Store.open(database)
    now = datetime.now(UTC).replace(microsecond=0)

    def a(v: int) -> Page:
        return Page("a", "Doc A", page_text(1, v), "https://example.org/a")

    def c(v: int) -> Page:
        return Page("c", "Doc C", page_text(3, v), "https://example.org/c")
    try:
        record(store, "alpha", T0, [a(1)])
        record(store, "alpha", T0 + timedelta(days=31), [a(2)])
        record(store, "beta", T0 + timedelta(days=36), [Page("b", "Doc B", page_text(2, 1))])
        record(store, "alpha", T0 + timedelta(days=60), [a(3)])
        record(store, "beta", T0 + timedelta(days=70), [Page("b", "Doc B", page_text(2, 2))])
        record(store, "alpha", now - timedelta(days=40), [a(3), c(1)])
        record(store, "alpha", now - timedelta(days=10), [a(3), c(2)])
    finally:
        store.close()
    config = write_config(tmp_path / "feedwatch.yaml", f"database: {database}\n"
                          "feeds:\n  - name: alpha\n    url: a.xml\n  - name: beta\n    url: b.xml\n")
    return {"config": str(config)}


def entries(config: str, *args: str) -> list[tuple[str, str]]:
    """(document title, version label) of each change an Atom report lists, newest first."""
    result = run_cli("--config", config, "report", "--format", "atom", *args)
    assert result.code == 0, result.err
    return [(e.title.split(":")[0], e.summary.rsplit(" \u00b7 ", 1)[1]) for e in feedparser.parse(result.out).entries]


FILTERS = {
    "everything": ([], [("Doc C", "v1 → v2"), ("Doc C", "v1"), ("Doc B", "v1 → v2"), ("Doc A", "v2 → v3"),
                        ("Doc B", "v1"), ("Doc A", "v1 → v2"), ("Doc A", "v1")]),
    "period": (["--since", "2024-02-01T00:00Z", "--until", "2024-03-01T00:00Z"],
               [("Doc B", "v1"), ("Doc A", "v1 → v2")]),
    "until-is-exclusive": (["--until", "2024-02-10T12:00Z"], [("Doc A", "v1")]),
    "since-is-inclusive": (["--since", "2024-03-20T12:00Z", "--until", "2024-12-31T00:00Z"],
                           [("Doc B", "v1 → v2")]),
    "age": (["--since", "30d"], [("Doc C", "v1 → v2")]),
    "age-and-until": (["--since", "60d", "--until", "20d"], [("Doc C", "v1")]),
    "one-feed": (["--feed", "beta"], [("Doc B", "v1 → v2"), ("Doc B", "v1")]),
    "two-feeds": (["--feed", "beta", "--feed", "alpha", "--until", "2024-02-20T00:00Z"],
                  [("Doc B", "v1"), ("Doc A", "v1 → v2"), ("Doc A", "v1")]),
    "one-document": (["--document", "a"], [("Doc A", "v2 → v3"), ("Doc A", "v1 → v2"), ("Doc A", "v1")]),
    "document-and-period": (["--document", "https://example.org/a", "--since", "2024-02-01T00:00Z"],
                            [("Doc A", "v2 → v3"), ("Doc A", "v1 → v2")]),
}


@pytest.mark.parametrize("name", FILTERS)
def test_report_filters(dated: dict[str, Any], name: str) -> None:
    args, expected = FILTERS[name]
    assert entries(dated["config"], *args) == expected


def test_filters_apply_to_the_html_overview_and_body(dated: dict[str, Any]) -> None:
    page = report_html(dated["config"], "--since", "2024-02-01T00:00Z", "--until", "2024-03-01T00:00Z")
    rows = {squash(r.xpath('./td[@class="doc"]')[0].text_content()): int(r.xpath('./td[@class="num"]')[0].text)
            for r in page.xpath('//table[@class="summary"]//tr[td]')}
    assert rows == {"Doc A": 1, "Doc B": 1}       # Doc C did not exist yet
    assert len(page.xpath("//article")) == 2
    assert squash(page.xpath('//p[@class="period"]')[0].text_content()).startswith(
        "2024-02-01 00:00 UTC \u2013 2024-03-01 00:00 UTC \u00b7 2 changes in 2 documents")
    quiet = report_html(dated["config"], "--since", "2024-04-01T00:00Z", "--until", "2024-05-01T00:00Z")
    assert "Nothing changed in this period." in quiet.text_content() and not quiet.xpath("//article")


def test_added_reverted_and_removed_changes_say_so(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'fw.db'}"
    store = Store.open(database)
    try:
        versions = [page_text(5, 1), page_text(5, 2), page_text(5, 1)]      # the third returns to the first
        for day, text in enumerate(versions):
            record(store, "site", T0 + timedelta(days=day), [Page("p", "Policy", text, "https://example.org/p")])
        record(store, "site", T0 + timedelta(days=3), [])                    # gone (removal_grace 1)
    finally:
        store.close()
    config = str(write_config(tmp_path / "feedwatch.yaml", f"database: {database}\n"))
    page = report_html(config)
    articles = page.xpath("//article")
    kinds = [a.xpath('.//span[contains(@class, "badge")]')[0].text for a in articles]
    assert kinds == ["removed", "reverted", "changed", "added"]
    removed, reverted, _, added = (squash(" ".join(a.itertext())) for a in articles)
    assert "Removed from the feed (its last version was v3)." in removed
    assert "Reverted to version 1" in reverted and "v2 \u2192 v3" in reverted
    assert "New document when feedwatch first read the feed. It begins: Document 5 Section 0" in added
    assert "item 0 of document 5" in added and "Section 3" not in added        # the first lines only
    assert page.xpath('//td[@class="doc"]/span[@class="tag"]')[0].text == "removed"
    markdown = run_cli("--config", config, "report", "--format", "markdown").out
    assert "Removed from the feed (its last version was v3)." in markdown
    assert "### Reverted to version 1" in markdown and "> # Document 5" in markdown
    atom = feedparser.parse(run_cli("--config", config, "report", "--format", "atom").out)
    assert [e.tags[0].term for e in atom.entries] == kinds


REPORT_ERRORS = {
    "bad-since": (["--since", "yesterday"], "report: --since 'yesterday': not a date, date-time or age"),
    "bad-until": (["--until", "3x"], "report: --until '3x': not a date, date-time or age"),
    "empty-when": (["--since", ""], "report: --since '': not a date"),
    "inverted-period": (["--since", "2024-03-01", "--until", "2024-02-01"], "is not before --until"),
    "unknown-feed": (["--feed", "gamma"], "report: --feed gamma: no such feed in the database (feeds: alpha, beta)"),
    "document-outside-feed": (["--feed", "beta", "--document", "a"], "is in feed alpha, not in beta"),
    "unknown-document": (["--document", "zzz"], "no document matches 'zzz'"),
    "bad-format": (["--format", "pdf"], "argument --format: invalid choice: 'pdf'"),
    "output-directory-missing": (["--output", "missing/dir/report.html"], "report: --output missing/dir/report.html"),
}


@pytest.mark.parametrize("name", REPORT_ERRORS)
def test_bad_report_input_is_one_line_exit_2(dated: dict[str, Any], name: str) -> None:
    args, expected = REPORT_ERRORS[name]
    result = run_cli("--config", dated["config"], "report", *args)
    assert result.code == 2 and result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err


def test_output_writes_the_file_and_nothing_to_stdout(dated: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "public" / "changes.html"
    target.parent.mkdir()
    target.write_text("the previous report")
    for fmt, start in (("html", "<!DOCTYPE html>"), ("markdown", "# Changes in 2 feeds"),
                       ("atom", "<?xml version")):
        result = run_cli("--config", dated["config"], "report", "--format", fmt, "--output", str(target))
        assert result.code == 0 and result.out == "", result.err
        assert target.read_text(encoding="utf-8").startswith(start)
    assert sorted(p.name for p in target.parent.iterdir()) == ["changes.html"]    # no temporary file left


@pytest.mark.parametrize("case", yaml.safe_load((CASES / "report_when.yaml").read_text())["valid"],
                         ids=lambda c: f"{c['value']}{'-end' if c.get('end') else ''}")
def test_when_values(case: dict[str, Any]) -> None:
    now = datetime.fromisoformat(yaml.safe_load((CASES / "report_when.yaml").read_text())["now"])
    expected = datetime.fromisoformat(case["expected"]) if "expected" in case else \
        datetime.fromisoformat(case["local"]).astimezone().astimezone(UTC)
    assert parse_when(case["value"], now=now, end=case.get("end", False)) == expected


@pytest.mark.parametrize("value", yaml.safe_load((CASES / "report_when.yaml").read_text())["invalid"])
def test_bad_when_values(value: str) -> None:
    with pytest.raises(UsageError, match="not a date, date-time or age"):
        parse_when(value, now=T0)


@pytest.mark.parametrize("case", yaml.safe_load((CASES / "report_when.yaml").read_text())["out_of_range"],
                         ids=lambda c: c["value"])
def test_when_values_out_of_range(case: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match=r"'.*': out of range \(years 1 to 9999\)"):
        parse_when(case["value"], now=T0, end=case.get("end", False))


# ------------------------------------------------------------------------------------------------ streaming

DOCS, POLLS, PAGE = 30, 70, 50          # 2,100 changes (30 per poll share one detection time)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def large(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """2,100 changes, recorded once per database for the read-only streaming tests."""
    database = f"sqlite:///{tmp_path_factory.mktemp('large') / 'fw.db'}"
    if request.param == "postgresql":
        database = request.getfixturevalue("postgres_server")
        empty_postgres(database)
    store = Store.open(database)
    try:
        for poll in range(POLLS):
            record(store, "big", T0 + timedelta(hours=poll),
                   [Page(f"d{d}", f"Document {d}", page_text(d, poll)) for d in range(DOCS)])
        yield store
    finally:
        store.close()


class PageQueries:
    """Counts the change-page queries (SELECT … FROM changes … LIMIT) an engine runs: `full` ones read diffs,
    `light` ones (timelines) do not."""

    def __init__(self) -> None:
        self.light = self.full = 0

    def seen(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "FROM changes" in statement and "LIMIT" in statement:
            if "blobs" in statement:
                self.full += 1
            else:
                self.light += 1


@pytest.fixture
def queries(large: Store) -> Iterator[PageQueries]:
    counter = PageQueries()
    event.listen(large.engine, "before_cursor_execute", counter.seen)
    yield counter
    event.remove(large.engine, "before_cursor_execute", counter.seen)


@pytest.mark.slow
def test_changes_are_read_lazily_page_by_page(large: Store, queries: PageQueries) -> None:
    with History.open(large.engine, ReportScope(), page=PAGE) as history:
        changes = history.changes()
        assert isinstance(changes, Iterator) and queries.full == 0       # nothing read before it is asked for
        seen = [next(changes).change.id]
        assert queries.full == 1
        seen += [next(changes).change.id for _ in range(PAGE)]
        assert queries.full == 2                                         # the next page only when needed
        seen += [c.change.id for c in changes]
    total = DOCS * POLLS
    assert queries.full == total // PAGE + 1                             # every page, one short/empty end
    assert len(seen) == len(set(seen)) == total                          # ties on detected_at: none lost or doubled


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["html", "markdown", "atom"])
def test_reports_render_while_they_read(large: Store, queries: PageQueries, fmt: str) -> None:
    meta = ReportMeta(ReportScope(), datetime.now(UTC))
    marker = {"html": "<article", "markdown": "\n### ", "atom": "<entry>"}[fmt]
    with History.open(large.engine, ReportScope(), page=PAGE) as history:
        chunks = render_report(fmt, history, meta)
        assert isinstance(chunks, Iterator) and queries.full == 0
        written = ""
        while marker not in written:
            written += next(chunks)
        assert queries.full == 1           # the first change is out before the second page is read
        count = written.count(marker) + sum(chunk.count(marker) for chunk in chunks)
    assert count == DOCS * POLLS
    per_document = math.ceil((POLLS + 1) / PAGE)
    assert queries.full == (DOCS * POLLS // PAGE + 1 if fmt == "atom" else DOCS * per_document)


@pytest.mark.parametrize("fmt", ["html", "markdown", "atom"])
def test_a_report_with_nothing_recorded_yet(tmp_path: Path, fmt: str) -> None:
    """A feed that has only failed so far: the report says there is nothing, it does not crash."""
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: gone, url: '{tmp_path / 'missing.xml'}'}}\n")
    assert run_cli("--config", str(config), "run").code == 1
    result = run_cli("--config", str(config), "report", "--format", fmt)
    assert result.code == 0, result.err
    assert result.out.strip()
