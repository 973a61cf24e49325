"""A web page -> the part of it that is the document. Pure functions; the only cssselect user.

A page is much more than its document: navigation, headers and footers, sidebars ("recent posts",
"on this page"), cookie banners, forms. Those change on their own schedule and are noise. What is kept:

1. ``exclude`` selectors are removed first (CSS, or XPath after an ``xpath:`` prefix).
2. With ``select``, the document is every element the selectors match, in page order (an element inside
   another match is not taken twice).
3. Without ``select``, the document is the page's main content: the first ``<main>`` (else the first
   element with ``role="main"``), or the one ``<article>`` inside it when there is exactly one; without
   either, the ``<article>`` elements, else ``<body>``. Inside it, ``nav``,
   ``header`` (but an ``<article>``'s own header, which holds its title), ``footer``, ``aside``,
   ``form``, ``script``, ``style``, ``template``, ``noscript`` and hidden elements (``hidden``,
   ``aria-hidden="true"``, inline ``display:none``) are dropped, and so is page chrome known by its class
   or id (breadcrumbs, feedback widgets, "last modified" lines, comments, share buttons, related posts,
   tables of contents, cookie notices: :data:`CHROME_WORDS`), and the permalink anchors sites put in
   headings (``<a href="#…">¶</a>``).

The result is an HTML fragment that monitor.normalize turns into canonical text, exactly as it does an
item's HTML, so heading paths, moves and the noise rules are the same for pages and feed items.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lxml.etree
import lxml.html
from cssselect import GenericTranslator, SelectorError

from monitor.normalize import collapse
from monitor.prolog import strip_doctype

Matcher = Callable[[lxml.etree._Element], list[lxml.etree._Element]]

# A page's own header is noise; an article's <header> holds its title and stays.
NOISE = ("//nav", "//header[not(ancestor::article) and not(ancestor::main)]", "//footer",
         "//aside[not(contains(concat(' ', normalize-space(@class), ' '), ' footnote '))"
         " and not(contains(concat(' ', normalize-space(@class), ' '), ' sidebar '))]",
         "//*[@role='navigation']", "//form", "//script", "//style", "//template", "//noscript")
_HIDDEN = ("[hidden]:not([role=tabpanel])", "[aria-hidden=true]")   # an inactive tab's text is content
_DISPLAY_NONE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_MAIN = ("main", "[role=main]")
# Words in a class or id that mark page chrome rather than the document (measured on tests/fixtures/pages:
# Docsy's feedback widget and "Last modified" line, WordPress comments, share buttons and related posts).
# Only block containers and headings are judged (an inline <a class="toc-backref"> or <span class="token
# comment"> is content; of links only skip links); a <section> is named after its heading and never judged.
CHROME_TAGS = ("div", "p", "ul", "ol", "dl", "table", "details", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "a")
CHROME_WORDS = frozenset({"breadcrumb", "breadcrumbs", "feedback", "comment", "comments", "share", "sharing",
                          "sharedaddy", "relatedposts", "related", "toc", "lastmod", "cookie",
                          "cookies", "consent", "advert", "advertisement", "ads", "promo", "newsletter",
                          "pagination", "skip", "noprint", "editsection", "printfooter", "catlinks"})
CHROME_PAIRS = frozenset({("page", "meta"), ("last", "modified"), ("last", "updated"), ("edit", "page"),
                          ("edit", "this"), ("post", "navigation"), ("author", "bio"), ("print", "none")})
PERMALINK_GLYPHS = frozenset({"", "¶", "#", "§", "🔗"})   # heading anchors (MkDocs, Sphinx, GitHub)
_PROBE = lxml.etree.fromstring("<html><body><p>x</p></body></html>")
_WORDS = re.compile(r"[\s_-]+")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.I)
_XML_ENCODING = re.compile(rb"\s*<\?xml[^>]{0,100}?encoding\s*=\s*[\"']([\w.:-]+)", re.I)


class SelectorInvalid(ValueError):
    """A `select`/`exclude` selector that is neither valid CSS nor (with `xpath:`) valid XPath."""


@dataclass(frozen=True, slots=True)
class Page:
    """What a page offers as a document: its title and the selected HTML (empty when nothing matched)."""

    title: str
    html: str
    matched: bool = True            # False: `select` matched nothing on the page
    text: str = ""                  # the selected part's visible text, collapsed (empty: nothing is left)


@functools.lru_cache(maxsize=256)
def compile_selector(selector: str) -> Matcher:
    """A CSS selector (or ``xpath:EXPR``) -> a function from an element to its matches, in document order."""
    if selector.startswith("xpath:"):
        expr = selector[len("xpath:"):].strip()
        try:
            xpath = lxml.etree.XPath(expr)
            probe = xpath(_PROBE)    # undefined prefixes, variables and functions fail only when evaluated
        except (lxml.etree.XPathSyntaxError, lxml.etree.XPathEvalError) as exc:
            raise SelectorInvalid(f"invalid XPath {expr!r}: {exc}") from None
        if not isinstance(probe, list):
            raise SelectorInvalid(f"XPath {expr!r} must select elements, not a string, number or boolean")
        return lambda root: _elements(expr, xpath, root)
    try:
        css = lxml.etree.XPath(GenericTranslator().css_to_xpath(selector))
    except (SelectorError, lxml.etree.XPathSyntaxError) as exc:
        raise SelectorInvalid(f"invalid CSS selector {selector!r}: {exc}") from None
    return lambda root: [e for e in _as_list(css(root)) if isinstance(e, lxml.etree._Element)]


def _as_list(result: object) -> list[object]:
    return list(result) if isinstance(result, list) else []


def _elements(expr: str, xpath: lxml.etree.XPath, root: lxml.etree._Element) -> list[lxml.etree._Element]:
    try:
        found = _as_list(xpath(root))
    except lxml.etree.XPathEvalError as exc:
        raise SelectorInvalid(f"XPath {expr!r} failed on the page: {exc}") from None
    if any(not isinstance(e, lxml.etree._Element) for e in found):
        raise SelectorInvalid(f"XPath {expr!r} must select elements, not text or attributes")
    return [e for e in found if isinstance(e, lxml.etree._Element)]


def parse_html(body: bytes, content_type: str | None) -> lxml.etree._Element | None:
    """A page's bytes -> its element tree. The charset comes from a byte-order mark, else the header, else
    an XML declaration, else UTF-8 when the bytes are UTF-8, else the page's own meta tag (lxml). The
    prolog's DOCTYPE is cut before parsing (monitor.prolog): an XHTML internal subset's entities are
    never expanded, nor shown."""
    body, charset = _decoded(body, content_type)
    parser = lxml.html.HTMLParser(encoding=charset, remove_comments=True, remove_pis=True, no_network=True,
                                  recover=True, huge_tree=True)   # nesting deeper than 256 must not cut the page
    try:
        root = lxml.html.document_fromstring(strip_doctype(body), parser=parser)
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return None
    if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        raise PageTooDeep(charset)     # the tree would stop at the limit and lose the rest of the page
    return root


class PageTooDeep(Exception):
    """A page nested deeper than the HTML parser follows (2,048 levels): its tree would be cut short."""

    def __init__(self, charset: str | None) -> None:
        super().__init__("nested deeper than 2,048 levels")
        self.charset = charset


def is_utf16(body: bytes, content_type: str | None) -> bool:
    """UTF-16 text (which is full of NUL bytes, and not binary)."""
    return body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        _header_charset(content_type) or "").startswith("utf-16")


def _decoded(body: bytes, content_type: str | None) -> tuple[bytes, str | None]:
    """(bytes, charset) for lxml: UTF-16 is re-encoded as UTF-8, a UTF-8 BOM is dropped."""
    if body.startswith(codecs.BOM_UTF8):
        return body[3:], "utf-8"
    if is_utf16(body, content_type):
        bom = body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        codec = "utf-16" if bom else (_header_charset(content_type) or "utf-16")
        return body.decode(codec, "replace").encode(), "utf-8"
    charset = _header_charset(content_type)
    if charset is None and (m := _XML_ENCODING.match(body[:200])):
        charset = _known_codec(m.group(1).decode("ascii", "replace"))
    if charset is None and _is_utf8(body):
        charset = "utf-8"     # most pages are UTF-8 (lxml alone would guess Latin-1)
    return body, charset


def _header_charset(content_type: str | None) -> str | None:
    m = _CHARSET.search(content_type or "")
    return _known_codec(m.group(1)) if m else None


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def page_title(root: lxml.etree._Element) -> str:
    """The page's ``<title>``, else its first ``<h1>``, else empty."""
    for path in ("//title", "//h1"):
        found = root.xpath(path)
        if isinstance(found, list):
            for el in found:
                if isinstance(el, lxml.etree._Element) and (text := collapse("".join(str(t) for t in el.itertext()))):
                    return text
    return ""


def select(root: lxml.etree._Element, *, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> Page:
    """The document part of a parsed page (see the module docstring)."""
    title = page_title(root)
    for selector in exclude:
        _drop(compile_selector(selector)(root))
    if select:
        matches = _outermost([e for s in select for e in compile_selector(s)(root)])
        return Page(title, "".join(_fragment(e) for e in matches), matched=bool(matches), text=_text(matches))
    for path in NOISE:
        _drop(root.xpath(path))
    for selector in _HIDDEN:
        _drop(compile_selector(selector)(root))
    _drop([e for e in root.iter() if isinstance(e.tag, str) and _DISPLAY_NONE.search(e.get("style") or "")])
    _drop([e for e in root.iter(*CHROME_TAGS) if _is_chrome(e)])
    _drop([a for a in root.iter("a") if (a.get("href") or "").startswith("#")
           and collapse("".join(str(t) for t in a.itertext())) in PERMALINK_GLYPHS])
    main = _main(root)
    return Page(title, "".join(_fragment(e) for e in main), text=_text(main))


def _text(elements: list[lxml.etree._Element]) -> str:
    return collapse(" ".join(str(t) for e in elements for t in e.itertext()))


def _main(root: lxml.etree._Element) -> list[lxml.etree._Element]:
    region = next((found[0] for s in _MAIN if (found := compile_selector(s)(root))), None)
    articles = _outermost(compile_selector("article")(region if region is not None else root))
    if region is not None:
        return articles if len(articles) == 1 else [region]   # one article in the main region is the document
    if articles:
        return articles
    body = root.find("body")
    return [body if body is not None else root]


def _is_chrome(el: lxml.etree._Element) -> bool:
    """Page chrome by its class: breadcrumbs, feedback widgets, "last modified" lines, comments, share
    buttons, related posts, tables of contents, cookie notices (see CHROME_WORDS). Ids are not read (they
    are often made from a heading's text), nor is anything inside code."""
    names = (el.get("class") or "").lower()
    whole_id = _WORDS.sub("", (el.get("id") or "").lower())
    if el.tag == "a":       # links are content, but for the "Skip to content" links of accessible pages
        return "skip" in _WORDS.split(names)
    if whole_id in CHROME_WORDS:     # an id that is nothing but a chrome word (id="comments")
        return True
    if not names.strip() or any(a.tag in ("pre", "code") for a in el.iterancestors()):
        return False
    words = _WORDS.split(names)
    if CHROME_WORDS.intersection(words):
        return True
    return any(pair in CHROME_PAIRS for pair in itertools.pairwise(words))


def _outermost(elements: list[lxml.etree._Element]) -> list[lxml.etree._Element]:
    """Matches in document order, without elements inside another match (and without repeats)."""
    chosen: set[lxml.etree._Element] = set(elements)
    out: list[lxml.etree._Element] = []
    for el in sorted(set(elements), key=_position(elements)):
        if not any(a in chosen for a in el.iterancestors()):
            out.append(el)
    return out


def _position(elements: list[lxml.etree._Element]) -> Callable[[lxml.etree._Element], int]:
    if not elements:
        return lambda e: 0
    order = {e: i for i, e in enumerate(elements[0].getroottree().iter())}
    return lambda e: order.get(e, 0)


def _drop(elements: list[lxml.etree._Element] | object) -> None:
    """Remove elements from the tree, keeping the text that follows each (its tail)."""
    if not isinstance(elements, list):
        return
    for el in elements:
        if not isinstance(el, lxml.etree._Element):
            continue
        parent = el.getparent()
        if parent is None:
            continue
        if el.tail:
            previous = el.getprevious()
            if previous is not None:
                previous.tail = (previous.tail or "") + el.tail
            else:
                parent.text = (parent.text or "") + el.tail
        parent.remove(el)


def _fragment(el: lxml.etree._Element) -> str:
    """An element as HTML, without its tail (the text after it belongs to its parent)."""
    return str(lxml.html.tostring(el, encoding="unicode", with_tail=False))
