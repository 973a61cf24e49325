"""Property-based tests (hypothesis) over normalize and diff, and a fuzz test over parse -> normalize.

Deterministic (derandomized) and bounded: each property runs a fixed number of examples.
"""

from __future__ import annotations

import html
import random
import time
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.canonical import parse_canonical, render
from monitor.diff import TIME_BUDGET, Version, diff_versions, word_diff
from monitor.errors import ParseError
from monitor.models import FetchResult, Validators
from monitor.normalize import canonical_text, normalize_item
from monitor.parse import parse
from tests.helpers import corpus_steps

BOUNDED = settings(max_examples=150, deadline=2000, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])

WORDS = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzÀéß’&<>'\"0123456789"), min_size=1,
                max_size=8)
PHRASE = st.lists(WORDS, min_size=1, max_size=8).map(" ".join)


@dataclass(frozen=True)
class Node:
    """A block of a generated page: (tag, text, children) rendered by `to_html`."""

    tag: str
    text: str = ""
    children: tuple[Node, ...] = ()


def blocks(depth: int = 0) -> st.SearchStrategy[Node]:
    leaf = st.one_of(
        st.builds(Node, st.sampled_from(["h1", "h2", "h3", "p", "p", "p"]), PHRASE),
        st.builds(Node, st.just("pre"), st.lists(PHRASE, min_size=1, max_size=3).map("\n".join)),
        st.builds(Node, st.just("tr"), st.lists(PHRASE, min_size=1, max_size=3).map(" | ".join)),
    )
    if depth >= 2:
        return leaf
    items = st.lists(st.builds(Node, st.just("li"), PHRASE, st.lists(blocks(depth + 1).filter(
        lambda n: n.tag == "ul"), max_size=1).map(tuple)), min_size=1, max_size=4)
    lists = items.map(lambda xs: Node("ul", "", tuple(xs)))
    return st.one_of(leaf, lists)


PAGES = st.lists(blocks(), min_size=0, max_size=8)


def to_html(nodes: list[Node] | tuple[Node, ...], rng: random.Random | None = None) -> str:
    """Render a page; with `rng`, apply random cosmetic rewrites that must not change the canonical text."""
    def ws() -> str:
        return rng.choice(["", " ", "\n  ", "\t"]) if rng else ""

    def tag(name: str) -> str:
        return name.upper() if rng and rng.random() < 0.3 else name

    def attrs() -> str:
        return rng.choice(["", ' class="x"', ' data-a="1" id="y"', " title='t'"]) if rng else ""

    def text(t: str) -> str:
        escaped = html.escape(t, quote=False)
        if rng:
            escaped = escaped.replace("’", rng.choice(["’", "&rsquo;", "&#8217;"]))
            escaped = escaped.replace(" ", rng.choice([" ", "  ", "\n"]))
            if rng.random() < 0.3:
                escaped = f"<span>{escaped}</span>"
        return escaped

    out = []
    for n in nodes:
        if n.tag == "ul":
            name = rng.choice(["ul", "ol"]) if rng else "ul"
            out.append(f"<{tag(name)}{attrs()}>{ws()}{to_html(n.children, rng)}{ws()}</{tag(name)}>")
        elif n.tag == "li":
            out.append(f"<{tag('li')}{attrs()}>{text(n.text)}{to_html(n.children, rng)}</{tag('li')}>{ws()}")
        elif n.tag == "pre":
            out.append(f"<pre>{html.escape(n.text, quote=False)}</pre>")
        elif n.tag == "tr":
            cells = "".join(f"<td>{text(c)}</td>" for c in n.text.split(" | "))
            out.append(f"<table{attrs()}><tr>{cells}</tr></table>")
        else:
            out.append(f"<{tag(n.tag)}{attrs()}>{text(n.text)}</{tag(n.tag)}>{ws()}")
    page = "".join(out)
    return f"<div>{page}</div>" if rng and rng.random() < 0.5 else page


@BOUNDED
@given(PAGES, st.integers(0, 2**32))
def test_cosmetic_rewrites_give_the_same_canonical_text(page: list[Node], seed: int) -> None:
    assert canonical_text(to_html(page, random.Random(seed))) == canonical_text(to_html(page))


@BOUNDED
@given(PAGES)
def test_canonical_text_reads_back_exactly(page: list[Node]) -> None:
    text = canonical_text(to_html(page))
    assert render(parse_canonical(text)) == text
    assert "\n\n" not in text and not text.startswith(" ")


@BOUNDED
@given(st.text(max_size=300), st.text(max_size=300))
def test_word_ops_rebuild_both_texts(a: str, b: str) -> None:
    ops, _ = word_diff(a, b, time.monotonic() + TIME_BUDGET)
    assert "".join(o.text for o in ops if o.op != "insert") == a
    assert "".join(o.text for o in ops if o.op != "delete") == b


@BOUNDED
@given(PAGES, PAGES)
def test_diff_fragments_come_from_the_versions(old: list[Node], new: list[Node]) -> None:
    a, b = canonical_text(to_html(old)), canonical_text(to_html(new))
    diff = diff_versions(Version("t", None, a), Version("t", None, b))
    paths = {blk.path for blk in parse_canonical(a)} | {blk.path for blk in parse_canonical(b)} | {()}
    assert all(s.path in paths for s in diff.sections)
    assert all(f in b for f in diff.inserted) and all(f in a for f in diff.deleted)
    if a == b:
        assert not diff.sections and not diff.moves and diff.summary == "no visible change"
    else:
        assert diff.sections or diff.moves or diff.summary != "no visible change"


@BOUNDED
@given(PAGES)
def test_a_document_diffed_with_itself_is_empty(page: list[Node]) -> None:
    text = canonical_text(to_html(page))
    diff = diff_versions(Version("t", None, text), Version("t", None, text))
    assert (diff.sections, diff.moves, diff.inserted, diff.deleted) == ((), (), (), ())


FEEDS = [p.read_bytes() for p in corpus_steps()[::6]]


def mutate(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 12)):
        choice, at = rng.random(), rng.randrange(len(data) or 1)
        if choice < 0.3:
            data[at:at + 1] = bytes([rng.randrange(256)])
        elif choice < 0.5:
            del data[at:at + rng.randint(1, 400)]
        elif choice < 0.7:
            data[at:at] = rng.choice([b"<", b">", b"&", b"&amp;", b"]]>", b"<item>", b"</channel>", b"\x00",
                                      b"<![CDATA[", b"&#xD800;", b"\xff\xfe", b"<!DOCTYPE x [<!ENTITY e 'x'>]>"])
        else:
            data = data[:at]
    return bytes(data)


@settings(max_examples=300, deadline=5000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(FEEDS) - 1), st.integers(0, 2**32), st.booleans())
def test_mutated_real_feeds_parse_cleanly_or_fail_cleanly(which: int, seed: int, lenient: bool) -> None:
    body = mutate(FEEDS[which], random.Random(seed))
    try:
        feed = parse("fuzz", FetchResult("https://example.org/f", 200, body, "application/rss+xml", Validators()),
                     lenient=lenient)
    except ParseError as err:
        assert str(err).startswith("parse: fuzz: ") and "\n" not in str(err)
        return
    for item in feed.items:
        normalized = normalize_item(item, base="https://example.org/f")
        assert render(parse_canonical(normalized.text)) == normalized.text
