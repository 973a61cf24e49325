"""parse: every RSS/Atom flavour and encoding we claim, and the errors we promise."""

from __future__ import annotations

import gc
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.models import FetchResult, Validators
from monitor.normalize import normalize_item
from monitor.parse import _raw_json, parse
from monitor.prolog import strip_doctype
from tests.helpers import FIXTURES


def fetched(body: bytes, content_type: str | None = "application/xml",
            url: str = "https://example.org/feed") -> FetchResult:
    return FetchResult(url, 200, body, content_type, Validators())


def items(name: str, content_type: str | None = "application/xml"):  # type: ignore[no-untyped-def]
    feed = parse("t", fetched((FIXTURES / name).read_bytes(), content_type))
    return feed, [normalize_item(i, base="https://example.org/feed") for i in feed.items]


def test_rss091_in_iso_8859_1() -> None:
    feed, [item] = items("rss091.xml")
    assert feed.format == "rss091u" and feed.title == "Café news"
    assert item.title == "Résumé du jour"
    assert item.text == "Le café est ouvert, déjà & toujours."
    assert item.guid is None and item.link == "http://example.org/2026/resume"


def test_rss10_prefers_content_encoded() -> None:
    feed, [item] = items("rss10.xml")
    assert feed.format == "rss10"
    assert item.text == "## Full text\nThe complete body wins over the summary."


def test_rss20_relative_links_resolve_and_guids_stay_opaque() -> None:
    feed, [first, second] = items("rss20.xml")
    assert feed.format == "rss20"
    assert first.guid == "urn:example:1"
    assert first.link == "https://example.org/posts/relative.html"
    assert second.guid is None and second.text == "Plain text description."


def test_atom10_xhtml_content_html_title_and_text_content() -> None:
    feed, [xhtml, text] = items("atom10.xml")
    assert feed.format == "atom10"
    assert xhtml.title == "Markup in the title"
    assert xhtml.text == "# XHTML content\nInline markup."
    assert xhtml.link == "https://example.org/blog/first.html"          # xml:base honoured
    assert text.text == "First paragraph <not a tag>.\nSecond paragraph."


def test_utf16_with_bom() -> None:
    _, [item] = items("utf16.xml", None)
    assert item.title == "Ünïcödé ✓" and item.text == "Grüße aus Köln"


def test_undeclared_cp1252_is_detected() -> None:
    feed, [item] = items("cp1252.xml", "text/xml")
    assert item.title == "\u201cSmart quotes\u201d \u2013 dashes" and item.text == "café"
    assert feed.warnings                                                 # recorded, not fatal


def test_http_charset_wins_over_a_wrong_prolog() -> None:
    body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x</title>'
            '<item><guid>a</guid><title>déjà vu</title></item></channel></rss>').encode("iso-8859-1")
    feed = parse("t", fetched(body, "application/rss+xml; charset=iso-8859-1"))
    assert feed.items[0].title == "déjà vu"


@pytest.mark.parametrize(("body", "message"), [
    (b"<html><head><title>x</title></head><body>Hello</body></html>", "not an RSS or Atom feed (got an HTML page)"),
    (b"   \n", "empty response"),
    (b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item><title>a</ti', "malformed XML"),
    (b'{"json": "is not a feed"}', "not an RSS or Atom feed"),
])
def test_errors_name_the_feed_and_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as err:
        parse("my-feed", fetched(body))
    assert str(err.value).startswith("parse: my-feed: ") and message in str(err.value)


def test_lenient_accepts_a_truncated_feed() -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item><guid>a</guid>'
            b'<title>kept</title></item><item><title>cut')
    with pytest.raises(ParseError):
        parse("t", fetched(body))
    feed = parse("t", fetched(body), lenient=True)
    assert feed.items[0].title == "kept" and "parsed leniently" in feed.warnings[0]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_entity_declarations_are_refused(encoding: str) -> None:
    entity = "x" * 10_000
    bomb = (f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE rss [<!ENTITY big "{entity}">]><rss '
            f'version="2.0"><channel><title>t</title><item><guid>a</guid><title>t</title><description>'
            f'{"&big;" * 2000}</description></item></channel></rss>').encode(encoding)
    started = time.monotonic()
    with pytest.raises(ParseError, match="refused: the feed declares XML entities in its DOCTYPE"):
        parse("t", fetched(bomb))
    assert time.monotonic() - started < 5                       # a guard, not a benchmark: nothing expanded


def test_billion_laughs_is_refused() -> None:
    lol = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    body = (f'<?xml version="1.0"?><!DOCTYPE rss [{lol}]><rss version="2.0"><channel><title>t</title>'
            '<item><guid>a</guid><title>&lol9;</title></item></channel></rss>').encode()
    with pytest.raises(ParseError, match="declares XML entities"):
        parse("t", fetched(body), lenient=True)


def test_an_external_dtd_without_entities_is_fine() -> None:
    _, [item] = items("rss091.xml")             # the Netscape RSS 0.91 DTD reference
    assert item.title == "Résumé du jour"


def test_the_buffered_expat_driver_reads_every_corpus_step_like_the_default() -> None:
    """feedwatch turns on expat's text buffering (monitor.parse._BufferedExpat): same results, faster."""
    import feedparser.api

    from tests.helpers import corpus_steps

    def parsed() -> list[ParsedItemView]:
        return [tuple((i.guid, i.title, i.content) for i in parse("t", fetched(p.read_bytes()), fast=False).items)
                for p in corpus_steps()]
    buffered = parsed()
    drivers = list(feedparser.api.PREFERRED_XML_PARSERS)
    try:
        feedparser.api.PREFERRED_XML_PARSERS[:] = [d for d in drivers if d != "monitor.parse"]
        assert parsed() == buffered
    finally:
        feedparser.api.PREFERRED_XML_PARSERS[:] = drivers


ParsedItemView = tuple[tuple[str | None, str, str], ...]


RSS_ITEM = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title><item>'
            '<guid>a</guid><title>kept</title><description>{}</description></item></channel></rss>')


@pytest.mark.parametrize("prefix", [b"\n", b"  \r\n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n  "],
                         ids=["newline", "spaces", "bom", "bom-newline"])
def test_whitespace_or_a_bom_before_the_xml_declaration_parses_strictly(prefix: bytes) -> None:
    feed = parse("t", fetched(prefix + RSS_ITEM.format("body").encode()))
    assert [i.content for i in feed.items] == ["body"] and feed.warnings == ()


def test_a_doctype_inside_cdata_is_content_not_a_prolog() -> None:
    feed = parse("t", fetched(RSS_ITEM.format("<![CDATA[ <!DOCTYPE ]]>").encode()))
    assert [i.content for i in feed.items] == ["<!DOCTYPE"] and feed.warnings == ()


def test_the_entity_guard_holds_after_a_long_comment() -> None:
    body = ('<?xml version="1.0"?><!--' + "x" * 70_000 + '--><!DOCTYPE rss [<!ENTITY a "aaaa">]>'
            + RSS_ITEM.split("?>", 1)[1].format("&a;")).encode()
    with pytest.raises(ParseError, match="declares XML entities"):
        parse("t", fetched(body), lenient=True)


@pytest.mark.parametrize("declaration", ['<?xml version="1.0" encoding="utf-16"?>', ""], ids=["decl", "no-decl"])
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_guarded_and_read(codec: str, declaration: str) -> None:
    plain = declaration + RSS_ITEM.split("?>", 1)[1].format("wide")
    assert parse("t", fetched(plain.encode(codec), None)).items[0].content == "wide"
    bomb = declaration + '<!DOCTYPE rss [<!ENTITY a "aaaa">]>' + RSS_ITEM.split("?>", 1)[1].format("&a;")
    with pytest.raises(ParseError, match="declares XML entities"):
        parse("t", fetched(bomb.encode(codec), None), lenient=True)


def test_doctype_scanning_is_linear_on_repeated_unclosed_subsets() -> None:
    """strip_doctype's old regular expression backtracked (~7 s of CPU for 64 KiB); at 1 MiB it would run
    for minutes. The prolog scanner reads it once: the unclosed DOCTYPE swallows the body, which is then
    not a feed."""
    body = b"<!DOCTYPE a [" * ((1 << 20) // 13)
    started = time.process_time()
    assert strip_doctype(body) == b""
    with pytest.raises(ParseError, match="not an RSS or Atom feed"):
        parse("t", fetched(body))
    assert time.process_time() - started < 5                    # a guard, not a benchmark


def test_only_the_prolog_doctype_is_removed() -> None:
    body = (b'<?xml version="1.0"?>\n<!-- c --><?pi x?>\n<!DOCTYPE rss PUBLIC "-//x//>" "http://x/[">'
            b'<rss><![CDATA[<!DOCTYPE b>]]></rss>')
    assert strip_doctype(body) == b'<?xml version="1.0"?>\n<!-- c --><?pi x?>\n<rss><![CDATA[<!DOCTYPE b>]]></rss>'


def many_items(count: int) -> bytes:
    items = "".join(f"<item><guid>g{i}</guid><title>Item {i}</title></item>" for i in range(count))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


def test_items_past_the_cap_are_ignored_with_a_warning_naming_the_feed(caplog: pytest.LogCaptureFixture) -> None:
    import monitor.parse

    assert monitor.parse.MAX_ITEMS == 10_000                    # the documented default
    feed = parse("big-feed", fetched(many_items(10_003)))
    assert len(feed.items) == 10_000
    assert (feed.items[0].guid, feed.items[-1].guid) == ("g0", "g9999")   # the first ones, in feed order
    assert feed.warnings == ("10003 items, more than the limit of 10,000: the first 10,000 in feed order are "
                             "read, the others ignored",)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "feed=big-feed items=10003 limit=10000: the first 10000 in feed order are read"]


def test_the_cap_holds_for_a_json_feed_too_and_items_that_are_not_objects_are_said(
        caplog: pytest.LogCaptureFixture) -> None:
    """A JSON Feed of 20,000 items was read whole, without the warning an RSS feed gets."""
    from monitor import jsonfeed

    items: list[object] = [{"id": f"g{i}", "content_text": f"item {i}"} for i in range(10_003)]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "j", "items": items}).encode()
    feed = jsonfeed.parse("big-json", fetched(body))
    assert len(feed.items) == 10_000 and (feed.items[0].guid, feed.items[-1].guid) == ("g0", "g9999")
    assert feed.warnings == ("10003 items, more than the limit of 10,000: the first 10,000 in feed order are "
                             "read, the others ignored",)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "feed=big-json items=10003 limit=10000: the first 10000 in feed order are read"]
    junk = json.dumps({"version": "https://jsonfeed.org/version/1", "items": ["x", 5, None, {"id": 1}]}).encode()
    feed = jsonfeed.parse("junk", fetched(junk))
    assert [i.guid for i in feed.items] == ["1"]
    assert feed.warnings == ("3 of 4 items are not JSON objects; ignored",)


def test_the_cap_holds_for_a_feed_read_leniently(monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.parse

    monkeypatch.setattr(monitor.parse, "MAX_ITEMS", 3)
    broken = many_items(5).replace(b"</channel></rss>", b"<item><title>cut")
    feed = parse("t", fetched(broken), lenient=True)
    assert [i.guid for i in feed.items] == ["g0", "g1", "g2"]
    assert any("6 items, more than the limit of 3" in w for w in feed.warnings)


@pytest.mark.parametrize(("body", "content_type"), [
    (b'<?xml version="1.0" encoding="utf-7"?>+ADw-!DOCTYPE rss +AFsAPA-!ENTITY a +ACI-x+ACIAPgBdAD4-'
     b'<rss version="2.0"><channel><title>&a;</title></channel></rss>', None),
    (b'+ADw-!DOCTYPE rss +AFsAPA-!ENTITY a +ACI-x+ACIAPgBdAD4-<rss version="2.0"><channel><title>&a;</title>'
     b"</channel></rss>", "application/xml; charset=UTF-7"),
    ('<?xml version="1.0" encoding="cp037"?><!DOCTYPE rss [<!ENTITY a "x">]><rss version="2.0"><channel>'
     "<title>&a;</title></channel></rss>".encode("cp037"), None),
], ids=["utf-7-declared", "utf-7-charset", "ebcdic"])
def test_encodings_that_hide_markup_are_refused(body: bytes, content_type: str | None) -> None:
    """feedparser decodes a declared UTF-7 or EBCDIC body, and expat expanded the entity ('x' as the title)
    past the byte-level guard; a UTF-7 charset from HTTP is refused as well."""
    with pytest.raises(ParseError, match="refused: the feed is encoded in"):
        parse("t", fetched(body, content_type), lenient=True)


def test_the_fast_path_leaves_the_cycle_collector_as_it_found_it() -> None:
    body = (FIXTURES / "rss20.xml").read_bytes()
    assert gc.isenabled()
    assert parse("t", fetched(body)).format == "rss20"      # read by the fast path, which pauses the collector
    assert gc.isenabled()
    gc.disable()
    try:
        parse("t", fetched(body))
        assert not gc.isenabled()
    finally:
        gc.enable()


ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=12)
JSON_TEXT = st.lists(st.sampled_from(['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "\u2028",
                                      "\ud800", "\udfff", "é", "😀", "<p>", "x" * 300]) | ANY_TEXT,
                     max_size=12).map("".join)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(["author", "content_type", "id", "link", "published", "summary", "title",
                                        "updated"]), JSON_TEXT),
       JSON_TEXT, st.booleans(), st.none() | st.lists(JSON_TEXT, max_size=3))
def test_the_raw_json_is_json_dumps_byte_for_byte(fields: dict[str, str], content: str, long: bool,
                                                  tags: list[str] | None) -> None:
    raw: dict[str, object] = {**fields, "content": "x" * 2048 + content if long else content}
    if tags is not None:
        raw["tags"] = tags
    assert _raw_json(raw) == json.dumps(raw, ensure_ascii=False, sort_keys=True).encode("utf-8", "replace")
