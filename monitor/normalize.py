"""Item HTML -> blocks with heading paths -> canonical text + hashes. Pure functions.

The canonical text is what feedwatch compares, stores, diffs and shows. It must change when the
*visible text* changes and must not change for cosmetic rewrites of the same page: whitespace and
re-wrapping, entity spelling (``&rsquo;`` vs ``’``), tag case, attribute order, wrapping markup (``div``
around the page, ``span``/``strong`` inside paragraphs), ordered vs unordered list markup, and link
targets (unless the feed sets ``links: true``).

The algorithm (table-tested in tests/cases/normalize.yaml):

1. Parse with lxml's HTML parser (comments and processing instructions dropped). Elements that show no
   text (script, style, template, svg, form controls...) are skipped.
2. Walk the tree. Every block-level element starts and ends a block. A block is a heading (h1-h6), a
   paragraph, a list item (with its nesting depth), a table row (cells joined with " | ") or one line of
   preformatted text. Inline text is concatenated; whitespace (NBSP included) collapses to one space; zero
   width spaces and soft hyphens are dropped; the result is NFC-normalised.
3. Each block carries its heading path: the texts of the enclosing headings, outermost first.
4. The blocks are rendered one per line in a small Markdown-like form (see :func:`render`), which
   :func:`parse_canonical` reads back exactly, so stored text is the single source of truth.
5. The feed's ``ignore`` regexes are applied to that text; lines left empty disappear.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from urllib.parse import urljoin

import lxml.etree

from monitor.canonical import parse_canonical, render
from monitor.models import Block, BlockKind, Item, ParsedItem

SKIP = frozenset({
    "script", "style", "template", "noscript", "head", "title", "meta", "link", "base", "iframe", "frame",
    "object", "embed", "applet", "svg", "math", "canvas", "audio", "video", "map", "select", "textarea",
    "button", "input", "option", "datalist",
})
BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "body", "center", "dd", "details", "dialog", "dir", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "html",
    "main", "menu", "nav", "ol", "p", "section", "summary", "table", "tbody", "thead", "tfoot", "ul",
    "caption", "legend", "td", "th",
})
HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACE = re.compile(r"\s+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\ufeff\u00ad\u2060"), None)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
# Plain etree elements (lxml.html's element classes cost a lookup per element and are not needed here).
_PARSER = lxml.etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, recover=True)


def collapse(text: str) -> str:
    """Collapse whitespace to single spaces, drop invisible characters, NFC-normalise."""
    return unicodedata.normalize("NFC", _SPACE.sub(" ", text.translate(_INVISIBLE)).strip())


# ------------------------------------------------------------------------------------------ HTML -> blocks


def html_blocks(html: str, *, links: bool = False, base: str | None = None) -> list[Block]:
    """The blocks of an HTML document or fragment (see the module docstring)."""
    html = _XML_DECL.sub("", html)
    if not html.strip():
        return []
    try:
        root = lxml.etree.fromstring(html, parser=_PARSER)
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return []
    if root is None:
        return []   # nothing but comments
    walker = _Walker(links=links, base=base)
    walker.visit(root)
    walker.flush()
    return walker.blocks


def text_blocks(text: str) -> list[Block]:
    """The blocks of a plain-text body: paragraphs separated by blank lines."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return [Block(BlockKind.PARAGRAPH, t) for t in map(collapse, paragraphs) if t]


def _tag(el: lxml.etree._Element) -> str | None:
    tag: object = el.tag
    if not isinstance(tag, str):
        return None     # comment, processing instruction, entity
    return tag.rsplit("}", 1)[-1].lower()


class _Walker:
    """Depth-first walk that cuts the tree into blocks. lxml caps nesting depth (256), so recursion is safe."""

    def __init__(self, *, links: bool, base: str | None) -> None:
        self.links = links
        self.base = base
        self.blocks: list[Block] = []
        self.headings: list[tuple[int, str]] = []
        self.buf: list[str] = []
        self.depth = 0              # list nesting depth
        self.item_pending = False   # the next block flushed inside an <li> is the item itself
        self._path: tuple[str, ...] = ()   # the heading path, rebuilt only when a heading opens

    def path(self) -> tuple[str, ...]:
        return self._path

    def flush(self) -> None:
        if not self.buf:
            return
        text = "".join(self.buf)
        self.buf.clear()
        if text.isspace():
            return                  # the line breaks between block tags: most flushes end here
        text = collapse(text)
        if not text:
            return
        kind = BlockKind.ITEM if self.item_pending else BlockKind.PARAGRAPH
        self.item_pending = False
        self.blocks.append(Block(kind, text, self.depth, self._path))

    def visit(self, el: lxml.etree._Element) -> None:
        # The hot loop of normalisation: one call per element of every item of every feed.
        tag: object = el.tag
        if type(tag) is not str:
            tag = None                          # comment, processing instruction, entity
        elif "}" in tag:
            tag = tag.rsplit("}", 1)[-1].lower()
        if tag is None or tag in SKIP:
            pass
        elif tag in HEADINGS:
            self.heading(el, HEADINGS[tag])
        elif tag == "li":
            self.list_item(el)
        elif tag == "tr":
            self.row(el)
        elif tag == "pre":
            self.pre(el)
        elif tag == "br":
            self.flush()
        elif tag in BLOCK:
            self.flush()
            self.children(el)
            self.flush()
        else:
            self.children(el)
            if self.links:
                self.link_target(el, tag)
        if el.tail:
            self.buf.append(el.tail)

    def children(self, el: lxml.etree._Element) -> None:
        text = el.text
        if text and type(el.tag) is str:
            self.buf.append(text)
        for child in el:
            self.visit(child)

    def link_target(self, el: lxml.etree._Element, tag: str) -> None:
        attr = {"a": "href", "img": "src"}.get(tag)
        target = el.get(attr) if self.links and attr else None
        if target and not target.startswith(("#", "javascript:", "data:")):
            self.buf.append(f" <{urljoin(self.base, target.strip()) if self.base else target.strip()}>")

    def heading(self, el: lxml.etree._Element, level: int) -> None:
        self.flush()
        text = collapse(self.inline_text(el))
        if not text:
            return
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, text))
        self._path = tuple(t for _, t in self.headings)
        self.blocks.append(Block(BlockKind.HEADING, text, level, self._path))

    def list_item(self, el: lxml.etree._Element) -> None:
        self.flush()
        self.depth += 1
        outer = self.item_pending
        self.item_pending = True
        self.children(el)
        self.flush()
        self.item_pending = outer
        self.depth -= 1

    def row(self, el: lxml.etree._Element) -> None:
        self.flush()
        cells = [collapse(self.inline_text(c)) for c in el if _tag(c) in ("td", "th")]
        if any(cells):
            self.blocks.append(Block(BlockKind.ROW, " | ".join(cells), 0, self.path()))

    def pre(self, el: lxml.etree._Element) -> None:
        self.flush()
        raw = "".join(_texts(el)).replace("\r\n", "\n").replace("\r", "\n")
        for line in raw.split("\n"):
            line = unicodedata.normalize("NFC", line.translate(_INVISIBLE).rstrip().expandtabs(4))
            if line.strip():
                self.blocks.append(Block(BlockKind.CODE, line, 0, self.path()))

    def inline_text(self, el: lxml.etree._Element) -> str:
        """All text under `el` as one line (for headings and table cells), blocks joined by spaces."""
        sub = _Walker(links=self.links, base=self.base)
        sub.children(el)
        sub.flush()
        return " ".join(b.text for b in sub.blocks)


def _texts(el: lxml.etree._Element) -> Iterable[str]:
    """Text under `el` verbatim (tails of children included, el's own tail not), skipping SKIP elements."""
    if el.text:
        yield el.text
    for child in el:
        tag = _tag(child)
        if tag is not None and tag not in SKIP:
            if tag == "br":
                yield "\n"
            yield from _texts(child)
        if child.tail:
            yield child.tail


def apply_ignore(text: str, patterns: Sequence[re.Pattern[str]]) -> str:
    """Remove every match of the feed's ignore regexes; lines left empty disappear."""
    if not patterns:
        return text
    for pattern in patterns:
        text = pattern.sub("", text)
    return render(parse_canonical("\n".join(line.rstrip() for line in text.split("\n"))))


# ------------------------------------------------------------------------------------------ items


def title_text(title: str, *, is_html: bool) -> str:
    if is_html and "<" in title:
        return collapse(" ".join(b.text for b in html_blocks(title)))
    return collapse(title)


def canonical_text(content: str, *, is_html: bool = True, links: bool = False, base: str | None = None,
                   ignore: Sequence[re.Pattern[str]] = ()) -> str:
    blocks = html_blocks(content, links=links, base=base) if is_html else text_blocks(content)
    return apply_ignore(render(blocks), ignore)


def state_hash(title: str, link: str | None, text_hash: bytes) -> bytes:
    """Equal state hashes mean "no change": title, link and canonical text are all the same."""
    return hashlib.sha256(f"{title}\x00{link or ''}\x00".encode() + text_hash).digest()


def normalize_item(item: ParsedItem, *, links: bool = False, base: str | None = None,
                   ignore: Sequence[re.Pattern[str]] = ()) -> Item:
    """A parsed entry -> an Item with canonical text and hashes (its identity key is set later)."""
    text = canonical_text(item.content, is_html=item.content_is_html, links=links, base=base,
                          ignore=ignore)
    title = title_text(item.title, is_html=item.title_is_html)
    link = urljoin(base, item.link) if item.link and base else item.link
    text_hash = hashlib.sha256(text.encode()).digest()
    return Item(key="", guid=item.guid, link=link, title=title, text=text, raw=item.raw,
                text_hash=text_hash, state_hash=state_hash(title, link, text_hash))
