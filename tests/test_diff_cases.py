"""The diff engine, table-driven: every case of tests/cases/diff.yaml (see the comment at its top).

A case gives two versions, either inline (canonical text) or as a document of two consecutive corpus
steps, read through feedwatch's own parser and normaliser, and says what the diff must contain.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import codec
from monitor.diff import TIME_BUDGET, Version, diff_versions
from monitor.models import DocumentDiff
from tests.helpers import corpus_documents

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "diff.yaml").read_text(encoding="utf-8"))
KEYS = {"name", "old", "new", "old_title", "new_title", "old_link", "new_link", "corpus", "sections", "ops",
        "moves", "move_count", "inserted", "deleted", "not_inserted", "not_deleted", "summary", "summary_not",
        "coarse", "title", "budget"}


@functools.cache
def _corpus(step: int) -> dict[str, tuple[str, str]]:
    return corpus_documents(step)


def versions(case: dict[str, Any]) -> tuple[Version, Version]:
    if "corpus" in case:
        step, name = case["corpus"]["step"], case["corpus"]["document"]
        [guid] = [g for g in _corpus(step) if g.rstrip("/").endswith("/" + name)]
        (old_title, old_text), (new_title, new_text) = _corpus(step - 1)[guid], _corpus(step)[guid]
        return Version(old_title, guid, old_text), Version(new_title, guid, new_text)
    title = "Document"
    return (Version(case.get("old_title", title), case.get("old_link"), case["old"].rstrip("\n")),
            Version(case.get("new_title", title), case.get("new_link"), case["new"].rstrip("\n")))


def path(p: list[str]) -> str:
    return " > ".join(p)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_diff_case(case: dict[str, Any]) -> None:
    assert set(case) <= KEYS, f"unknown keys in case {case['name']!r}: {set(case) - KEYS}"
    diff = diff_versions(*versions(case), budget=case.get("budget", TIME_BUDGET))
    out = codec.diff_to_dict(diff)
    shown = json.dumps(out, ensure_ascii=False, indent=1)
    if "sections" in case:
        assert [path(s["path"]) for s in out["sections"]] == case["sections"], shown
    if "ops" in case:
        assert [s["ops"] for s in out["sections"]] == case["ops"], shown
    if "moves" in case:
        moves = [{"text": m["text"], "from": path(m["from"]), "to": path(m["to"])} for m in out["moves"]]
        assert moves == case["moves"], shown
    if "move_count" in case:
        assert len(out["moves"]) == case["move_count"], shown
    check_fragments(case, diff, shown)
    for fragment in case.get("summary", []):
        assert fragment in diff.summary, diff.summary
    for fragment in case.get("summary_not", []):
        assert fragment not in diff.summary, diff.summary
    assert len(diff.summary) <= 200
    assert diff.coarse is case.get("coarse", False)
    if "title" in case:
        assert out.get("title") == case["title"], shown


def check_fragments(case: dict[str, Any], diff: DocumentDiff, shown: str) -> None:
    inserted, deleted = " | ".join(diff.inserted), " | ".join(diff.deleted)
    for fragment in case.get("inserted", []):
        assert fragment in diff.inserted or fragment in inserted, shown
    for fragment in case.get("deleted", []):
        assert fragment in diff.deleted or fragment in deleted, shown
    for word in case.get("not_inserted", []):
        assert word not in inserted, shown
    for word in case.get("not_deleted", []):
        assert word not in deleted, shown
