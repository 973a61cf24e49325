"""normalize: the canonical text, table-tested (tests/cases/normalize.yaml), and its round trip."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import yaml

from monitor.canonical import parse_canonical, render
from monitor.normalize import apply_ignore, canonical_text, html_blocks

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "normalize.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    text = canonical_text(case["html"], links=case.get("links", False), base=case.get("base"))
    assert text == case["text"]
    assert render(parse_canonical(text)) == text                      # stored text reads back exactly


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_blocks_round_trip(case: dict[str, Any]) -> None:
    blocks = html_blocks(case["html"], links=case.get("links", False), base=case.get("base"))
    assert [(b.kind, b.text, b.level) for b in parse_canonical(render(blocks))] == \
        [(b.kind, b.text, b.level) for b in blocks]


def test_heading_paths() -> None:
    blocks = html_blocks("<h1>A</h1><p>a</p><h2>B</h2><p>b</p><h3>C</h3><p>c</p><h2>D</h2><p>d</p>")
    assert {b.text: b.path for b in blocks if b.kind.value == "paragraph"} == {
        "a": ("A",), "b": ("A", "B"), "c": ("A", "B", "C"), "d": ("A", "D")}


def test_ignore_patterns_remove_text_and_empty_lines() -> None:
    text = canonical_text("<p>Keep</p><p>Last updated 2026-11-24</p><ul><li>Build 1234</li></ul>",
                          ignore=[re.compile(r"(?m)^Last updated .*$"), re.compile(r"Build \d+")])
    assert text == "Keep"
    assert apply_ignore("a\nb", []) == "a\nb"


VISIBLE: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "visible_text.yaml").read_text())


@pytest.mark.parametrize("case", VISIBLE, ids=[c["name"] for c in VISIBLE])
def test_visible_text(case: dict[str, Any]) -> None:
    assert canonical_text(case["html"]) == case["text"]


@pytest.mark.parametrize("levels", [300, 2_500, 50_000])
def test_deep_nesting_keeps_the_whole_document(levels: int) -> None:
    """libxml2 stops at 256 levels (2,048 with huge_tree) and drops the rest of the document; the walk
    reads deep subtrees without recursion, and past the parser's limit the text is read from tokens."""
    html = "<p>a</p>" + "<div><p>x</p>" * levels + "deep<script>hidden</script>" + "</div>" * levels + "<p>b</p>"
    text = canonical_text(html)
    assert text.startswith("a\nx\n") and text.endswith("\nx\ndeep\nb")
    assert text.count("x") == levels and "hidden" not in text


@pytest.mark.parametrize("node", ["<!-- a comment -->", "<?pi data?>"])
def test_a_parsed_tree_with_a_comment_past_the_recursion_budget_is_read(node: str) -> None:
    """A tree parsed by the caller keeps its comments (lxml.html's default): one among the children that
    the walk reads flat is skipped, its tail kept, like anywhere else."""
    html = "<div>" * 210 + f"<p>before</p>{node}after" + "</div>" * 210     # lxml.html keeps 256 levels
    parsed = lxml.html.fragment_fromstring(html)
    assert canonical_text(parsed) == canonical_text(html) == "before\nafter"
    nested = "<div>" * 210 + f"<span>in {node}a span</span>" + "</div>" * 210
    assert canonical_text(lxml.html.fragment_fromstring(nested)) == "in a span"
    pre = f"<pre>one {node}two\n<b>three {node}four</b></pre>"
    assert canonical_text(lxml.html.fragment_fromstring(pre)) == canonical_text(pre) == "```\none two\nthree four\n```"


def test_deeply_nested_preformatted_text_is_kept() -> None:
    html = "<pre>top\n" + "<span>" * 1500 + "inner" + "</span>" * 1500 + "\nbottom</pre>"
    assert canonical_text(html) == "```\ntop\ninner\nbottom\n```"


def test_the_entry_point_takes_text_or_a_parsed_element() -> None:
    root = lxml.html.fragment_fromstring("<h2>Part</h2><p>Body.</p>", create_parent="div")
    assert html_blocks(root) == html_blocks("<h2>Part</h2><p>Body.</p>")
    assert canonical_text(root) == "## Part\nBody."
