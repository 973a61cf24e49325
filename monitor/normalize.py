"""Item HTML -> blocks with heading paths -> canonical text + hashes. Pure functions.

The canonical text is what feedwatch compares, stores, diffs and shows. It must change when the
*visible text* changes and must not change for cosmetic rewrites of the same page: whitespace and
re-wrapping, entity spelling (``&rsquo;`` vs ``’``), tag case, attribute order, wrapping markup (``div``
around the page, ``span``/``strong`` inside paragraphs), ordered vs unordered list markup, and link
targets (unless the feed sets ``links: true``).

The algorithm (table-tested in tests/cases/normalize.yaml):

1. Parse with lxml's HTML parser (comments and processing instructions dropped; nesting read to 2,047
   levels, libxml2's limit with ``huge_tree``). Elements that show no text (script, style, template,
   svg — its ``title``/``desc`` too —, form controls, ``iframe``/``object`` fallback, a ``title`` inside
   the body, MathML annotations...) are skipped. MathML text is kept ("a + b" reads "a+b"). Elements that
   HTML defines as void but libxml2 parses as containers (``embed``, ``source``, ``track``, ``wbr``) are
   transparent, so the text libxml2 puts inside them — really the text after them — is kept. Text
   directly inside a table row, outside its cells, is a paragraph before the row (as browsers show it).
2. Walk the tree. Every block-level element starts and ends a block. A block is a heading (h1-h6), a
   paragraph, a list item (with its nesting depth), a table row (cells joined with " | ") or one line of
   preformatted text. Inline text is concatenated; whitespace (NBSP included) collapses to one space; zero
   width spaces and soft hyphens are dropped; the result is NFC-normalised.
3. Each block carries its heading path: the texts of the enclosing headings, outermost first.
4. Subtrees nested deeper than the walker's recursion budget (``MAX_DEPTH``) are read without recursion:
   all their text, one paragraph per block element, no list or heading structure.
5. The blocks are rendered one per line in a small Markdown-like form (see :func:`render`), which
   :func:`parse_canonical` reads back exactly, so stored text is the single source of truth.
6. The feed's ``ignore`` regexes are applied to that text; lines left empty disappear.
"""

from __future__ import annotations

import hashlib
import html.parser
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence

import lxml.etree

from monitor.canonical import open_heading, parse_canonical, render
from monitor.models import Block, BlockKind, Item, ParsedItem
from monitor.urls import join_url

SKIP = frozenset({
    "script", "style", "template", "noscript", "head", "title", "meta", "link", "base", "iframe", "frame",
    "object", "applet", "svg", "canvas", "audio", "video", "map", "select", "textarea", "button", "input",
    "option", "datalist", "annotation", "annotation-xml",
})
BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "body", "center", "dd", "details", "dialog", "dir", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "html",
    "main", "menu", "nav", "ol", "p", "section", "summary", "table", "tbody", "thead", "tfoot", "ul",
    "caption", "legend", "td", "th",
})
HEADINGS = {f"h{n}": n for n in range(1, 7)}
BREAKS = BLOCK | HEADINGS.keys() | {"li", "tr", "pre", "br"}      # where flat reading starts a new block
# The tags the walk reads as more than their text; every other element is inline (its text and its tail join
# the current block). With ``links: true``, ``a`` and ``img`` add their targets too.
_STRUCTURE = SKIP | BREAKS
_LINKED = _STRUCTURE | {"a", "img"}
# What the walk does with an element, by tag (one dict lookup per element): skip it, or read it as a block,
# a list item, a heading, a table row, preformatted text or a line break; any other tag is inline.
_SKIPPED, _BLOCK, _ITEM, _HEADING, _ROW, _PRE, _BREAK, _INLINE = range(8)
_ROLES = {**dict.fromkeys(BLOCK, _BLOCK), **dict.fromkeys(HEADINGS, _HEADING), "li": _ITEM, "tr": _ROW,
          "pre": _PRE, "br": _BREAK, **dict.fromkeys(SKIP, _SKIPPED)}
MAX_DEPTH = 200         # element nesting the recursive walk follows; deeper subtrees are read flat
# The iterative walks' events: a tree parsed by the caller may hold comments and processing instructions,
# which come only as events of their own; their tails are text.
_WALK_EVENTS = ("start", "end", "comment", "pi")
_NOT_ELEMENTS = frozenset({"comment", "pi"})
# A Block made without the Python-level __new__ a named tuple has (a frame per block of every item).
_block: Callable[[type[Block], tuple[BlockKind, str, int, tuple[str, ...]]], Block] = tuple.__new__
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\ufeff\u00ad\u2060"), None)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
# Plain etree elements (lxml.html's element classes cost a lookup per element and are not needed here).
# Text is handed to libxml2 as UTF-8, its own encoding: lxml passes a str that is not ASCII as Latin-1,
# UTF-16 or UCS-4, which libxml2 converts first (a third of the parse). A str comes with its encoding known, so
# a <meta charset> in it is ignored either way.
_PARSER = lxml.etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, recover=True,
                                huge_tree=True, encoding="utf-8")


def collapse(text: str) -> str:
    """Collapse whitespace to single spaces, drop invisible characters, NFC-normalise.

    ``str.split()`` splits at exactly the characters ``\\s`` matches (``str.isspace``), so the join is the
    regex collapse, three times faster; ASCII text has no invisible characters and is already NFC. Most
    block texts are collapsed already, and checking that costs half of splitting them: printable text has
    no whitespace but " " (the other spaces, line breaks and the invisible characters are not printable)."""
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text if text.isascii() else unicodedata.normalize("NFC", text)
    if text.isascii():
        return " ".join(text.split())
    if "\u200b" in text or "\ufeff" in text or "\u00ad" in text or "\u2060" in text:
        text = text.translate(_INVISIBLE)    # a translate through a dict looks up every character
    return unicodedata.normalize("NFC", " ".join(text.split()))


# ------------------------------------------------------------------------------------------ HTML -> blocks


def html_blocks(html: str | lxml.etree._Element, *, links: bool = False, base: str | None = None) -> list[Block]:
    """The blocks of an HTML document or fragment, given as text or as a parsed lxml element (see the
    module docstring). The one entry point from HTML to blocks; :func:`canonical_text` renders them."""
    root = html if isinstance(html, lxml.etree._Element) else parse_html(html)
    if root is None:
        return []
    if not isinstance(html, lxml.etree._Element) and _too_deep():
        return _token_blocks(html)
    walker = _Walker(links=links, base=base)
    walker.visit(root)
    walker.flush()
    return walker.blocks


def parse_html(html: str) -> lxml.etree._Element | None:
    """An HTML document or fragment parsed the way normalisation reads it; None when there is nothing."""
    html = _XML_DECL.sub("", html)
    if not html.strip():
        return None
    try:
        data: str | bytes = html.encode()
    except UnicodeEncodeError:
        data = html             # lone surrogates, which UTF-8 cannot carry: lxml reads them as before
    try:
        root: lxml.etree._Element | None = lxml.etree.fromstring(data, parser=_PARSER)
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return None
    return root     # None for nothing but comments


def _too_deep() -> bool:
    """Whether the last parse stopped at libxml2's nesting limit (2,048 levels even with huge_tree): the
    tree then lacks everything after the deepest point."""
    return any(e.type_name == "ERR_RESOURCE_LIMIT" for e in _PARSER.error_log)


class _Tokens(html.parser.HTMLParser):
    """Blocks from HTML tokens, no tree: the reading of documents nested beyond any parser's limit. All
    visible text is kept, one paragraph per block element; list and heading structure is not."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta",
                      "param", "source", "track", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skipping or tag in SKIP:
            if tag not in self.VOID:
                self.skipping.append(tag)
        elif tag in BREAKS:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag in self.skipping:
                del self.skipping[len(self.skipping) - 1 - self.skipping[::-1].index(tag):]
        elif tag in BREAKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.buf.append(data)

    def flush(self) -> None:
        text = collapse("".join(self.buf))
        self.buf.clear()
        if text:
            self.blocks.append(Block(BlockKind.PARAGRAPH, text))


def _token_blocks(html: str) -> list[Block]:
    tokens = _Tokens()
    tokens.feed(html)
    tokens.close()
    tokens.flush()
    return tokens.blocks


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
    """Depth-first walk that cuts the tree into blocks; past MAX_DEPTH levels it reads subtrees flat.

    A block element whose content is inline elements only (most paragraphs, list items and headings) is
    read in one call to libxml2 (:meth:`inline_only`, :func:`_subtree_text`) instead of element by element:
    the walk would only have concatenated the same texts and tails."""

    def __init__(self, *, links: bool, base: str | None, level: int = 0) -> None:
        self.links = links
        self.base = base
        self.structure = _LINKED if links else _STRUCTURE   # the tags read as more than their text
        self.level = level          # element nesting of the walk (recursion budget)
        self.blocks: list[Block] = []
        self.headings: list[tuple[int, str]] = []
        self.buf: list[str] = []
        self.depth = 0              # list nesting depth
        self.item_pending = False   # the next block flushed inside an <li> is the item itself
        self._path: tuple[str, ...] = ()   # the heading path, rebuilt only when a heading opens

    def path(self) -> tuple[str, ...]:
        return self._path

    def flush(self) -> None:
        if self.buf:
            text = "".join(self.buf)
            self.buf.clear()
            self.emit(text)

    def emit(self, text: str | None) -> None:
        """The block of `text` (nothing when it collapses to nothing): the list item when one is pending."""
        if not text or text.isspace():
            return                  # the line breaks between block tags: most flushes end here
        text = collapse(text)
        if not text:
            return
        kind = BlockKind.ITEM if self.item_pending else BlockKind.PARAGRAPH
        self.item_pending = False
        self.blocks.append(_block(Block, (kind, text, self.depth, self._path)))

    def visit(self, el: lxml.etree._Element) -> None:
        # The hot loop of normalisation: one call per element of every item of every feed.
        tag = el.tag
        role = _ROLES.get(tag, _INLINE) if type(tag) is str else _SKIPPED   # comment, PI, entity: skipped
        if role is _INLINE and "}" in tag:
            tag = tag.rsplit("}", 1)[-1].lower()
            role = _ROLES.get(tag, _INLINE)
        if role is _BLOCK:
            self.block(el)
        elif role is _ITEM:
            self.list_item(el)
        elif role is _HEADING:
            self.heading(el, HEADINGS[tag])
        elif role is _INLINE:
            self.children(el)
            if self.links:
                self.link_target(el, tag)
        elif role is _ROW:
            self.row(el)
        elif role is _PRE:
            self.pre(el)
        elif role is _BREAK:
            self.flush()
        tail = el.tail
        if tail and (self.buf or not tail.isspace()):   # leading space never survives collapse
            self.buf.append(tail)

    def block(self, el: lxml.etree._Element) -> None:
        if self.buf:
            self.flush()
        if not len(el):
            self.emit(el.text)          # a block of plain text (most paragraphs)
        elif self.inline_only(el):
            self.emit(_subtree_text(el))
        else:
            self.walk_children(el)
            self.flush()

    def children(self, el: lxml.etree._Element) -> None:
        """The text and children of `el` (not its tail) into the current block."""
        if len(el) and self.inline_only(el):
            self.buf.append(_subtree_text(el))
        else:
            self.walk_children(el)

    def walk_children(self, el: lxml.etree._Element) -> None:
        """:meth:`children` element by element, for an element already found not to be inline only (or empty)."""
        text = el.text
        if text and type(el.tag) is str and (self.buf or not text.isspace()):
            self.buf.append(text)
        if self.level >= MAX_DEPTH:
            for child in el:
                self.flat(child)
            return
        self.level += 1
        for child in el:
            self.visit(child)
        self.level -= 1

    def inline_only(self, el: lxml.etree._Element) -> bool:
        """Whether `el` is an element whose descendants are all inline elements, which the walk would read
        as their texts and tails in document order (also past MAX_DEPTH: :meth:`flat` lowercases tags,
        hence the lowercase test). Comments, processing instructions and namespaced tags are the walk's."""
        if type(el.tag) is not str:
            return False
        structure = self.structure
        for node in el.iterdescendants():
            tag = node.tag
            if type(tag) is not str or "}" in tag or tag.lower() in structure:
                return False
        return True

    def flat(self, el: lxml.etree._Element) -> None:
        """A deeply nested subtree (and its tail) without recursion: its text, a paragraph per block."""
        if type(el.tag) is not str:     # a comment or processing instruction (iterwalk takes elements only)
            if el.tail:
                self.buf.append(el.tail)
            return
        walk = lxml.etree.iterwalk(el, events=_WALK_EVENTS)
        for event, node in walk:
            if event in _NOT_ELEMENTS:  # shown: its tail, as the recursive walk shows it
                if node.tail:
                    self.buf.append(node.tail)
                continue
            tag = _tag(node)
            if event == "start":
                if tag is None or tag in SKIP:
                    walk.skip_subtree()
                    continue
                if tag in BREAKS:
                    self.flush()
                if node.text:
                    self.buf.append(node.text)
            else:
                if tag in BREAKS:
                    self.flush()
                if node.tail:
                    self.buf.append(node.tail)

    def link_target(self, el: lxml.etree._Element, tag: str) -> None:
        attr = {"a": "href", "img": "src"}.get(tag)
        target = el.get(attr) if self.links and attr else None
        if target and not target.startswith(("#", "javascript:", "data:")):
            self.buf.append(f" <{join_url(self.base, target.strip()) if self.base else target.strip()}>")

    def heading(self, el: lxml.etree._Element, level: int) -> None:
        if self.buf:
            self.flush()
        # A heading of plain text (most) needs no walk of its own.
        text = collapse(self.inline_text(el) if len(el) else el.text or "")
        if not text:
            return
        open_heading(self.headings, level, text)
        self._path = tuple([t for _, t in self.headings])
        self.blocks.append(Block(BlockKind.HEADING, text, level, self._path))

    def list_item(self, el: lxml.etree._Element) -> None:
        if self.buf:
            self.flush()
        self.depth += 1
        outer = self.item_pending
        self.item_pending = True
        if len(el):
            self.children(el)
            self.flush()
        else:
            self.emit(el.text)
        self.item_pending = outer
        self.depth -= 1

    def row(self, el: lxml.etree._Element) -> None:
        self.flush()
        stray = [el.text or ""] + [self.inline_text(c) if _tag(c) not in ("td", "th") else "" for c in el]
        stray += [c.tail or "" for c in el]
        if collapse(" ".join(stray)):
            self.blocks.append(Block(BlockKind.PARAGRAPH, collapse(" ".join(stray)), self.depth, self._path))
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
        if len(el) and self.inline_only(el):
            return collapse(_subtree_text(el))
        sub = _Walker(links=self.links, base=self.base, level=self.level)
        sub.walk_children(el)
        sub.flush()
        return " ".join(b.text for b in sub.blocks)


def _subtree_text(el: lxml.etree._Element) -> str:
    """All text under `el` in document order, its own tail excluded: ``"".join(el.itertext())``, four times
    faster (libxml2 collects the text nodes; itertext yields them one by one through Python)."""
    return lxml.etree.tostring(el, method="text", encoding=str, with_tail=False)


def _texts(el: lxml.etree._Element) -> Iterable[str]:
    """Text under `el` verbatim (tails of children included, el's own tail not), skipping SKIP elements.
    Iterative: a <pre> may hold deeply nested markup."""
    walk = lxml.etree.iterwalk(el, events=_WALK_EVENTS)
    for event, node in walk:
        if event in _NOT_ELEMENTS:
            if node.tail:
                yield node.tail
            continue
        tag = _tag(node)
        if event == "start":
            if node is not el and (tag is None or tag in SKIP):
                walk.skip_subtree()
                continue
            if tag == "br":
                yield "\n"
            if node.text and (tag is not None or node is el):
                yield node.text
        elif node is not el and node.tail:
            yield node.tail


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


def canonical_text(content: str | lxml.etree._Element, *, is_html: bool = True, links: bool = False,
                   base: str | None = None, ignore: Sequence[re.Pattern[str]] = ()) -> str:
    """The canonical text of a body: HTML (text or a parsed lxml element) or plain text (``is_html=False``)."""
    if is_html or not isinstance(content, str):
        blocks = html_blocks(content, links=links, base=base)
    else:
        blocks = text_blocks(content)
    return apply_ignore(render(blocks), ignore)


def state_hash(title: str, link: str | None, text_hash: bytes) -> bytes:
    """Equal state hashes mean "no change": title, link and canonical text are all the same."""
    return hashlib.sha256(f"{title}\x00{link or ''}\x00".encode() + text_hash).digest()


def normalize_item(item: ParsedItem, *, links: bool = False, base: str | None = None,
                   ignore: Sequence[re.Pattern[str]] = ()) -> Item:
    """A parsed entry -> an Item with canonical text and hashes (its identity key is set later)."""
    text = canonical_text(item.content, is_html=item.content_is_html, links=links, base=base,
                          ignore=ignore)
    return _item(item, text, hashlib.sha256(text.encode()).digest(), base)


def stored_item(item: ParsedItem, text_hash: bytes, *, base: str | None = None) -> Item:
    """A parsed entry whose canonical text is already stored under `text_hash` (its raw form is that of
    its document's latest version, under the same settings): everything but the text, which stays empty
    until someone loads it (monitor.poll). Title and link are read afresh: they cost next to nothing."""
    return _item(item, "", text_hash, base)


def _item(item: ParsedItem, text: str, text_hash: bytes, base: str | None) -> Item:
    title = title_text(item.title, is_html=item.title_is_html)
    link = join_url(base, item.link) if item.link and base else item.link
    return Item(key="", guid=item.guid, link=link, title=title, text=text, raw=item.raw,
                text_hash=text_hash, state_hash=state_hash(title, link, text_hash))
