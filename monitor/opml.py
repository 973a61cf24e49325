"""OPML 2.0 subscription lists: write the configured feeds, read another reader's export.

Export follows OPML 2.0 (http://opml.org/spec2.opml): one ``<outline type="rss" text title xmlUrl>`` per
feed, inside folder outlines built from the feeds' ``group`` ("News/Tech" nests two folders). Sources
that are not feeds (``kind: page`` or ``sitemap``) are ``type="link"`` outlines with a ``url``, so other
readers do not subscribe to a web page; their kind and ``follow`` travel as attributes in feedwatch's own
namespace, which other readers ignore and :func:`parse` reads back.

Import reads what real readers write (Miniflux, FreshRSS, Feedly, NetNewsWire, Thunderbird: OPML 1.0 to
2.0, nested folders, ``type="rss"`` or none, a missing ``text``, HTML entities in titles) and refuses
hostile files in bounded time, before anything is changed:

* defusedxml parses: entity declarations (billion laughs, quadratic blow-up) and external entities are
  refused, nothing is fetched;
* at most :data:`MAX_BYTES` are read and at most :data:`MAX_OUTLINES` outlines accepted; parsing stops at
  the first outline over the cap;
* a subscription URL must be http(s) (``feed://`` is read as http); ``file:``, ``javascript:`` and the
  rest are refused, naming the line.
"""

from __future__ import annotations

import html
import html.entities
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from monitor.errors import OpmlError
from monitor.urls import url_problem

NAMESPACE = "urn:feedwatch:opml:1"
MAX_BYTES = 10 << 20
MAX_OUTLINES = 10_000
MAX_URL = 2048

_KIND, _FOLLOW = f"{{{NAMESPACE}}}kind", f"{{{NAMESPACE}}}follow"
_HTML_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_ENTITIES = {b"amp", b"lt", b"gt", b"quot", b"apos"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]+")


@dataclass(frozen=True, slots=True)
class Subscription:
    """One source of an OPML file: what a config entry is made from."""

    title: str
    url: str
    kind: str = "feed"
    follow: bool = False
    group: str | None = None
    line: int | None = None


# ---------------------------------------------------------------------------------------------- export


def export(feeds: Iterable[Any], *, title: str = "feedwatch") -> tuple[bytes, list[str]]:
    """An OPML 2.0 document of `feeds` (FeedSettings; `kind`, `follow` and `group` when they have them),
    and the names of the feeds left out: those on a local path or file:// URL, which no other reader (nor
    `opml import`) can use."""
    ET.register_namespace("feedwatch", NAMESPACE)
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = formatdate(usegmt=True)
    body = ET.SubElement(root, "body")
    folders: dict[tuple[str, ...], ET.Element] = {(): body}
    left_out = []
    for feed in feeds:
        if urlsplit(feed.url).scheme.lower() not in ("http", "https"):
            left_out.append(feed.name)
            continue
        ET.SubElement(_folder(folders, _group_path(getattr(feed, "group", None))), "outline", _attributes(feed))
    ET.indent(root, space="  ")
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    return text.encode("utf-8"), left_out


def _attributes(feed: Any) -> dict[str, str]:
    kind = getattr(feed, "kind", "feed") or "feed"
    attrs = {"text": feed.name, "title": feed.name}
    if kind == "feed":
        attrs.update(type="rss", xmlUrl=feed.url)
    else:                       # a page or a sitemap is not something a feed reader can subscribe to
        attrs.update({"type": "link", "url": feed.url, _KIND: kind})
    if getattr(feed, "follow", False):
        attrs[_FOLLOW] = "true"
    return attrs


def _group_path(group: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (group or "").split("/") if part.strip())


def _folder(folders: dict[tuple[str, ...], ET.Element], path: tuple[str, ...]) -> ET.Element:
    if path not in folders:
        parent = _folder(folders, path[:-1])
        folders[path] = ET.SubElement(parent, "outline", text=path[-1], title=path[-1])
    return folders[path]


# ---------------------------------------------------------------------------------------------- import


def read(path: Path) -> list[Subscription]:
    """The subscriptions of the OPML file at `path`; OpmlError if it is unreadable, malformed or hostile."""
    source = str(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise OpmlError(source, None, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise OpmlError(source, None, f"larger than {MAX_BYTES >> 20} MiB: not a subscription list; refused")
    return parse(data, source=source)


def parse(data: bytes, *, source: str = "<opml>") -> list[Subscription]:
    """Parse OPML bytes into subscriptions, in document order (see the module docstring for the limits)."""
    collector = _Collector(source)
    parser = DET.DefusedXMLParser(target=collector, forbid_dtd=False, forbid_entities=True,
                                  forbid_external=True)
    collector.parser = parser
    try:
        parser.feed(_numeric_entities(data))
        parser.close()
    except DefusedXmlException as exc:
        raise OpmlError(source, collector.line(), f"refused: {_defused_reason(exc)}") from None
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        message = str(exc).split(": line", 1)[0]
        raise OpmlError(source, line, f"not well-formed XML: {message}") from None
    if not collector.root_seen:
        raise OpmlError(source, None, "not an OPML file (the root element is not <opml>)")
    return collector.subscriptions


def _numeric_entities(data: bytes) -> bytes:
    """Readers write HTML named entities (``&eacute;``) that XML does not define: turn the known ones into
    character references. Anything else is left for the parser to judge."""
    def repl(m: re.Match[bytes]) -> bytes:
        name = m.group(1)
        if name in _XML_ENTITIES:
            return m.group(0)
        codepoint = html.entities.name2codepoint.get(name.decode("ascii"))
        return f"&#{codepoint};".encode("ascii") if codepoint is not None else m.group(0)
    return _HTML_ENTITY.sub(repl, data)


def _defused_reason(exc: DefusedXmlException) -> str:
    name = type(exc).__name__
    return {"EntitiesForbidden": "the file declares XML entities (an entity bomb?)",
            "ExternalReferenceForbidden": "the file refers to external resources",
            "DTDForbidden": "the file has a DTD"}.get(name, name)


class _Collector:
    """An XMLParser target: keeps subscriptions with their line and folder path, counting outlines."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parser: Any = None
        self.subscriptions: list[Subscription] = []
        self.outlines = 0
        self.root_seen = False
        self._stack: list[str | None] = []      # per open element: a folder's title, else None

    def line(self) -> int | None:
        expat = getattr(self.parser, "parser", None)
        return int(expat.CurrentLineNumber) if expat is not None else None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if not self._stack:
            if tag != "opml":
                raise OpmlError(self.source, self.line(), f"not an OPML file (the root element is <{tag}>)")
            self.root_seen = True
        folder = None
        if tag == "outline":
            self.outlines += 1
            if self.outlines > MAX_OUTLINES:
                raise OpmlError(self.source, self.line(),
                                f"more than {MAX_OUTLINES} outlines: not a subscription list; refused")
            sub = self._subscription(attrib)
            if sub is not None:
                self.subscriptions.append(sub)
            else:
                folder = _clean(attrib.get("text") or attrib.get("title") or "") or None
        self._stack.append(folder)

    def end(self, tag: str) -> None:
        self._stack.pop()

    def data(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def _subscription(self, attrib: dict[str, str]) -> Subscription | None:
        kind = attrib.get(_KIND)
        raw = attrib.get("xmlUrl") if kind is None else attrib.get("url") or attrib.get("xmlUrl")
        if kind is not None and kind not in ("feed", "page", "sitemap"):
            raise OpmlError(self.source, self.line(), f"feedwatch:kind '{_clean(kind)[:40]}' is not feed, page "
                            "or sitemap")
        if raw is None:
            return None             # a folder, or a link outline that is not a source
        line = self.line()
        url = self._url(raw.strip(), line)
        follow = attrib.get(_FOLLOW, "false").strip().lower()
        if follow not in ("true", "false"):
            raise OpmlError(self.source, line, f"feedwatch:follow '{_clean(follow)[:40]}' is not true or false")
        if follow == "true" and kind not in (None, "feed"):
            raise OpmlError(self.source, line, f"feedwatch:follow is for feeds; this outline is a {kind} (only a "
                            "feed has items whose links can be followed)")
        title = _clean(attrib.get("text") or "") or _clean(attrib.get("title") or "") or _host(url)
        folders = [f for f in self._stack if f]
        return Subscription(title=title, url=url, kind=kind or "feed", follow=follow == "true",
                            group="/".join(f.replace("/", "-") for f in folders) or None, line=line)

    def _url(self, raw: str, line: int | None) -> str:
        if raw.lower().startswith("feed:"):           # feed://host/x and feed:https://host/x (RFC-less, common)
            rest = raw[5:]
            raw = rest if rest.lower().startswith(("http://", "https://")) else "http:" + rest
        shown = _clean(raw)[:80]
        if not re.match(r"(?i)https?://", raw):
            raise OpmlError(self.source, line, f"'{shown}' is not an http(s) URL; refused (nothing imported)")
        if len(raw) > MAX_URL or _CONTROL.search(raw) or " " in raw:
            raise OpmlError(self.source, line, f"'{shown}' is not a usable URL; refused (nothing imported)")
        if problem := url_problem(raw):
            raise OpmlError(self.source, line, f"'{shown}' is not a usable URL ({problem}); refused "
                            "(nothing imported)")
        return raw


def _clean(text: str) -> str:
    """Titles as text: double-escaped entities decoded, control and bidi characters dropped, spaces collapsed."""
    return " ".join(_CONTROL.sub(" ", html.unescape(text)).split())


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "feed"
    except ValueError:
        return "feed"


# ---------------------------------------------------------------------------------------------- names


_NAME_CHARS = re.compile(r"[^a-z0-9._-]+")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")   # monitor.config.FEED_NAME


def feed_name(title: str, url: str, taken: set[str]) -> str:
    """A valid, unique feed name for a title: kept as it is when it is already a valid name, else made
    from it (lower case, ASCII, dashes), else from the URL's host; "-2", "-3"... when taken."""
    base = title if _NAME_OK.match(title) else _slug(title) or _slug(_host(url)) or "feed"
    name, n = base, 1
    while name in taken:
        n += 1
        suffix = f"-{n}"
        name = base[:100 - len(suffix)] + suffix
    return name


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = _NAME_CHARS.sub("-", ascii_text.replace("&", " and ")).strip("-._")
    slug = re.sub(r"-{2,}", "-", slug)
    return slug[:60].rstrip("-._")


def same_url(url: str) -> str:
    """The form two URLs are compared in to find duplicates: scheme and host lower case, no fragment,
    no trailing slash, http and https alike."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port not in (None, 80, 443) else "")
    except ValueError:          # a malformed URL is only ever the same as itself
        return url.strip()
    return f"{host}{parts.path.rstrip('/') or '/'}{'?' + parts.query if parts.query else ''}"


def plan(subscriptions: Sequence[Subscription], existing: Iterable[tuple[str, str]]
         ) -> tuple[list[tuple[str, Subscription]], list[tuple[Subscription, str]]]:
    """What an import adds, and what it skips: ``([(name, sub)], [(sub, reason)])``. `existing` is the
    config's (name, url) pairs. A URL already configured, or seen earlier in the file, is skipped."""
    existing = list(existing)
    taken = {name for name, _ in existing}
    seen = {same_url(url): f"already configured as '{name}'" for name, url in existing}
    added: list[tuple[str, Subscription]] = []
    skipped: list[tuple[Subscription, str]] = []
    for sub in subscriptions:
        key = same_url(sub.url)
        if key in seen:
            skipped.append((sub, seen[key]))
            continue
        name = feed_name(sub.title, sub.url, taken)
        taken.add(name)
        seen[key] = f"a duplicate of line {sub.line} in this file" if sub.line else "a duplicate in this file"
        added.append((name, sub))
    return added, skipped


def config_entry(name: str, sub: Subscription) -> dict[str, Any]:
    """The config entry for an imported subscription (only keys that differ from the defaults)."""
    entry: dict[str, Any] = {"name": name, "url": sub.url}
    if sub.kind != "feed":
        entry["kind"] = sub.kind
    if sub.follow:
        entry["follow"] = True
    if sub.group:
        entry["group"] = sub.group
    return entry
