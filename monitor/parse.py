"""Bytes + headers -> ParsedFeed: the only module that imports feedparser.

feedparser reads RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 and sniffs encodings from the body and the
Content-Type. Its field names stop here. Two decisions:

- feedparser's HTML sanitiser and relative-URI resolution are switched off: they cost about three
  quarters of its time, and feedwatch never emits item HTML (normalize extracts text; every renderer
  escapes). Relative links are resolved by normalize, against the final URL, when a feed wants links.
- A feed whose DOCTYPE declares entities is refused, and any other DOCTYPE is removed before parsing.
  Real feeds do not need entity declarations, and feedparser's lenient fallback would otherwise expand a
  quadratic entity bomb itself (8.9 s and 890 MB for a 110 KB feed, notes/libraries.md §3.7). UTF-16 and
  UTF-32 bodies (with or without a BOM) are re-encoded as UTF-8 first, so the check sees their markup too.
  Only the real prolog is read (:func:`scan_prolog`, linear, any length): a ``<!DOCTYPE`` inside CDATA
  or the document is content. Whitespace before ``<?xml`` is removed (a common real-world defect).

Well-formed RSS 2.0 and Atom 1.0 are read by monitor.fastparse (lxml) instead, when it is sure to give
exactly what feedparser gives (tests/test_fastparse.py compares the two); it gets feedparser's own tables and
helpers from here (``_REFERENCE``) and declines everything else, which feedparser then reads as before.

What counts as an error: no RSS/Atom root at all, or XML that is broken (truncated, mismatched tags) —
unless the feed is configured ``lenient: true``. Undefined HTML entities such as ``&rsquo;`` in the XML
are common and harmless: the lenient parser decodes them, and the feed is accepted with a warning.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import io
import json
import logging
import re
import xml.sax.expatreader
from collections.abc import Callable, Iterator
from typing import Any

import feedparser
import feedparser.api
import feedparser.exceptions
import feedparser.html
import feedparser.mixin
import feedparser.urls

from monitor import fastparse
from monitor.body import EntryFilter
from monitor.errors import ParseError
from monitor.models import FetchResult, ParsedFeed, ParsedItem
from monitor.prolog import scan_prolog

log = logging.getLogger("feedwatch.parse")

MAX_ITEMS = 10_000      # items read per feed; the first ones in feed order (a feed lists its newest first)
_ENCODING_DECL = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""")
_HARMLESS = ("undefined entity",)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class _BufferedExpat(xml.sax.expatreader.ExpatParser):
    """The SAX expat driver with expat's text buffering on.

    Without it expat reports the text of an escaped HTML description in pieces split at every ``&lt;``
    and ``&gt;``, and feedparser handles each piece: about 10,000 callbacks for a 20-item feed. Buffered,
    the same text arrives in a few pieces and feedparser runs three times faster, with identical results
    (tests/test_parse.py checks both drivers agree on the corpus).
    """

    def reset(self) -> None:
        super().reset()
        parser = self._parser  # type: ignore[attr-defined]  # the pyexpat parser, set by reset()
        parser.buffer_text = True
        parser.buffer_size = 1 << 16

    def setContentHandler(self, handler: Any) -> None:
        """feedparser's handler, behind the body rule's filter (monitor.body)."""
        super().setContentHandler(EntryFilter(handler, _prefix_lookup(handler), _known_element(handler),
                                              max_entries=MAX_ITEMS))


def _prefix_lookup(handler: Any) -> Callable[[str | None], str | None]:
    """feedparser's prefix for a namespace URI ('' for the RSS/Atom core), None for one it does not know."""
    def prefix_of(uri: str | None) -> str | None:
        lower = (uri or "").lower()
        if "backend.userland.com/rss" in lower:    # feedparser matches any of these (parsers/strict.py)
            return ""
        prefix: str | None = handler._matchnamespaces.get(lower)
        return prefix
    return prefix_of


def _known_element(handler: Any) -> Callable[[str, str], bool]:
    """Whether feedparser has a handler for an element (its own dispatch: mixin.unknown_starttag)."""
    def knows(prefix: str, local: str) -> bool:
        return hasattr(handler, f"_start_{prefix}_{local}" if prefix else f"_start_{local}")
    return knows


def create_parser(*args: Any, **kwargs: Any) -> _BufferedExpat:
    """The SAX driver factory that feedparser finds through PREFERRED_XML_PARSERS (see below)."""
    return _BufferedExpat(*args, **kwargs)


if __name__ not in feedparser.api.PREFERRED_XML_PARSERS:
    feedparser.api.PREFERRED_XML_PARSERS.insert(0, __name__)




def strip_leading_space(body: bytes) -> bytes:
    """Whitespace before the XML declaration (after a BOM, if any) removed.

    "XML or text declaration not at start of entity" is one of the most common real-world defects
    (a newline printed by a template before ``<?xml``); feedparser reads such feeds, and so do we.
    """
    bom = codecs.BOM_UTF8 if body.startswith(codecs.BOM_UTF8) else b""
    rest = body[len(bom):]
    stripped = rest.lstrip(b" \t\r\n")
    return body if len(stripped) == len(rest) else bom + stripped


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _wide_codec(body: bytes) -> str | None:
    """UTF-16/32 by its BOM, or without one by the zero bytes around the first ASCII characters (any
    document starts with "<" or whitespace, XML 1.0 Appendix F)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec
    zeros = "".join("0" if b == 0 else "x" for b in body[:4])
    return _ZERO_PATTERNS.get(zeros)


_ZERO_PATTERNS = {"x000": "utf-32-le", "000x": "utf-32-be", "x0x0": "utf-16-le", "0x0x": "utf-16-be"}


def as_utf8(body: bytes) -> bytes:
    """UTF-16/32 bodies re-encoded as UTF-8, so the DOCTYPE guard above can see their markup."""
    codec = _wide_codec(body)
    if codec is None:
        return body
    text = body.decode(codec, errors="replace").lstrip("\ufeff")
    return _ENCODING_DECL.sub(r'\1"utf-8"', text, count=1).encode("utf-8")


_UTF7 = re.compile(rb"""(?:^\s*<\?xml[^>]*encoding|charset)\s*=\s*["']?(?:unicode-1-1-|x-)?utf-?7\b""", re.I)
_EBCDIC = b"\x4c\x6f\xa7\x94"     # "<?xm" in EBCDIC, which feedparser decodes


def hidden_markup_encoding(body: bytes, content_type: str | None) -> str | None:
    """UTF-7 or EBCDIC: encodings in which the prolog's markup is not ASCII, so no byte-level guard can
    read it, while feedparser decodes them and expat would expand the entities it then finds."""
    if body.startswith(_EBCDIC):
        return "EBCDIC"
    if _UTF7.search(body[:512]) or (content_type and _UTF7.search(content_type.encode("latin-1", "replace"))):
        return "UTF-7"
    return None


def parse(name: str, fetched: FetchResult, *, lenient: bool = False, fast: bool = True) -> ParsedFeed:
    """Parse a fetched body. Raises ParseError naming the feed when it is not a usable feed.

    Well-formed RSS 2.0 and Atom 1.0 are read by monitor.fastparse when it is sure to give what feedparser
    gives; everything else, or everything with ``fast=False`` (the reference, for tests and benchmarks),
    by feedparser."""
    body = _guarded(name, fetched)
    if fast:
        feed = _read_fast(body, fetched.content_type)
        if feed is not None:
            return feed
    # No Content-Location: feedparser would resolve guids against it, and a guid is an opaque identifier.
    # Relative links are resolved by normalize, against the final URL.
    headers = {}
    if fetched.content_type:
        headers["content-type"] = fetched.content_type
    try:
        d = feedparser.parse(io.BytesIO(body), response_headers=headers,
                             sanitize_html=False, resolve_relative_uris=False)
    except (ValueError, UnicodeError, LookupError, RecursionError) as exc:   # feedparser bugs on hostile bytes
        raise ParseError(name, f"unreadable feed ({type(exc).__name__}: {_first_line(exc)})") from None
    warnings = _check(name, d, body, lenient)
    entries = d.get("entries", [])
    warnings += over_limit(name, len(entries) + int(d.get("feed", {}).get("feedwatch_dropped", 0)))
    return _feed(d.get("version", ""), d.get("feed", {}), entries[:MAX_ITEMS], warnings)


def over_limit(name: str, total: int) -> tuple[str, ...]:
    """The warning (also logged) for a feed of `total` items, when that is more than MAX_ITEMS."""
    if total <= MAX_ITEMS:
        return ()
    log.warning("feed=%s items=%d limit=%d: the first %d in feed order are read", name, total, MAX_ITEMS,
                MAX_ITEMS)
    return (f"{total} items, more than the limit of {MAX_ITEMS:,}: the first {MAX_ITEMS:,} in feed order are "
            "read, the others ignored",)


def parse_fast(name: str, fetched: FetchResult) -> ParsedFeed | None:
    """The fast path alone, behind the same guards: None when it leaves the feed to feedparser."""
    return _read_fast(_guarded(name, fetched), fetched.content_type)


def _guarded(name: str, fetched: FetchResult) -> bytes:
    """The body either parser may read: re-encoded, refused if it hides or declares entities, DOCTYPE cut."""
    body = strip_leading_space(as_utf8(fetched.body))
    if not body.strip():
        raise ParseError(name, "empty response (no feed)")
    hidden = hidden_markup_encoding(body, fetched.content_type)
    if hidden:
        raise ParseError(name, f"refused: the feed is encoded in {hidden}, which hides its markup from the "
                               "entity guard (real feeds do not use it)")
    prolog = scan_prolog(body)
    if prolog.declares_entities:
        raise ParseError(name, "refused: the feed declares XML entities in its DOCTYPE (entity expansion can "
                               "exhaust memory; real feeds do not need them)")
    return body[:prolog.start] + body[prolog.end:]


def _urljoin(base: str, uri: str) -> str:
    """feedparser.urls._urljoin, without its regex and urllib calls where they cannot change `uri`: with no
    base, urllib returns `uri` as it is, and the fixer only drops slashes after a leading "scheme://"."""
    if not base and ":///" not in uri:
        return uri
    joined: str = feedparser.urls._urljoin(base, uri)
    return joined


def _looks_like_html(text: str) -> bool:
    """feedparser's guess, which is False at once without a close tag or an entity reference."""
    return ("</" in text or "&" in text) and bool(feedparser.mixin._FeedParserMixin.looks_like_html(text))


_REFERENCE = fastparse.Reference(
    namespaces={uri.lower(): prefix for uri, prefix in feedparser.mixin._FeedParserMixin.namespaces.items()},
    knows=lambda prefix, local: hasattr(feedparser.api.StrictFeedParser,
                                        f"_start_{prefix}_{local}" if prefix else f"_start_{local}"),
    urljoin=_urljoin,
    looks_like_html=_looks_like_html,
    cp1252=feedparser.html._cp1252,
)


def _read_fast(body: bytes, content_type: str | None) -> ParsedFeed | None:
    with _no_cycle_collection():
        read = fastparse.read(body, content_type, _REFERENCE, max_entries=MAX_ITEMS)
        return None if read is None else _feed(read.version, read.feed, read.entries, ())


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cycle collector paused: the fast path builds thousands of objects per feed and no cycles (lxml
    elements, dicts, lists and strings), and every collection it would trigger scans a heap growing by
    them (15% of the parse of a 10,000-item feed). What is cyclic garbage meanwhile waits for the next."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _feed(version: str, feed: Any, entries: list[Any], warnings: tuple[str, ...]) -> ParsedFeed:
    """feedparser's result, or the fast path's copy of it, as a ParsedFeed."""
    atom = version.startswith("atom")
    items = tuple(_item(e, atom=atom) for e in entries)
    return ParsedFeed(title=_clean(feed.get("title", "")), link=feed.get("link") or None,
                      format=version, items=items, warnings=warnings)


def _check(name: str, d: Any, body: bytes, lenient: bool) -> tuple[str, ...]:
    exc = d.get("bozo_exception") if d.get("bozo") else None
    if not d.get("version"):
        if exc is not None and not isinstance(exc, feedparser.exceptions.ThingsNobodyCaresAboutButMe):
            raise ParseError(name, f"not an RSS or Atom feed: malformed XML ({_message(exc)})")
        looks_html = re.search(rb"<html|<!doctype html|<body", body[:4096], re.I) is not None
        raise ParseError(name, "not an RSS or Atom feed" + (" (got an HTML page)" if looks_html else ""))
    if exc is None or isinstance(exc, feedparser.exceptions.ThingsNobodyCaresAboutButMe):
        return (_message(exc),) if exc is not None else ()
    message = _message(exc)
    if lenient or message.startswith(_HARMLESS):
        return (f"malformed XML{_where(exc)}: {message} (parsed leniently)",)
    raise ParseError(name, f"malformed XML{_where(exc)}: {message}")


def _where(exc: Exception) -> str:
    line = getattr(exc, "getLineNumber", None)
    try:
        return f" at line {line()}" if callable(line) and line() else ""
    except Exception:
        return ""


def _message(exc: Exception) -> str:
    text = getattr(exc, "getMessage", None)
    message = text() if callable(text) else str(exc)
    return re.sub(r"^<unknown>:\d+:\d+: ", "", str(message)).strip()


_RAW_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)    # json.dumps's own encoder, built once


def _item(entry: Any, *, atom: bool = False) -> ParsedItem:
    get = entry.get
    content_html, content_type = _content(entry)
    guid, link, title = get("id"), get("link"), get("title")
    raw = {     # keys in sorted order, as the encoder writes them
        "author": get("author"), "content": content_html, "content_type": content_type,
        "enclosures": [e.get("href") for e in get("enclosures", ()) if e.get("href")] or None,
        "id": guid, "link": link, "published": dict.get(entry, "published"),
        "summary": get("summary") if get("content") else None,
        "tags": [t.get("term") for t in get("tags", ()) if t.get("term")] or None,
        "title": title, "updated": dict.get(entry, "updated"),
    }
    return ParsedItem(
        guid=_clean(guid) or None,
        link=_clean(_link(entry, link, atom=atom)) or None,
        title=_text(title or ""),
        content=_text(content_html),
        raw=_raw_json({k: v for k, v in raw.items() if v is not None}),
        title_is_html=(get("title_detail") or {}).get("type") in _HTML_TYPES,
        content_is_html=content_type != "text/plain",
    )


_LONG = 2048                # a body this long is escaped as UTF-8 bytes (see _raw_json)
_CONTROLS = bytes(c for c in range(32) if c not in b"\t\n\r")     # json writes these as \u00XX, \b or \f


def _raw_json(raw: dict[str, Any]) -> bytes:
    """``json.dumps(raw, ensure_ascii=False, sort_keys=True).encode("utf-8", "replace")``, the raw item's
    stored bytes. json escapes a string character by character; for a long body (a farm item's 3-11 KB) it
    is twice as fast to encode the string as UTF-8 and escape the five characters json escapes in it with
    bytes.replace (UTF-8 never has an ASCII byte inside a multi-byte character), and join the pieces the way
    json does. Short bodies, and any string with a lone surrogate or another control character, are left to
    json (tests/test_parse.py compares the two on generated items)."""
    if len(raw.get("content", "")) < _LONG:
        return _RAW_JSON.encode(raw).encode("utf-8", "replace")
    return b"{" + b", ".join(b'"' + key.encode() + b'": ' + _json_value(raw[key]) for key in sorted(raw)) + b"}"


def _json_value(value: Any) -> bytes:
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return b"[" + b", ".join(map(_json_string, value)) + b"]"
    return _RAW_JSON.encode(value).encode("utf-8", "replace")


def _json_string(text: str) -> bytes:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:                      # a lone surrogate: json writes it, "replace" makes it "?"
        return _RAW_JSON.encode(text).encode("utf-8", "replace")
    if len(data.translate(None, _CONTROLS)) != len(data):
        return _RAW_JSON.encode(text).encode("utf-8")
    escaped = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return b'"' + escaped.replace(b"\t", b"\\t") + b'"'


def _link(entry: Any, link: Any, *, atom: bool) -> Any:
    """The entry's link. feedparser copies an Atom ``id`` into the link when the entry has no link element
    (an RSS ``guid`` is a permalink unless it says otherwise; an Atom id such as ``tag:…`` is not)."""
    if atom and link and link == entry.get("id") and link not in {e.get("href") for e in entry.get("links", ())}:
        return None
    return link


def _content(entry: Any) -> tuple[str, str]:
    """The body by the documented rule (monitor.body): full content, else the summary."""
    for c in entry.get("content", ()):
        if c.get("value"):
            return c["value"], c.get("type", "text/html")
    detail = entry.get("summary_detail") or {}
    return entry.get("summary", "") or "", detail.get("type", "text/html")


def _clean(value: Any) -> str:
    return " ".join(_text(value).split()) if value else ""


def _text(value: Any) -> str:
    """A string without lone surrogates or NULs: a feed's "&#xD800;" or "&#0;" survives lenient parsing but
    is no character XML allows, and PostgreSQL cannot store either (a NUL would fail the whole poll)."""
    text = str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")                # fails exactly when the text holds a surrogate; faster than a search
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
