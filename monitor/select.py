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

import functools
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lxml.etree
import lxml.html
from cssselect import GenericTranslator, SelectorError

from monitor.normalize import collapse

Matcher = Callable[[lxml.etree._Element], list[lxml.etree._Element]]

# A page's own header is noise; an article's <header> holds its title and stays.
NOISE = ("//nav", "//header[not(ancestor::article)]", "//footer", "//aside", "//form", "//script", "//style",
         "//template", "//noscript")
_HIDDEN = ("[hidden]", "[aria-hidden=true]")
_DISPLAY_NONE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_MAIN = ("main", "[role=main]")
# Words in a class or id that mark page chrome rather than the document (measured on tests/fixtures/pages:
# Docsy's feedback widget and "Last modified" line, WordPress comments, share buttons and related posts).
CHROME_WORDS = frozenset({"breadcrumb", "breadcrumbs", "feedback", "comment", "comments", "share", "sharing",
                          "sharedaddy", "relatedposts", "related", "sidebar", "toc", "lastmod", "cookie",
                          "cookies", "consent", "advert", "advertisement", "ads", "promo", "newsletter",
                          "pagination", "skip"})
CHROME_PAIRS = frozenset({("page", "meta"), ("last", "modified"), ("last", "updated"), ("edit", "page"),
                          ("edit", "this"), ("post", "navigation"), ("author", "bio")})
PERMALINK_GLYPHS = frozenset({"", "¶", "#", "§", "🔗"})   # heading anchors (MkDocs, Sphinx, GitHub)
_WORDS = re.compile(r"[\s_-]+")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.I)


class SelectorInvalid(ValueError):
    """A `select`/`exclude` selector that is neither valid CSS nor (with `xpath:`) valid XPath."""


@dataclass(frozen=True, slots=True)
class Page:
    """What a page offers as a document: its title and the selected HTML (empty when nothing matched)."""

    title: str
    html: str
    matched: bool = True            # False: `select` matched nothing on the page


@functools.lru_cache(maxsize=256)
def compile_selector(selector: str) -> Matcher:
    """A CSS selector (or ``xpath:EXPR``) -> a function from an element to its matches, in document order."""
    if selector.startswith("xpath:"):
        expr = selector[len("xpath:"):].strip()
        try:
            xpath = lxml.etree.XPath(expr)
        except lxml.etree.XPathSyntaxError as exc:
            raise SelectorInvalid(f"invalid XPath {expr!r}: {exc}") from None
        return lambda root: [e for e in _as_list(xpath(root)) if isinstance(e, lxml.etree._Element)]
    try:
        css = lxml.etree.XPath(GenericTranslator().css_to_xpath(selector))
    except (SelectorError, lxml.etree.XPathSyntaxError) as exc:
        raise SelectorInvalid(f"invalid CSS selector {selector!r}: {exc}") from None
    return lambda root: [e for e in _as_list(css(root)) if isinstance(e, lxml.etree._Element)]


def _as_list(result: object) -> list[object]:
    return list(result) if isinstance(result, list) else []


def parse_html(body: bytes, content_type: str | None) -> lxml.etree._Element | None:
    """A page's bytes -> its element tree (charset from the header, else the page's own meta tag)."""
    charset = None
    if content_type and (m := _CHARSET.search(content_type)):
        charset = m.group(1)
    elif _is_utf8(body):
        charset = "utf-8"     # no charset in the header: most pages are UTF-8 (lxml alone would guess Latin-1)
    parser = lxml.html.HTMLParser(encoding=_known_codec(charset), remove_comments=True, remove_pis=True,
                                  no_network=True, recover=True,
                                  huge_tree=True)   # nesting deeper than 256 must not cut the page
    try:
        root = lxml.html.document_fromstring(body, parser=parser)
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return None
    return root


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    import codecs

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
        html = "".join(_fragment(e) for e in matches)
        return Page(title, html, matched=bool(matches))
    for path in NOISE:
        _drop(root.xpath(path))
    for selector in _HIDDEN:
        _drop(compile_selector(selector)(root))
    _drop([e for e in root.iter() if isinstance(e.tag, str) and _DISPLAY_NONE.search(e.get("style") or "")])
    _drop([e for e in root.iter() if isinstance(e.tag, str) and e.tag not in ("html", "body") and _is_chrome(e)])
    _drop([a for a in root.iter("a") if (a.get("href") or "").startswith("#")
           and collapse("".join(str(t) for t in a.itertext())) in PERMALINK_GLYPHS])
    return Page(title, "".join(_fragment(e) for e in _main(root)))


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
    """Page chrome by its class or id: breadcrumbs, feedback widgets, "last modified" lines, comments,
    share buttons, related posts, tables of contents, cookie notices (see CHROME_WORDS)."""
    names = f"{el.get('class') or ''} {el.get('id') or ''}".lower()
    if not names.strip():
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
