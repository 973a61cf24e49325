"""The fast parse path: well-formed RSS 2.0 and Atom 1.0 read with lxml, giving exactly what feedparser gives.

feedparser reads a 20-item feed through about a hundred Python calls per element (SAX events, the body
rule's filter, its handler dispatch); lxml builds the tree in C. This module walks that tree and produces
the same feed- and entry-level values feedparser would — the same dictionary keys monitor.parse reads
(``id``, ``link``, ``links``, ``title``/``title_detail``, ``content``, ``summary``/``summary_detail``,
``published``, ``updated``, ``author``, ``tags``, ``enclosures``) — so one function in monitor.parse turns
either into ParsedItems. feedparser stays the reference: monitor.parse hands this module feedparser's own
helpers and tables (:class:`Reference`) instead of copies, and tests/test_fastparse.py checks both paths
agree on every feed fixture and on generated variants.

The fast path reads a feed only when it is sure; otherwise it *declines* (returns None) and feedparser
reads it as before. It declines:

- anything but ``<rss version="2.x">`` with one ``<channel>``, or an Atom 1.0 ``<feed>``; RSS 0.9x/1.0/RDF,
  Atom 0.3, CDF; a document that declares the RSS 1.0 or 0.90 namespace anywhere (feedparser's version
  would depend on declaration order);
- a prolog feedparser would rewrite differently: a processing instruction starting ``<?xml`` with a ">"
  inside, or the words DOCTYPE or ENTITY anywhere before the first element (feedparser reads them even in
  a comment);
- any body feedparser would not read as UTF-8 (or pure ASCII) without a warning: other declared
  encodings with non-ASCII bytes, invalid UTF-8, a Content-Type that is not an XML media type;
- anything lxml's hardened parser (no entities resolved, no network, no DTD, ``huge_tree`` off) reports —
  an error *or* a warning: ill-formed XML, undefined entities such as ``&rsquo;``, XML 1.1, text nodes
  over 10 MB, nesting over 256 — so the lenient parser, its warnings and the ``lenient`` setting stay
  feedparser's; and more entries than monitor.parse's cap;
- an element feedparser has a handler for that this module does not emulate (``itunes:*``, ``media:*``,
  ``dc:description``/``dc:title``, ``source``, ``image`` inside an item, …), unless the body rule drops it;
  a second title, description, summary, id, or author-like element in one entry (feedparser's choice
  between them depends on depth bookkeeping); element children inside text elements; Atom ``type="xhtml"``
  titles and summaries; Atom content with ``src``, ``mode``, or a type other than text/html/xhtml; RSS
  ``<content>``; a link without ``href`` in Atom;
- ``xml:base`` or ``base`` anywhere but on the root element (feedparser keeps a base after leaving the
  element that set it in ways that depend on the parent's base); namespaced attributes other than
  ``xml:*``; attribute names that collide once lower-cased; a namespace prefix the document also binds
  to a known namespace of another prefix (feedparser would remap the element);
- at feed level, elements in unknown namespaces, or unknown elements containing elements feedparser
  knows, whenever feedparser might give them a prefix it has a handler for.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

Entry = dict[str, Any]


class Decline(Exception):
    """This document is for feedparser."""


@dataclass(frozen=True, slots=True)
class Reference:
    """feedparser's own tables and helpers, passed in by monitor.parse (the only feedparser importer)."""

    namespaces: Mapping[str, str]                   # lower-cased namespace URI -> feedparser's prefix
    knows: Callable[[str, str], bool]               # whether feedparser handles (prefix, local name)
    urljoin: Callable[[str, str], str]              # feedparser.urls._urljoin
    looks_like_html: Callable[[str], bool]          # the RSS text-or-HTML guess for text/plain elements
    cp1252: Mapping[int, str]                       # the C1 control characters feedparser maps to cp1252


@dataclass(frozen=True, slots=True)
class FastFeed:
    """What feedparser's result holds that monitor.parse reads."""

    version: str
    feed: Entry
    entries: list[Entry] = field(default_factory=list)


ATOM = "http://www.w3.org/2005/Atom"
XML = "http://www.w3.org/XML/1998/namespace"
XHTML = "http://www.w3.org/1999/xhtml"
_VERSION_URIS = ("http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_DECLARATION = re.compile(rb"""xmlns(?::([^\s=/>]+))?\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_XML_ENCODING = re.compile(rb"""^<\?.*encoding=['"](.*?)['"].*\?>""")
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")
_XML_DECLARATION = re.compile(rb"<\?xml[^>]*?>")
_FIRST_ELEMENT = re.compile(rb"<\w")
_PROLOG_MARKUP = re.compile(rb"doctype|entity", re.IGNORECASE)
_ASCII_SUPERSETS = frozenset({"ascii", "latin-1", "iso8859-15", "cp1252", "utf-8"})
_ACCEPTABLE_APPLICATION = ("application/xml", "application/xml-dtd", "application/xml-external-parsed-entity")
_ACCEPTABLE_TEXT = ("text/xml", "text/xml-external-parsed-entity")
_FULL = frozenset({("content", "encoded"), ("", "content"), ("xhtml", "body"), ("", "body"), ("", "fullitem")})
_SUMMARY = frozenset({("", "description"), ("", "summary")})
_EXTENSION_SUMMARY = frozenset({("itunes", "summary"), ("media", "description"), ("dc", "description")})
_AUTHOR_PARTS = {"name": "name", "email": "email", "uri": "href", "url": "href", "homepage": "href"}


_COUNTED = 1 << 20     # a body this large is not parsed when it holds more items than the cap (two scans)


def read(body: bytes, content_type: str | None, ref: Reference, *, max_entries: int) -> FastFeed | None:
    """The feed, or None when feedparser must read it. `body` is what feedparser would be given."""
    try:
        if len(body) > _COUNTED and body.count(b"<item") + body.count(b"<entry") > max_entries:
            raise Decline               # no tree of a huge feed (the walk declines past the cap anyway)
        return _Reader(_document(body, content_type), body, ref, max_entries).feed()
    except Decline:
        return None


def _document(body: bytes, content_type: str | None) -> Any:
    body = body[3:] if body.startswith(codecs.BOM_UTF8) else body
    _check_prolog(body)
    _check_encoding(body, content_type)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                             dtd_validation=False, remove_blank_text=False, strip_cdata=True,
                             encoding="utf-8")
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        raise Decline from None
    if len(parser.error_log) or root is None:
        raise Decline
    return root


def _check_prolog(body: bytes) -> None:
    """What feedparser does to the prolog before expat sees it must not matter: it replaces the first
    ``<?xml…>`` up to the first ">" with its own declaration (a ">" inside a leading processing instruction
    would leave the rest of it as text), and it reads a DOCTYPE or ENTITY anywhere before the first element
    (in a comment, say: a Netscape DOCTYPE there makes the feed RSS 0.91)."""
    declaration = _XML_DECLARATION.match(body)
    if declaration and not declaration.group().endswith(b"?>"):
        raise Decline
    first = _FIRST_ELEMENT.search(body)
    if _PROLOG_MARKUP.search(body, 0, first.start() if first else len(body)):
        raise Decline


def _check_encoding(body: bytes, content_type: str | None) -> None:
    """feedparser's encoding choice (encodings.convert_to_utf8) must be UTF-8, or ASCII-compatible for an
    ASCII body, with no warning: a non-XML Content-Type or a failed decode makes it warn."""
    match = _XML_ENCODING.match(body)
    declared = match.group(1).decode("utf-8", "replace").lower() if match else ""
    if content_type:
        mime, charset = _content_type(content_type)
        if mime in _ACCEPTABLE_APPLICATION or (mime.startswith("application/") and mime.endswith("+xml")):
            encoding = charset or declared or "utf-8"
        elif mime in _ACCEPTABLE_TEXT or (mime.startswith("text/") and mime.endswith("+xml")):
            encoding = charset or "us-ascii"
        else:
            raise Decline                               # NonXMLContentType: feedparser warns
    else:
        encoding = declared or "utf-8"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise Decline from None
    if body.isascii() and name in _ASCII_SUPERSETS:
        return
    if name != "utf-8":
        raise Decline
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Decline from None


def _content_type(line: str) -> tuple[str, str]:
    chunks = line.split(";")
    charset = ""
    for chunk in chunks[1:]:
        key, _, value = chunk.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    return chunks[0].strip(), charset


class _Reader:
    """One document's walk. Element keys are feedparser's (prefix, lower-cased local name)."""

    def __init__(self, root: Any, body: bytes, ref: Reference, max_entries: int) -> None:
        self.root = root
        self.ref = ref
        self.max_entries = max_entries
        self.base = ""
        self.atom = False
        self.entry_keys: dict[str, tuple[str, str] | None] = {}
        self.entry_plan = _RSS_PLAN
        self.known_keys: dict[str, tuple[str, str] | None] = {}
        self.c1 = re.compile("[" + "".join(map(chr, sorted(ref.cp1252))) + "]")
        self.declared: dict[str, set[str]] = {}     # document prefix -> namespace URIs bound to it
        for m in _DECLARATION.finditer(body):
            uri = (m.group(2) if m.group(2) is not None else m.group(3) or b"").decode("utf-8", "replace")
            self.declared.setdefault((m.group(1) or b"").decode("utf-8", "replace"), set()).add(uri)
        uris = {u.lower() for us in self.declared.values() for u in us}
        if any(u in uris for u in _VERSION_URIS):
            raise Decline

    # -- the document -------------------------------------------------------------------------------

    def feed(self) -> FastFeed:
        root = self.root
        base = self._root_base(root)
        self.base = self.ref.urljoin("", base) if base else ""
        if root.tag == f"{{{ATOM}}}feed":
            self.atom = True
            self.entry_plan = _ATOM_PLAN
            return self._read_feed("atom10", root, _ATOM_FEED, ("", "entry"))
        if root.tag == "rss" and str(root.get("version", "")).startswith("2."):
            return self._rss(root)
        raise Decline

    def _root_base(self, root: Any) -> str:
        attrs = self._attrs(root, root=True)
        base: str = attrs.get("xml:base", attrs.get("base")) or ""
        return base

    def _rss(self, root: Any) -> FastFeed:
        channels = list(self._elements(root))
        if len(channels) != 1 or channels[0].tag != "channel":
            raise Decline
        self._require_plain(channels[0])
        return self._read_feed("rss20", channels[0], _RSS_FEED, ("", "item"))

    def _read_feed(self, version: str, parent: Any, allowed: frozenset[tuple[str, str]],
                   entry: tuple[str, str]) -> FastFeed:
        feed: Entry = {}
        entries: list[Entry] = []
        for key, child in self._feed_children(parent, allowed):
            if key != entry:
                self._feed_child(feed, key, child)
            elif len(entries) == self.max_entries:
                raise Decline
            else:
                entries.append(self._entry(child))
        return FastFeed(version, feed, entries)

    def _feed_children(self, parent: Any, allowed: frozenset[tuple[str, str]]) -> Iterable[tuple[tuple[str, str],
                                                                                                 Any]]:
        """Feed-level children feedparser acts on; inert unknown elements are skipped. One title and one
        id: feedparser's choice between two depends on what reset its title depth in between."""
        seen: set[tuple[str, str]] = set()
        for child in self._elements(parent):
            key = self._known_key(child)
            if key is None:
                self._require_inert(child)
                continue
            if key not in allowed or (key in seen and key in _FEED_SINGLE):
                raise Decline
            seen.add(key)
            yield key, child

    def _feed_child(self, feed: Entry, key: tuple[str, str], el: Any) -> None:
        handler = _FEED_HANDLERS.get(key)
        self._attrs(el)
        if handler is None:                       # harmless to the feed's title and link: only its shape
            self._require_flat(el, _FEED_NESTED.get(key, frozenset()))
        else:
            handler(self, feed, el, False)

    # -- one entry --------------------------------------------------------------------------------------

    def _entry(self, item: Any) -> Entry:
        """The body rule's order in one pass over the children: full content first, then the rest in
        document order; an extension summary is dropped when a standard body has text, and declined
        otherwise (this module does not emulate it)."""
        self._require_plain(item)
        keys, plan = self.entry_keys, self.entry_plan
        full: list[tuple[Handler, Any]] = []
        rest: list[tuple[Handler, Any]] = []
        bodies: list[Any] = []                  # the standard bodies (full content and summaries)
        seen: set[str] = set()
        extension = False
        for child in item:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            key = keys[tag] if tag in keys else self._entry_key(child)
            if key is None:
                continue
            if key in _EXTENSION_SUMMARY:
                extension = True
                continue
            planned = plan.get(key)
            if planned is None:
                raise Decline                   # not read in this format's entries
            handler, group = planned
            if group:
                if group in seen:
                    raise Decline               # a second title, id, summary, ...
                seen.add(group)
            (full if key in _FULL else rest).append((handler, child))
            if key in _FULL or key in _SUMMARY:
                bodies.append(child)
        if extension and not any(_has_text(body) for body in bodies):
            raise Decline
        entry: Entry = {}
        for handler, child in full + rest:
            handler(self, entry, child, True)
        if "links" in entry:                    # FeedParserDict's computed "enclosures"
            entry["enclosures"] = [{k: v for k, v in link.items() if k != "rel"}
                                   for link in entry["links"] if link["rel"] == "enclosure"]
        return entry

    def _entry_key(self, el: Any) -> tuple[str, str] | None:
        """The body rule's view (monitor.body.EntryFilter._key): None for what it drops."""
        tag = el.tag
        try:
            return self.entry_keys[tag]
        except KeyError:
            pass
        uri, local = _split(tag)
        prefix = self._canonical(uri)
        key = None
        if prefix is not None and self.ref.knows(prefix, local.lower()):
            self._require_no_remap(prefix)
            key = prefix, local.lower()
        self.entry_keys[tag] = key
        return key

    # -- handlers (feedparser's _start_*/_end_* for one element) ------------------------------------------

    def title(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        kind = self._content_type(el, "text/plain", allow=("text/plain", "text/html"))
        value, kind = self._pop(self._text(el), kind=kind)
        if ctx.get("#titled"):
            return
        ctx["title"] = value
        ctx["title_detail"] = {"type": kind}
        if value:
            ctx["#titled"] = True

    def link(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        attrs = self._attrs(el)
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        href = attrs.get("url", attrs.get("uri", attrs.get("href")))
        if href:
            attrs.pop("url", None)
            attrs.pop("uri", None)
            attrs["href"] = href
        links = ctx.setdefault("links", [])
        if "href" in attrs:
            self._require_flat(el)
            attrs["href"] = self.ref.urljoin(self.base, attrs["href"])
            links.append(attrs)
            if attrs["rel"] == "alternate" and _map_type(attrs["type"]) in _HTML_TYPES:
                ctx["link"] = attrs["href"]
            return
        if self.atom:
            raise Decline
        links.append(attrs)
        value, _ = self._pop(self._text(el), relative=True)
        if "&" in value:
            value = _LINK_ENTITY.sub(r"&\g<1>", value.replace("&amp;", "&") if in_entry else value)
        ctx["link"] = value
        if value:
            links[-1]["href"] = value

    def guid(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        is_link = self._attrs(el).get("ispermalink", "true") == "true"
        value, _ = self._pop(self._text(el), relative=is_link)
        ctx["id"] = value
        ctx.setdefault("guidislink", is_link and "link" not in ctx)
        if is_link:
            ctx.setdefault("link", value)

    def description(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        if "summary" in ctx and not ctx.get("#content"):
            raise Decline                                    # feedparser would read it as content
        kind = self._content_type(el, "text/html", allow=("text/html",))
        value, kind = self._pop(self._text(el), kind=kind)
        ctx["summary"] = value
        ctx["summary_detail"] = {"type": kind}

    def atom_summary(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        if "summary" in ctx and not ctx.get("#content"):
            raise Decline
        kind = self._content_type(el, "text/plain", allow=("text/plain", "text/html"))
        value, kind = self._pop(self._text(el), kind=kind)
        ctx["summary"] = value
        ctx["summary_detail"] = {"type": kind}

    def content_encoded(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        ctx["#content"] = True
        kind = self._content_type(el, "text/html", allow=("text/html",))
        value, kind = self._pop(self._text(el), kind=kind)
        ctx.setdefault("content", []).append({"type": kind, "value": value})
        ctx.setdefault("summary", value)

    def atom_content(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        ctx["#content"] = True
        attrs = self._attrs(el)
        if "src" in attrs or "mode" in attrs:
            raise Decline
        kind = _map_type(attrs.get("type", "text/plain"))
        if kind == "application/xhtml+xml":
            value, _ = self._pop(self._xhtml(el), kind=kind)
        elif kind in ("text/plain", "text/html"):
            value, _ = self._pop(self._text(el), kind=kind)
        else:
            raise Decline
        ctx.setdefault("content", []).append({"type": kind, "value": value})
        ctx.setdefault("summary", value)

    def date(self, ctx: Entry, el: Any, in_entry: bool, key: str) -> None:
        self._attrs(el)
        ctx[key] = self._pop(self._text(el))[0]

    def published(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        self.date(ctx, el, in_entry, "published")

    def updated(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        self.date(ctx, el, in_entry, "updated")

    def author(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        """feedparser's _start_author/_end_author with name/email/uri children (one author per entry)."""
        self._attrs(el)
        detail: dict[str, str] = {}
        for child in self._elements(el):
            uri, local = _split(child.tag)
            part = _AUTHOR_PARTS.get(local.lower()) if self._canonical(uri) == "" else None
            if part is None:
                raise Decline
            self._attrs(child)
            text = self._text(child)
            detail[part] = self._pop(text, relative=True)[0] if part == "href" else text.strip()
        own = self._pop("".join(_own_text(el)))[0]
        name, email = detail.get("name"), detail.get("email")
        if detail:
            own = f"{name} ({email})" if name and email else name or email or own
        ctx["author"] = own

    def category(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        attrs = self._attrs(el)
        tags: list[dict[str, Any]] = ctx.setdefault("tags", [])
        _add_tag(tags, attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
        value = self._pop(self._text(el))[0]
        if value:
            if tags and not tags[-1]["term"]:
                tags[-1]["term"] = value
            else:
                _add_tag(tags, value, None, None)

    def enclosure(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        self._require_flat(el)
        attrs = self._attrs(el)
        href = attrs.get("url", attrs.get("uri", attrs.get("href")))
        if href:
            attrs.pop("url", None)
            attrs.pop("uri", None)
            attrs["href"] = href
        attrs["rel"] = "enclosure"
        ctx.setdefault("links", []).append(attrs)

    def ignored(self, ctx: Entry, el: Any, in_entry: bool) -> None:
        """Known to feedparser, stored under keys monitor.parse never reads: only the shape is checked."""
        self._attrs(el)
        self._require_flat(el, frozenset({("", "name"), ("", "email"), ("", "uri")}))

    # -- text and attributes --------------------------------------------------------------------------------

    def _pop(self, text: str, *, kind: str = "", relative: bool = False) -> tuple[str, str]:
        """feedparser's pop() for a text element: strip, resolve, guess HTML, repair encodings."""
        output = text.strip()
        if relative and output:
            output = self.ref.urljoin(self.base, output)
        if not self.atom and kind == "text/plain" and self.ref.looks_like_html(output):
            kind = "text/html"
        if not output.isascii():
            with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                output = output.encode("iso-8859-1").decode("utf-8")     # feedparser's double-encoding repair
            if _maybe_c1(output) and self.c1.search(output):
                output = output.translate(self.ref.cp1252)
        return output, kind

    def _text(self, el: Any) -> str:
        """The text of an element with no element children (comments and PIs are not text)."""
        if not len(el):
            return el.text or ""
        self._require_flat(el)
        return "".join(el.itertext())

    def _xhtml(self, el: Any) -> str:
        """Atom type="xhtml" content as feedparser writes it back out, enclosing <div> removed."""
        pieces = [_escape(el.text)] if el.text else []
        for child in el:
            if isinstance(child.tag, str):
                self._xhtml_element(child, pieces)
            if child.tail:
                pieces.append(_escape(child.tail))
        return "".join(_strip_div(pieces))

    def _xhtml_element(self, el: Any, pieces: list[str]) -> None:
        uri, local = _split(el.tag)
        name = local.lower()
        if uri != XHTML or name in ("svg", "math") or self.ref.knows("xhtml", name):
            raise Decline                       # feedparser would call a handler, or track SVG/MathML
        attrs = self._attrs(el)
        if any(":" in key for key in attrs):
            raise Decline                       # feedparser writes xml:lang twice (once as "lang")
        pieces.append("<" + name + "".join(f' {k}="{_escape(v, quote=True)}"' for k, v in attrs.items()) + ">")
        if el.text:
            pieces.append(_escape(el.text))
        for child in el:
            if isinstance(child.tag, str):
                self._xhtml_element(child, pieces)
            if child.tail:
                pieces.append(_escape(child.tail))
        pieces.append(f"</{name}>")

    def _content_type(self, el: Any, default: str, *, allow: tuple[str, ...]) -> str:
        attrs = self._attrs(el)
        if not self.atom and attrs:
            raise Decline
        kind = _map_type(attrs.get("type", default))
        if kind not in allow:
            raise Decline
        return kind

    def _attrs(self, el: Any, *, root: bool = False) -> dict[str, str]:
        """feedparser's attribute dictionary: lower-cased names, prefixed for known namespaces, rel and
        type values lower-cased."""
        attrs: dict[str, str] = {}
        for key, value in el.items():
            uri, local = _split(key)
            if uri is not None and uri != XML:
                raise Decline
            name = (f"xml:{local}" if uri else local).lower()
            if name in attrs or (not root and name in ("xml:base", "base")):
                raise Decline
            attrs[name] = value.lower() if name in ("rel", "type") else value
        return attrs

    # -- namespaces and shapes --------------------------------------------------------------------------

    def _canonical(self, uri: str | None) -> str | None:
        lower = (uri or "").lower()
        if "backend.userland.com/rss" in lower:
            return ""
        return self.ref.namespaces.get(lower)

    def _known_key(self, el: Any) -> tuple[str, str] | None:
        """Outside entries nothing is filtered: the key feedparser acts on, or None for an element it has
        no handler for under any prefix it might give it."""
        tag = el.tag
        if tag in self.known_keys:
            return self.known_keys[tag]
        uri, local = _split(tag)
        local = local.lower()
        prefix = self._canonical(uri)
        if prefix is not None:
            self._require_no_remap(prefix)
            key = (prefix, local) if self.ref.knows(prefix, local) else None
            self.known_keys[tag] = key          # a known namespace's: the same for every element of the tag
            return key
        # Unknown namespace: expat reports no prefix, and feedparser takes the first prefix it has seen bound
        # to this URI, or none at all; then its own mapping of that prefix, if the document bound it to a
        # known namespace too.
        candidates = {p for p, uris in self.declared.items() if uri in uris}
        if not any(p and self.declared.get(p) == {uri} for p, u in el.nsmap.items() if u == uri):
            candidates.add("")
        remapped = {self._canonical(u) for p in candidates for u in self.declared.get(p, ())}
        candidates |= {c for c in remapped if c is not None}
        if any(self.ref.knows(p, local) for p in candidates):
            raise Decline
        return None

    def _require_no_remap(self, prefix: str) -> None:
        """feedparser maps a document prefix to its own for known namespaces: a prefix the document binds
        to another known namespace would turn this element into that namespace's."""
        if prefix and any(self._canonical(u) not in (None, prefix) for u in self.declared.get(prefix, ())):
            raise Decline

    def _require_plain(self, el: Any) -> None:
        """An item, entry or channel without attributes feedparser reads (rdf:about, CDF's lastmod and
        href)."""
        if set(self._attrs(el)) - {"xml:lang"}:
            raise Decline

    def _require_inert(self, el: Any) -> None:
        self._attrs(el)
        for child in self._elements(el):
            if self._known_key(child) is not None:
                raise Decline
            self._require_inert(child)

    def _require_flat(self, el: Any, children: frozenset[tuple[str, str]] = frozenset()) -> None:
        """No element children, or only the given text-only ones."""
        for child in self._elements(el):
            uri, local = _split(child.tag)
            if (self._canonical(uri), local.lower()) not in children:
                raise Decline
            self._attrs(child)
            self._require_flat(child)

    @staticmethod
    def _elements(parent: Any) -> Iterable[Any]:
        return (child for child in parent if isinstance(child.tag, str))


def _maybe_c1(text: str) -> bool:
    """Whether `text` may hold a C1 control (U+0080-U+009F, what feedparser maps through cp1252): each is
    C2 80-9F in UTF-8, and a bytes search for C2 is four times faster than the character class over a
    long body. A lone surrogate cannot be encoded: maybe."""
    try:
        return b"\xc2" in text.encode("utf-8")
    except UnicodeEncodeError:
        return True


def _split(tag: str) -> tuple[str | None, str]:
    if tag[:1] == "{":
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return None, tag


def _map_type(kind: str) -> str:
    kind = kind.lower()
    return {"text": "text/plain", "plain": "text/plain", "html": "text/html",
            "xhtml": "application/xhtml+xml"}.get(kind, kind)


def _own_text(el: Any) -> Iterable[str]:
    """An element's own text: before its first child and after each child (comments and PIs included)."""
    if el.text:
        yield el.text
    for child in el:
        if child.tail:
            yield child.tail


def _escape(text: str, *, quote: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def _strip_div(pieces: list[str]) -> list[str]:
    """feedparser's pop(): an xhtml value that is one <div> wrapping everything loses the <div>."""
    while len(pieces) > 1 and not pieces[-1].strip():
        del pieces[-1]
    while len(pieces) > 1 and not pieces[0].strip():
        del pieces[0]
    if pieces and (pieces[0] == "<div>" or pieces[0].startswith("<div ")) and pieces[-1] == "</div>":
        depth = 0
        for piece in pieces[:-1]:
            if piece.startswith("</"):
                depth -= 1
                if depth == 0:
                    return pieces
            elif piece.startswith("<") and not piece.endswith("/>"):
                depth += 1
        return pieces[1:-1]
    return pieces


def _has_text(el: Any) -> bool:
    """monitor.body's _has_text: text anywhere inside, or any element inside."""
    if not len(el):                             # no children of any kind: its text is all there is
        text = el.text
        return bool(text) and not text.isspace()
    return any(isinstance(c.tag, str) for c in el.iterdescendants()) or any(t.strip() for t in el.itertext())


def _add_tag(tags: list[dict[str, Any]], term: str | None, scheme: str | None, label: str | None) -> None:
    if not term and not scheme and not label:
        return
    value = {"term": term, "scheme": scheme, "label": label}
    if value not in tags:
        tags.append(value)


Handler = Callable[[_Reader, Entry, Any, bool], None]

_FEED_HANDLERS: dict[tuple[str, str], Handler] = {
    ("", "title"): _Reader.title, ("", "link"): _Reader.link, ("", "id"): _Reader.guid,
    ("", "guid"): _Reader.guid,
}
_FEED_SINGLE = frozenset({("", "title"), ("", "id")})
_FEED_NESTED = {
    ("", "image"): frozenset({("", "title"), ("", "link"), ("", "url"), ("", "width"), ("", "height"),
                              ("", "description")}),
    ("", "textinput"): frozenset({("", "title"), ("", "link"), ("", "description"), ("", "name")}),
    ("", "author"): frozenset({("", "name"), ("", "email"), ("", "uri")}),
    ("", "contributor"): frozenset({("", "name"), ("", "email"), ("", "uri")}),
    ("", "managingeditor"): frozenset(),
}
_RSS_FEED = frozenset({("", "title"), ("", "link"), ("", "description"), ("", "language"), ("", "copyright"),
                       ("", "managingeditor"), ("", "webmaster"), ("", "pubdate"), ("", "lastbuilddate"),
                       ("", "category"), ("", "generator"), ("", "cloud"), ("", "image"), ("", "textinput"),
                       ("", "item")})
_ATOM_FEED = frozenset({("", "title"), ("", "subtitle"), ("", "id"), ("", "link"), ("", "updated"),
                        ("", "author"), ("", "contributor"), ("", "generator"), ("", "rights"),
                        ("", "category"), ("", "entry")})
_ENTRY_HANDLERS: dict[tuple[str, str], Handler] = {
    ("", "title"): _Reader.title, ("", "link"): _Reader.link, ("", "guid"): _Reader.guid,
    ("", "id"): _Reader.guid, ("", "description"): _Reader.description, ("", "summary"): _Reader.atom_summary,
    ("content", "encoded"): _Reader.content_encoded, ("", "content"): _Reader.atom_content,
    ("", "pubdate"): _Reader.published, ("", "published"): _Reader.published, ("", "updated"): _Reader.updated,
    ("dc", "date"): _Reader.updated, ("", "author"): _Reader.author, ("dc", "creator"): _Reader.author,
    ("", "category"): _Reader.category, ("", "enclosure"): _Reader.enclosure,
    ("", "rights"): _Reader.ignored, ("", "contributor"): _Reader.ignored,
}
_RSS_ENTRY = frozenset({("", "title"), ("", "link"), ("", "guid"), ("", "description"), ("content", "encoded"),
                        ("", "pubdate"), ("dc", "date"), ("", "author"), ("dc", "creator"), ("", "category"),
                        ("", "enclosure")})
_ATOM_ENTRY = frozenset({("", "title"), ("", "link"), ("", "id"), ("", "summary"), ("", "content"),
                         ("", "published"), ("", "updated"), ("", "author"), ("dc", "creator"), ("", "category"),
                         ("", "rights"), ("", "contributor")})
_SINGLE = {("", "title"): "title", ("", "guid"): "id", ("", "id"): "id", ("", "description"): "summary",
           ("", "summary"): "summary", ("content", "encoded"): "content", ("", "content"): "content",
           ("", "pubdate"): "published", ("", "published"): "published", ("", "updated"): "updated",
           ("dc", "date"): "updated", ("", "author"): "author", ("dc", "creator"): "author",
           ("", "contributor"): "contributor"}


def _plan(allowed: frozenset[tuple[str, str]]) -> dict[tuple[str, str], tuple[Handler, str]]:
    """An entry child's handler and its single-element group ("" for none), for the keys a format allows."""
    return {key: (_ENTRY_HANDLERS[key], _SINGLE.get(key, "")) for key in allowed}


_RSS_PLAN = _plan(_RSS_ENTRY)
_ATOM_PLAN = _plan(_ATOM_ENTRY)
