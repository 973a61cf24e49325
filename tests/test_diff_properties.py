"""Properties every diff must have, checked on every change of the replay corpus and on random edits.

* Faithful: each line a section diff shows is, on its old side, a block of the old version and, on its
  new side, a block of the new version (context included).
* Complete: every block that appears (or disappears) is in the diff, as a changed or whole line or a move.
* Readable: no change starts or ends inside a word; the summary is one line of at most 200 characters;
  the bounded renderings keep to their bounds.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import render
from monitor.canonical import parse_canonical
from monitor.diff import Version, diff_versions
from monitor.models import DiffOp, DocumentDiff
from tests.helpers import corpus_documents, corpus_steps


@functools.cache
def corpus_changes() -> list[tuple[str, Version, Version]]:
    """(label, old, new) for every change of every document between consecutive corpus steps."""
    out: list[tuple[str, Version, Version]] = []
    previous: dict[str, tuple[str, str]] = {}
    for step in range(len(corpus_steps())):
        current = corpus_documents(step)
        for guid, (title, text) in current.items():
            if guid in previous and previous[guid] != (title, text):
                label = f"{step}-{guid.rstrip('/').rsplit('/', 1)[-1]}"
                out.append((label, Version(*previous[guid][:1], guid, previous[guid][1]), Version(title, guid, text)))
        previous.update(current)
    return out


def sides(ops: tuple[DiffOp, ...], side: str) -> list[str]:
    """The lines of the old ("delete") or new ("insert") side of a section's ops."""
    return "".join(o.text for o in ops if o.op in ("equal", side)).split("\n")


def boundaries(ops: tuple[DiffOp, ...], side: str) -> Iterator[tuple[str, str]]:
    """The characters on each side of every op boundary, on one side of the diff."""
    pieces = [o.text for o in ops if o.op in ("equal", side) and o.text]
    for left, right in itertools.pairwise(pieces):
        yield left[-1], right[0]


def check(diff: DocumentDiff, old: Version, new: Version) -> None:
    old_blocks = Counter(b.text for b in parse_canonical(old.text))
    new_blocks = Counter(b.text for b in parse_canonical(new.text))
    shown_old: set[str] = set()
    shown_new: set[str] = set()
    for section in diff.sections:
        for line in filter(None, sides(section.ops, "delete")):
            assert line in old_blocks, f"{section.path}: {line!r} is not a block of the old version"
            shown_old.add(line)
        for line in filter(None, sides(section.ops, "insert")):
            assert line in new_blocks, f"{section.path}: {line!r} is not a block of the new version"
            shown_new.add(line)
    for m in diff.moves:
        shown_new.add(m.text)
        shown_old.add("".join(o.text for o in m.edits if o.op != "insert") if m.edits else m.text)
        assert m.text in new_blocks
    assert not set(new_blocks - old_blocks) - shown_new, "a new block is missing from the diff"
    assert not set(old_blocks - new_blocks) - shown_old, "a removed block is missing from the diff"
    for ops in [s.ops for s in diff.sections] + [m.edits for m in diff.moves]:
        for side in ("delete", "insert"):
            for left, right in boundaries(ops, side):
                assert not (left.isalnum() and right.isalnum()), f"a change cuts a word: {left!r}|{right!r}"
    assert diff.summary and "\n" not in diff.summary and len(diff.summary) <= 200


def check_renderings(diff: DocumentDiff) -> None:
    assert len(render.render_markdown(diff, max_length=1500)) <= 1500
    assert len(render.render_text(diff, max_chars=1500)) <= 1501          # + the final newline
    html = render.render_html(diff, max_chars=6000)
    assert len(html) <= 6000 and html.endswith("</div>")


@pytest.mark.parametrize("index", range(len(corpus_changes())), ids=[c[0] for c in corpus_changes()])
def test_every_corpus_change_is_faithful_complete_and_readable(index: int) -> None:
    _, old, new = corpus_changes()[index]
    diff = diff_versions(old, new)
    check(diff, old, new)
    check_renderings(diff)
    assert not diff.coarse
    assert diff.summary != "no visible change"


# ------------------------------------------------------------------------------------------- random edits

WORDS = ["community", "conduct", "mentor", "report", "the", "and", "of", "Kubernetes", "v1.4", "events",
         "2019-2024", "maintainers", "respect", "privacy", "committee"]
sentence = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(lambda ws: " ".join(ws).capitalize() + ".")
edit = st.one_of(
    st.tuples(st.just("delete"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), sentence, st.sampled_from(["", "- ", "## "])),
    st.tuples(st.just("reword"), st.floats(0, 1), st.sampled_from(WORDS)),
    st.tuples(st.just("move"), st.floats(0, 1), st.floats(0, 1)),
)


def apply(lines: list[str], e: tuple) -> None:  # type: ignore[type-arg]
    k = min(int(e[1] * len(lines)), len(lines) - 1)
    if e[0] == "delete" and len(lines) > 1:
        del lines[k]
    elif e[0] == "insert":
        lines.insert(k, e[3] + e[2])
    elif e[0] == "reword":
        words = lines[k].split(" ")
        words[len(words) // 2] = e[2]
        lines[k] = " ".join(words)
    elif e[0] == "move":
        lines.insert(min(int(e[2] * len(lines)), len(lines)), lines.pop(k))


@settings(max_examples=80, deadline=None)
@given(document=st.sampled_from(["code-of-conduct", "mentoring", "values"]),
       edits=st.lists(edit, min_size=1, max_size=8))
def test_random_edits_are_faithful_and_complete(document: str, edits: list[tuple]) -> None:  # type: ignore[type-arg]
    [(title, text)] = [v for g, v in corpus_documents(59).items() if g.rstrip("/").endswith(document)]
    lines = text.split("\n")
    for e in edits:
        apply(lines, e)
    old, new = Version(title, None, text), Version(title, None, "\n".join(lines))
    if old.text == new.text:
        return
    diff = diff_versions(old, new)
    check(diff, old, new)
    check_renderings(diff)


def test_a_hunk_too_big_to_align_by_similarity_is_paired_by_a_word_diff() -> None:
    old = "\n".join(["# Doc", *(f"Paragraph {n} says the old thing about topic {n}." for n in range(300))])
    new = "\n".join(["# Doc", *(f"Paragraph {n} says the new thing about topic {n}." for n in range(300))])
    # One hunk of 300 x 300 blocks. What is tested is how it is paired, not how fast: a budget no loaded
    # machine runs out of (the default 1 s ran out once with the load at 4.5 on 2 cores).
    diff = diff_versions(Version("d", None, old), Version("d", None, new), budget=120)
    assert not diff.coarse
    assert diff.summary == "Doc: 300 paragraphs changed, 300 words added, 300 words removed"
    assert diff.inserted == ("new",) * 300 and diff.deleted == ("old",) * 300
    check(diff, Version("d", None, old), Version("d", None, new))
