"""normalize: the canonical text, table-tested (tests/cases/normalize.yaml), and its round trip."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
