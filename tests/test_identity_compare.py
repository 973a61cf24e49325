"""identity and compare: keys (tests/cases/identity.yaml), guid changes, grace, reverts, re-adds."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.compare import compare
from monitor.identity import assign_keys, match
from monitor.models import ChangeKind, Item, KnownDocument
from monitor.normalize import state_hash

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "identity.yaml").read_text())


def item(guid: str | None = None, link: str | None = None, title: str = "t", text: str = "x") -> Item:
    th = hashlib.sha256(text.encode()).digest()
    return Item(key="", guid=guid, link=link, title=title, text=text, raw=b"{}", text_hash=th,
                state_hash=state_hash(title, link, th))


def known(doc_id: int, it: Item, *, versions: int = 1, absent: int = 0, removed: bool = False,
          history: tuple[Item, ...] = ()) -> KnownDocument:
    older = tuple((versions - 1 - i, h.state_hash) for i, h in enumerate(history))
    states = ((versions, it.state_hash), *older)
    return KnownDocument(id=doc_id, key=it.key, guid=it.guid, link=it.link, latest_version=versions,
                         state_hash=it.state_hash, recent_states=states, absent_polls=absent, removed=removed,
                         title=it.title, text_hash=it.text_hash)


KEY_CASES = [c for c in CASES if "keys" in c]
MATCH_CASES = [c for c in CASES if "pairs" in c]


@pytest.mark.parametrize("case", KEY_CASES, ids=[c["name"] for c in KEY_CASES])
def test_identity_keys(case: dict[str, Any]) -> None:
    keys = [i.key for i in assign_keys([item(**spec) for spec in case["items"]])]
    assert [k if not k.startswith("hash:") else "hash" for k in keys] == case["keys"]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("case", MATCH_CASES, ids=[c["name"] for c in MATCH_CASES])
def test_identity_matching(case: dict[str, Any]) -> None:
    docs = [known(n, it) for n, it in enumerate(assign_keys([item(**spec) for spec in case["known"]]), start=1)]
    items = assign_keys([item(**spec) for spec in case["items"]])
    pairs = match(items, docs)
    assert [doc.id if doc else None for _, doc in pairs] == case["pairs"]
    for decision in compare(pairs, docs, removal_grace=3):
        if decision.document_id is not None and decision.item is not None:
            paired = next(d for _, d in pairs if d is not None and d.id == decision.document_id)
            same = decision.item.state_hash == paired.state_hash
            assert decision.kind is (None if same else ChangeKind.CHANGED)    # a rename is silent


def test_guid_change_with_same_link_is_the_same_document() -> None:
    old = assign_keys([item(guid="old-guid", link="https://e.org/p")])[0]
    new = assign_keys([item(guid="new-guid", link="https://e.org/p")])[0]
    doc = known(7, old)
    [(matched_item, matched_doc)] = match([new], [doc])
    assert matched_doc is doc
    [decision] = compare([(matched_item, matched_doc)], [doc], removal_grace=3)
    assert decision.kind is None and decision.document_id == 7 and not decision.new_version   # recorded, silent


def test_removal_only_after_the_grace_period_and_reappearance_is_silent() -> None:
    a, b = assign_keys([item(guid="a"), item(guid="b")])
    doc_b = known(2, b)
    decisions = compare(match([a], [known(1, a), doc_b]), [known(1, a), doc_b], removal_grace=3)
    assert [(d.kind, d.absent_polls) for d in decisions] == [(None, 1)]
    absent_twice = known(2, b, absent=2)
    [removed] = compare(match([a], [known(1, a), absent_twice]), [known(1, a), absent_twice], removal_grace=3)
    assert removed.kind is ChangeKind.REMOVED and removed.absent_polls == 3
    back = known(2, b, absent=2)
    [returned] = compare(match([a, b], [known(1, a), back]), [known(1, a), back], removal_grace=3)
    assert returned.kind is None and returned.item is not None and not returned.new_version


def test_a_removed_document_that_returns_continues_its_history() -> None:
    [b] = assign_keys([item(guid="b")])
    gone = known(2, b, removed=True)
    [d] = compare(match([b], [gone]), [gone], removal_grace=3)
    assert d.kind is ChangeKind.ADDED and d.document_id == 2 and d.new_version   # same document, next version


def test_returning_to_a_recent_version_is_a_revert() -> None:
    v1, v2 = assign_keys([item(guid="a", text="one")])[0], assign_keys([item(guid="a", text="two")])[0]
    doc = known(1, v2, versions=2, history=(v1,))
    [d] = compare(match([v1], [doc]), [doc], removal_grace=3)
    assert d.kind is ChangeKind.CHANGED and d.revert_of == 1 and d.new_version


def test_title_and_link_changes_are_changes() -> None:
    before = assign_keys([item(guid="a", title="Old", link="https://e.org/1")])[0]
    for after in (item(guid="a", title="New", link="https://e.org/1"), item(guid="a", title="Old", link="https://e.org/2")):
        doc = known(1, before)
        [d] = compare(match(assign_keys([after]), [doc]), [doc], removal_grace=3)
        assert d.kind is ChangeKind.CHANGED
