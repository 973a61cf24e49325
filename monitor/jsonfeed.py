"""JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1) -> ParsedFeed, like RSS and Atom. Pure functions.

Field mapping: ``id`` is the guid (numbers are accepted and read as text, as the spec asks publishers not
to but many do), ``url`` the link (else ``external_url``), ``title``, and the body is ``content_html``,
else ``content_text`` (plain text), else ``summary``. Unknown fields are ignored; extension fields
(``_name``) never become the body.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from monitor.errors import ParseError
from monitor.models import FetchResult, ParsedFeed, ParsedItem
from monitor.parse import MAX_ITEMS, over_limit

VERSION_PREFIX = "https://jsonfeed.org/version/1"
_TYPES = ("application/feed+json", "application/json")


def looks_like(fetched: FetchResult) -> bool:
    """A JSON Feed by its media type, or a JSON body that names the JSON Feed version."""
    media = (fetched.content_type or "").split(";", 1)[0].strip().lower()
    head = fetched.body[:512].removeprefix(b"\xef\xbb\xbf").lstrip()
    if media == "application/feed+json":
        return True
    return head.startswith(b"{") and (media in _TYPES or b"jsonfeed.org/version" in head)


def parse(name: str, fetched: FetchResult) -> ParsedFeed:
    try:
        data = msgspec.json.decode(fetched.body.removeprefix(b"\xef\xbb\xbf"))   # a UTF-8 BOM is common
    except msgspec.DecodeError as exc:
        raise ParseError(name, f"malformed JSON Feed: {exc}") from None
    except RecursionError:
        raise ParseError(name, "malformed JSON Feed: nested too deeply") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(VERSION_PREFIX):
        raise ParseError(name, f"not a JSON Feed (no \"version\": \"{VERSION_PREFIX}.x\")")
    items = data.get("items")
    if not isinstance(items, list):
        raise ParseError(name, "malformed JSON Feed: \"items\" is not a list")
    version = "json11" if str(data["version"]).endswith("1.1") else "json10"
    entries = [i for i in items if isinstance(i, dict)]
    warnings = over_limit(name, len(entries))
    if len(entries) < len(items):
        warnings += (f"{len(items) - len(entries)} of {len(items)} items are not JSON objects; ignored",)
    return ParsedFeed(title=_text(data.get("title")), link=_text(data.get("home_page_url")) or None,
                      format=version, items=tuple(_item(i) for i in entries[:MAX_ITEMS]), warnings=warnings)


def _item(entry: dict[str, Any]) -> ParsedItem:
    html, text, summary = (_text(entry.get(k)) for k in ("content_html", "content_text", "summary"))
    content, is_html = (html, True) if html else (text, False) if text else (summary, False)
    raw = {k: entry[k] for k in ("id", "url", "external_url", "title", "content_html", "content_text",
                                 "summary", "date_published", "date_modified") if k in entry}
    return ParsedItem(guid=_text(entry.get("id")) or None,
                      link=_text(entry.get("url")) or _text(entry.get("external_url")) or None,
                      title=_text(entry.get("title")), content=content,
                      raw=json.dumps(raw, sort_keys=True, ensure_ascii=False).encode(),
                      title_is_html=False, content_is_html=is_html)


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return value.strip() if isinstance(value, str) else ""
