"""Bytes + headers -> ParsedFeed: the only module that imports feedparser.

feedparser reads RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 and sniffs encodings from the body and the
Content-Type. Its field names stop here. Two decisions:

- feedparser's HTML sanitiser and relative-URI resolution are switched off: they cost about three
  quarters of its time, and feedwatch never emits item HTML (normalize extracts text; every renderer
  escapes). Relative links are resolved by normalize, against the final URL, when a feed wants links.
- A feed whose DOCTYPE declares entities is refused, and any other DOCTYPE is removed before parsing.
  Real feeds do not need entity declarations, and feedparser's lenient fallback would otherwise expand a
  quadratic entity bomb itself (8.9 s and 890 MB for a 110 KB feed, notes/libraries.md §3.7). UTF-16 and
  UTF-32 bodies are re-encoded as UTF-8 first, so the check sees their markup too.

What counts as an error: no RSS/Atom root at all, or XML that is broken (truncated, mismatched tags) —
unless the feed is configured ``lenient: true``. Undefined HTML entities such as ``&rsquo;`` in the XML
are common and harmless: the lenient parser decodes them, and the feed is accepted with a warning.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import xml.sax.expatreader
from typing import Any

import feedparser
import feedparser.api
import feedparser.exceptions

from monitor.errors import ParseError
from monitor.models import FetchResult, ParsedFeed, ParsedItem

_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", re.S | re.I)
_SUBSET_START = re.compile(rb"<!DOCTYPE[^\[>]*\[", re.I)
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_HEAD = 64 * 1024
_ENCODING_DECL = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""")
_HARMLESS = ("undefined entity",)
_SURROGATE = re.compile("[\ud800-\udfff]")
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


def create_parser(*args: Any, **kwargs: Any) -> _BufferedExpat:
    """The SAX driver factory that feedparser finds through PREFERRED_XML_PARSERS (see below)."""
    return _BufferedExpat(*args, **kwargs)


if __name__ not in feedparser.api.PREFERRED_XML_PARSERS:
    feedparser.api.PREFERRED_XML_PARSERS.insert(0, __name__)


def strip_doctype(body: bytes) -> bytes:
    """Remove a DOCTYPE (and its internal subset, where entity bombs live) from the start of a body."""
    head = body[:_HEAD]
    if b"<!DOCTYPE" not in head.upper():
        return body
    return _DOCTYPE.sub(b"", head, count=1) + body[_HEAD:]


def declares_entities(body: bytes) -> bool:
    """True when a DOCTYPE opens an internal subset and entities are declared (what entity bombs need).

    The subset can be longer than the head we inspect (a 100 KB entity value), so once one opens, the
    whole body is searched."""
    return _SUBSET_START.search(body[:_HEAD]) is not None and _ENTITY_DECL.search(body) is not None


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _wide_codec(body: bytes) -> str | None:
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec
    return {b"<\0?\0": "utf-16-le", b"\0<\0?": "utf-16-be"}.get(body[:4])


def as_utf8(body: bytes) -> bytes:
    """UTF-16/32 bodies re-encoded as UTF-8, so the DOCTYPE guard above can see their markup."""
    codec = _wide_codec(body)
    if codec is None:
        return body
    text = body.decode(codec, errors="replace").lstrip("\ufeff")
    return _ENCODING_DECL.sub(r'\1"utf-8"', text, count=1).encode("utf-8")


def parse(name: str, fetched: FetchResult, *, lenient: bool = False) -> ParsedFeed:
    """Parse a fetched body. Raises ParseError naming the feed when it is not a usable feed."""
    body = as_utf8(fetched.body)
    if not body.strip():
        raise ParseError(name, "empty response (no feed)")
    if declares_entities(body):
        raise ParseError(name, "refused: the feed declares XML entities in its DOCTYPE (entity expansion can "
                               "exhaust memory; real feeds do not need them)")
    body = strip_doctype(body)
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
    items = tuple(_item(e) for e in d.get("entries", ()))
    feed = d.get("feed", {})
    return ParsedFeed(title=_clean(feed.get("title", "")), link=feed.get("link") or None,
                      format=d.get("version", ""), items=items, warnings=warnings)


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


def _item(entry: Any) -> ParsedItem:
    content_html, content_type = _content(entry)
    title_detail = entry.get("title_detail") or {}
    title = entry.get("title", "") or ""
    raw = {
        "id": entry.get("id"), "link": entry.get("link"), "title": entry.get("title"),
        "content": content_html, "content_type": content_type,
        "summary": entry.get("summary") if entry.get("content") else None,
        "published": dict.get(entry, "published"), "updated": dict.get(entry, "updated"),
        "author": entry.get("author"),
        "tags": [t.get("term") for t in entry.get("tags", ()) if t.get("term")] or None,
        "enclosures": [e.get("href") for e in entry.get("enclosures", ()) if e.get("href")] or None,
    }
    raw = {k: v for k, v in raw.items() if v is not None}
    return ParsedItem(
        guid=_clean(entry.get("id")) or None,
        link=_clean(entry.get("link")) or None,
        title=_text(title),
        content=_text(content_html),
        raw=json.dumps(raw, ensure_ascii=False, sort_keys=True).encode("utf-8", "replace"),
        title_is_html=title_detail.get("type") in _HTML_TYPES,
        content_is_html=content_type != "text/plain",
    )


def _content(entry: Any) -> tuple[str, str]:
    """The richest body: Atom content / RSS content:encoded, else summary/description."""
    for c in entry.get("content", ()):
        if c.get("value"):
            return c["value"], c.get("type", "text/html")
    detail = entry.get("summary_detail") or {}
    return entry.get("summary", "") or "", detail.get("type", "text/html")


def _clean(value: Any) -> str:
    return " ".join(_text(value).split()) if value else ""


def _text(value: Any) -> str:
    """A string without lone surrogates (a feed's "&#xD800;" survives parsing but cannot be stored)."""
    text = str(value)
    return text.encode("utf-8", "replace").decode("utf-8") if _SURROGATE.search(text) else text


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
