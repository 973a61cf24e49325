"""The four renderers: feed markup stays inert (lxml, Python-Markdown and a real Chromium check), text
colours only on a terminal, every bounded rendering keeps to its bound and counts what it left out, and a
one-sentence change in a 2 MB document renders as that sentence and little else."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import markdown
import pytest

from monitor import render
from monitor.diff import Version, diff_versions
from monitor.models import DocumentDiff
from tests.conftest import require
from tests.helpers import big_document, corpus_documents

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
LINKS = "[click](javascript:window.__pwned=3) <http://evil.example/> ![x](http://evil.example/p.png)"


def hostile_diff() -> DocumentDiff:
    """Feed text full of markup: in a changed paragraph, a new heading, a moved block, the title, the link."""
    old = Version("Notes <b>bold</b>", "https://example.org/a", "\n".join([
        "# Notes", "## Safety", "Plain paragraph about markup here.", "- Moved item with <i>tags</i> inside",
        "## Other", "Nothing."]))
    new = Version(f"Notes {SCRIPT}", "javascript:window.__pwned=4", "\n".join([
        "# Notes", "## Safety", f"Plain paragraph about {SCRIPT} markup {IMG} here.", f"## Injected {IMG}",
        LINKS, "## Other", "Nothing.", "- Moved item with <i>tags</i> inside"]))
    diff = diff_versions(old, new)
    assert diff.moves and diff.title and diff.link          # the hostile text reaches every part
    return diff


def elements(html: str) -> Iterator[Any]:
    yield from lxml.html.fragment_fromstring(html, create_parent="div").iter()


def test_html_escapes_feed_markup() -> None:
    html = render.render_html(hostile_diff(), title=f"Title {SCRIPT}")
    tags = {el.tag for el in elements(html)}
    assert tags <= {"div", "p", "em", "ins", "del", "br", "span"}, tags
    assert all(set(el.attrib) <= {"style"} for el in elements(html))  # no on* handler, no href, no class
    text = lxml.html.fragment_fromstring(html, create_parent="div").text_content()
    assert SCRIPT in text and IMG in text and "javascript:window.__pwned=4" in text   # shown, as text


def test_html_is_inert_in_a_real_browser() -> None:
    html = render.render_html(hostile_diff(), title=f"Title {SCRIPT}")
    for result in _in_chromium(f"<!doctype html><html><body>{html}</body></html>"):
        assert result["pwned"] is None
        assert result["live"] == 0
        assert SCRIPT in result["text"] and "onerror" in result["text"]


def _in_chromium(page_html: str) -> Iterator[dict[str, Any]]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        require("Chromium", "playwright is not installed")
    executable = os.environ.get("FEEDWATCH_TEST_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        require("Chromium", f"no browser at {executable} (set FEEDWATCH_TEST_CHROMIUM)")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable)
        except Error as err:
            require("Chromium", f"cannot start {executable}: {err}")
        try:
            page = browser.new_page()
            page.set_content(page_html, wait_until="load")
            page.wait_for_timeout(200)     # let an onerror handler run, if one were live
            yield {"pwned": page.evaluate("window.__pwned === undefined ? null : window.__pwned"),
                   "live": page.evaluate("document.querySelectorAll('script, img, a, iframe').length"),
                   "text": page.inner_text("body")}
        finally:
            browser.close()


def test_markdown_is_inert_where_apprise_turns_it_into_html() -> None:
    md = render.render_markdown(hostile_diff(), title=f"Title {SCRIPT}", max_length=None)
    html = markdown.markdown(md)              # what Apprise does with a markdown body for e-mail
    tags = {el.tag for el in elements(html)}
    assert not tags & {"script", "img", "a", "iframe"}, tags
    text = lxml.html.fragment_fromstring(html, create_parent="div").text_content()
    assert SCRIPT in text and IMG in text and "[click](javascript:" in text
    assert "\\" not in text                   # escaping is invisible: no stray backslashes


def test_markdown_escapes_block_syntax_at_a_line_start() -> None:
    assert render.md_escape("# not a heading\n1. not a list\n- nor this") == (
        "\\# not a heading\n1\\. not a list\n\\- nor this")


# ------------------------------------------------------------------------------------------------ text


def coc(step: int) -> tuple[Version, Version]:
    [guid] = [g for g in corpus_documents(step) if g.endswith("/code-of-conduct/")]
    (t0, a), (t1, b) = corpus_documents(step - 1)[guid], corpus_documents(step)[guid]
    return Version(t0, guid, a), Version(t1, guid, b)


def test_text_marks_changes_beyond_colour() -> None:
    diff = diff_versions(*coc(41))
    plain = render.render_text(diff, color=False)
    coloured = render.render_text(diff, color=True)
    assert "[-occuring-]{+occurring+}" in plain and "\x1b[" not in plain
    # Colour is a second channel on a terminal, never the only one (colour-blind readers, copied text).
    assert f"{render.RED}[-occuring-]{render.RESET}{render.GREEN}{{+occurring+}}{render.RESET}" in coloured
    assert "Kubernetes Community Code of Conduct \u203a Reporting" in plain      # the section, as a header


def test_text_trims_long_unchanged_runs_to_context_at_word_boundaries() -> None:
    text = render.render_text(diff_versions(*coc(41)))
    [line] = [line for line in text.splitlines() if "occuring" in line and line.startswith("  ")]
    assert line.strip().startswith("For incidents [-occuring-]")
    assert line.endswith("Committee via\u2026")                                # cut after a word, marked


# ------------------------------------------------------------------------------------------------ bounds


# Corpus step 36's Code of Conduct diff, in full: 9 section groups (Scope, Scope › CNCF Events, Our
# Standards, ...) and 2 move lines (a sentence moved to Scope, the events paragraph moved to Scope › CNCF
# Events): 11 chunks, which a bounded rendering either shows or counts as "N more changes".
COC_36_CHUNKS = 11


def shown_chunks(name: str, text: str, diff: DocumentDiff) -> int:
    """How many section groups and move lines a rendering shows (a cut one included)."""
    labels = {render.path_label(s.path) for s in diff.sections}
    if name == "html":
        paragraphs = [el.text_content() for el in elements(text) if el.tag == "p"]
        return sum(1 for p in paragraphs if p in labels or p[2:].startswith(("Moved", "Re-ordered")))
    lines = text.splitlines()
    if name == "markdown":
        return sum(1 for line in lines if line.startswith(("\u00a7 _", "\u27a1 ", "\u2195 ")))
    return sum(1 for line in lines if line in labels or line.startswith(("Moved", "Re-ordered")))


@pytest.mark.parametrize("limit", [400, 900, 2500])
def test_bounded_renderings_count_what_they_leave_out(limit: int) -> None:
    diff = diff_versions(*coc(36))                     # COC_36_CHUNKS: too much for a chat message
    for name, text in [
        ("text", render.render_text(diff, max_chars=limit, more_hint="see the report")),
        ("markdown", render.render_markdown(diff, max_length=limit, more_hint="see the report")),
        ("html", render.render_html(diff, max_chars=limit * 3, more_hint="see the report")),
    ]:
        assert len(text) <= (limit * 3 if name == "html" else limit + 1), name
        more = re.search(r"\u2026 and (\d+) more changes? \u2014 see the report", text)
        assert more, name
        assert shown_chunks(name, text, diff) + int(more.group(1)) == COC_36_CHUNKS, name
        if name == "markdown":
            assert text.count("**") % 2 == 0, "unbalanced emphasis"
    full = render.render_text(diff)
    assert "more change" not in full and shown_chunks("text", full, diff) == COC_36_CHUNKS


def test_a_first_section_too_big_alone_is_cut_not_dropped() -> None:
    long = " ".join(f"word{n}" for n in range(3000))
    diff = diff_versions(Version("t", None, "# Doc\nShort."), Version("t", None, f"# Doc\nShort.\n{long}"))
    for text in (render.render_markdown(diff, max_length=600), render.render_text(diff, max_chars=600),
                 render.render_html(diff, max_chars=1800)):
        assert "word0 word1" in text and "word2999" not in text and "\u2026" in text
    md = render.render_markdown(diff, max_length=600)
    assert len(md) <= 600 and md.count("**") % 2 == 0


def test_a_sentence_changed_in_2_mb_renders_as_that_sentence_and_little_else() -> None:
    old = big_document(2_000_000)
    lines = old.split("\n")
    k = next(n for n in range(len(lines) // 2, len(lines)) if len(lines[n]) > 200 and ". " in lines[n])
    sentence = "Reports about events are handled by the events team within two days."
    cut = lines[k].index(". ") + 2
    lines[k] = lines[k][:cut] + sentence + " " + lines[k][cut:]
    diff = diff_versions(Version("Doc", None, old), Version("Doc", None, "\n".join(lines)))
    assert len(old) >= 2_000_000 and not diff.coarse
    assert diff.inserted == (sentence,) and diff.deleted == () and len(diff.sections) == 1
    assert diff.summary.endswith(" > Distribution is better than centralization: "
                            "1 paragraph changed, 12 words added")      # the heading alone is in every part
    for text, limit in [(render.render_text(diff), 800), (render.render_markdown(diff, max_length=None), 800),
                        (render.render_html(diff), 2000), (str(render.render_json(diff, document="d",
                                                                              from_version=1, to_version=2)), 2000)]:
        assert sentence in text and len(text.encode()) < limit


def test_markdown_headings_and_insertions_look_different() -> None:
    md = render.render_markdown(diff_versions(*coc(41)), max_length=None)
    page = lxml.html.fragment_fromstring(markdown.markdown(md), create_parent="div")
    inserted = [el.text_content() for el in page.iter("strong")]
    headings = [el.text_content() for el in page.iter("em")]
    assert inserted == ["occurring"]
    assert "Kubernetes Community Code of Conduct \u203a Reporting" in headings      # a heading is not bold
