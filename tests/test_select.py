"""The part of a page that is the document (monitor.select), on real site structures.

tests/fixtures/pages holds whole pages as Hugo/Docsy, GitHub, WordPress, MkDocs-Material, Sphinx/RTD and a
hand-written site render them, each with its gold document text and a variant where only the page chrome
changed (see the README there). Without `select`, feedwatch's default must give exactly the gold text and
the same text for both variants; `select` and `exclude` must do what they say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.normalize import canonical_text
from monitor.select import parse_html, select
from tests.helpers import FIXTURES

PAGES = FIXTURES / "pages"
NAMES = sorted(p.name.removesuffix(".expected.txt") for p in PAGES.glob("*.expected.txt"))


def document(path: Path, **kw: tuple[str, ...]) -> str:
    root = parse_html(path.read_bytes(), "text/html; charset=utf-8")
    assert root is not None
    return canonical_text(select(root, **kw).html)


def test_the_fixture_pages_are_there() -> None:
    assert len(NAMES) >= 9, f"page fixtures missing in {PAGES}"


@pytest.mark.parametrize("name", NAMES)
def test_default_selection_is_the_document(name: str) -> None:
    expected = (PAGES / f"{name}.expected.txt").read_text(encoding="utf-8").rstrip("\n")
    assert document(PAGES / f"{name}.html") == expected


@pytest.mark.parametrize("name", NAMES)
def test_page_chrome_that_changes_is_no_change(name: str) -> None:
    assert document(PAGES / f"{name}.noise.html") == document(PAGES / f"{name}.html")


def test_select_and_exclude_pick_and_drop() -> None:
    page = PAGES / "docsy-code-of-conduct.html"
    whole = document(page, select=("body",))
    assert "Was this page helpful?" in whole and "Last modified" in whole      # select overrides the default
    chosen = document(page, select=("xpath:(//h2)[1]",))
    assert chosen.count("\n") == 0 and chosen.startswith("## ")
    without = document(page, exclude=("h2",))
    assert not any(line.startswith("## ") for line in without.split("\n")) and "### " in without


def test_headings_permalinks_and_hidden_parts() -> None:
    html = ("<html><body><main><h2>Scope <a class='headerlink' href='#scope'>¶</a></h2><p>Text.</p>"
            "<p hidden>secret</p><p style='display: none'>gone</p><div aria-hidden='true'>icon</div>"
            "<p>See <a href='#other'>the other section</a>.</p></main></body></html>")
    root = parse_html(html.encode(), "text/html")
    assert root is not None
    assert canonical_text(select(root).html) == "## Scope\nText.\nSee the other section."


@pytest.mark.parametrize(("body", "content_type"), [
    ("<p>Café — naïve</p>".encode(), "text/html"),                                  # UTF-8, no charset anywhere
    ("<meta charset='iso-8859-1'><p>Café — naïve</p>".replace("—", "-").encode("latin-1"), "text/html"),
    ("<p>Café — naïve</p>".encode("cp1252"), "text/html; charset=windows-1252"),
])
def test_page_charset_from_header_meta_or_utf8(body: bytes, content_type: str) -> None:
    root = parse_html(body, content_type)
    assert root is not None
    assert "Café" in canonical_text(select(root).html) and "naïve" in canonical_text(select(root).html)
