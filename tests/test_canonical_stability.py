"""Canonical text is stable: every feed fixture and a fixed range of tag soup read exactly as they always have.

Canonical text feeds the text and state hashes. One byte of difference after an upgrade (a space kept, a
block split in two, a heading path changed) is a false change for every stored document that has that
shape, reported to every user at once. The hashes in tests/cases/canonical_hashes.yaml were taken with the
normaliser of NORMALIZER_VERSION. A change to canonicalisation that is meant bumps NORMALIZER_VERSION (part
of every feed's settings hash: stored documents are then re-baselined silently, not reported as changed)
and rewrites the table: ``python -m tests.test_canonical_stability``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import NORMALIZER_VERSION
from monitor.models import FetchResult, ParsedItem, Validators
from monitor.normalize import canonical_text, html_blocks, normalize_item
from monitor.parse import parse
from tests.helpers import FIXTURES, corpus_steps
from tests.tag_soup import soup

TABLE = Path(__file__).parent / "cases" / "canonical_hashes.yaml"
BASE = "https://example.org/feed/"
SOUP_CHUNKS = [range(n, n + 100) for n in range(0, 1000, 100)]


def feed_files() -> list[Path]:
    return [*sorted(FIXTURES.glob("*.xml")), corpus_steps()[0].parent.parent / "seed-feed.xml", *corpus_steps()]


def feed_hash(path: Path) -> str:
    """Title, link, canonical text, text hash and blocks of every item, read plainly and with links."""
    feed = parse(path.name, FetchResult(BASE, 200, path.read_bytes(), None, Validators()))
    return _digest(_readings(feed.items))


def soup_hash(seeds: range) -> str:
    return _digest(_readings(ParsedItem(None, None, soup(s + 1), soup(s), b"", title_is_html=True) for s in seeds))


def _readings(items: Any) -> Iterator[list[Any]]:
    for item in items:
        for links in (False, True):
            got = normalize_item(item, links=links, base=BASE)
            blocks = html_blocks(item.content, links=links, base=BASE) if item.content_is_html else []
            yield [got.title, got.link, got.text, got.text_hash.hex(), got.state_hash.hex(),
                   [[b.kind.value, b.text, b.level, list(b.path)] for b in blocks]]


def _digest(records: Iterator[list[Any]]) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def table() -> dict[str, Any]:
    return {"normalizer_version": NORMALIZER_VERSION,
            "feeds": {p.name: feed_hash(p) for p in feed_files()},
            "soup": {f"{r.start}-{r.stop - 1}": soup_hash(r) for r in SOUP_CHUNKS}}


@pytest.fixture(scope="module")
def pinned() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    return data


def test_the_table_is_for_this_normalizer_version(pinned: dict[str, Any]) -> None:
    assert pinned["normalizer_version"] == NORMALIZER_VERSION, \
        "NORMALIZER_VERSION changed: rewrite the table with `python -m tests.test_canonical_stability`"


@pytest.mark.parametrize("path", feed_files(), ids=lambda p: p.name)
def test_every_item_of_a_feed_fixture_reads_as_before(path: Path, pinned: dict[str, Any]) -> None:
    assert feed_hash(path) == pinned["feeds"][path.name], \
        f"{path.name}: canonical text changed (a false change for every stored document like it)"


@pytest.mark.parametrize("seeds", SOUP_CHUNKS, ids=lambda r: f"{r.start}-{r.stop - 1}")
def test_tag_soup_reads_as_before(seeds: range, pinned: dict[str, Any]) -> None:
    assert soup_hash(seeds) == pinned["soup"][f"{seeds.start}-{seeds.stop - 1}"], \
        f"tests.tag_soup.soup({seeds.start}..{seeds.stop - 1}): canonical text changed"


def test_a_body_with_a_lone_surrogate_reads_as_before() -> None:
    """UTF-8 cannot carry a lone surrogate, so such a body is not handed to libxml2 as UTF-8 (the parse
    stops at the surrogate, as it always has)."""
    assert canonical_text("<p>a\ud800b</p><p>c</p>") == "a"
    assert canonical_text("<p>x</p><p>a\udfffb</p>") == "x\na"


if __name__ == "__main__":
    HEADER = "# Written by `python -m tests.test_canonical_stability` (see that file); never edit by hand.\n"
    TABLE.write_text(HEADER + yaml.safe_dump(table(), sort_keys=False), encoding="utf-8")
