"""Storage benchmark: bytes on disk per recorded version, against the compressed size of the texts.

Two workloads, each polled through the real pipeline (monitor.cycle.poll_due) into a fresh SQLite file:

* ``corpus``: the 60-step Kubernetes community replay (tests/fixtures/corpus/k8s-community, or
  $FEEDWATCH_CORPUS/k8s-community), one poll per step.
* ``farm``: a synthetic feed farm of N feeds x K items, polled R rounds; each round a fraction of the
  items is edited (a word fixed, a sentence added, a paragraph dropped or a list item added). Texts are
  built from the corpus's own words, so they compress like real prose.

Columns: ``versions`` recorded; ``texts zstd-3`` = the sum of each distinct canonical text compressed
alone with zstd level 3 (the yardstick of issue 9); ``file`` = the SQLite file after a WAL checkpoint;
``schema`` = the same file freshly created, before any data (a fixed cost, whatever the data);
``growth`` = file - schema; ``B/version`` = growth / versions; ``payload`` = the bytes of all records
and index entries (dbstat), i.e. without B-tree page slack. Run:

    .venv/bin/python bench/storage_bench.py [--feeds 20] [--items 10] [--rounds 30] [--change 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import os
import random
import re
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tables import print_markdown_table  # noqa: E402

from monitor import config  # noqa: E402
from monitor.cycle import poll_due  # noqa: E402
from storage.store import Store  # noqa: E402
from tests.helpers import sqlite_file_size  # noqa: E402

CORPUS = Path(os.environ.get("FEEDWATCH_CORPUS", REPO / "tests" / "fixtures" / "corpus"))


@dataclass
class Row:
    workload: str
    versions: int
    texts: int
    file: int
    schema: int
    payload: int

    @property
    def growth(self) -> int:
        return self.file - self.schema


def measure(name: str, work: Path, polls: Callable[[Path], list[Path]]) -> Row:
    """Create a database, run `polls` (which writes feed files and returns them), measure."""
    db = work / "feedwatch.db"
    feeds = polls(work)
    lines = [f"database: sqlite:///{db}", "feeds:"] + [f"  - {{name: f{i}, url: '{p}'}}" for i, p in enumerate(feeds)]
    (work / "feedwatch.yaml").write_text("\n".join(lines) + "\n")
    settings = config.load(work / "feedwatch.yaml")
    store = Store.open(settings.database_url)
    schema = sqlite_file_size(db)
    for _ in _rounds(work):
        asyncio.run(poll_due(store, settings, force=True))
    store.close()
    size = sqlite_file_size(db)
    con = sqlite3.connect(db)
    try:
        versions = con.execute("SELECT count(*) FROM versions").fetchone()[0]
        payload = con.execute("SELECT sum(payload) FROM dbstat").fetchone()[0]
    finally:
        con.close()
    return Row(name, versions, distinct_texts_zstd3(settings.database_url), size, schema, payload)


def distinct_texts_zstd3(url: str) -> int:
    """Sum over distinct canonical texts of len(zstd-3(text)), read back through the store."""
    from sqlalchemy import select

    from storage import blobs
    from storage.schema import Version

    store = Store.open(url, readonly=True)
    compressor = zstandard.ZstdCompressor(level=3)
    try:
        with store.engine.connect() as conn:
            hashes = set(conn.execute(select(Version.c.text_hash)).scalars())
            return sum(len(compressor.compress(blobs.get(conn, h))) for h in hashes)
    finally:
        store.close()


# ------------------------------------------------------------------------------------------ workloads
# A workload writes its round files under work/rounds/NNN/ and returns the feed paths that polls read;
# _rounds() copies each round into place in turn.


def _rounds(work: Path) -> Iterator[int]:
    for i, directory in enumerate(sorted((work / "rounds").iterdir())):
        for f in directory.iterdir():
            shutil.copy(f, work / "feeds" / f.name)
        yield i


def corpus(work: Path) -> list[Path]:
    steps = sorted((CORPUS / "k8s-community").glob("step_*.xml"))
    (work / "feeds").mkdir(parents=True)
    for i, step in enumerate(steps):
        (work / "rounds" / f"{i:04d}").mkdir(parents=True)
        shutil.copy(step, work / "rounds" / f"{i:04d}" / "k8s.xml")
    return [work / "feeds" / "k8s.xml"]


def vocabulary() -> list[str]:
    text = html.unescape(html.unescape((CORPUS / "seed-feed.xml").read_text(encoding="utf-8")))
    return re.findall(r"[A-Za-z][a-z']{1,14}", re.sub(r"<[^>]+>", " ", text))


class Farm:
    """N feeds x K items, R rounds; each round edits a fraction of the items."""

    def __init__(self, feeds: int, items: int, rounds: int, change: float, seed: int = 9) -> None:
        self.feeds, self.items, self.rounds, self.change = feeds, items, rounds, change
        self.rng = random.Random(seed)
        self.words = vocabulary()

    def sentence(self) -> str:
        words = [self.rng.choice(self.words) for _ in range(self.rng.randint(8, 24))]
        return " ".join(words).capitalize() + "."

    def document(self) -> list[list[str]]:
        """Sections: a heading, then paragraphs (and '- ' list items)."""
        return [[self.sentence()[:40]] + [" ".join(self.sentence() for _ in range(self.rng.randint(1, 4)))
                                          for _ in range(self.rng.randint(2, 5))]
                for _ in range(self.rng.randint(3, 7))]

    def edit(self, doc: list[list[str]]) -> None:
        section = self.rng.choice(doc)
        i = self.rng.randrange(1, len(section)) if len(section) > 1 else 0
        kind = self.rng.random()
        if kind < 0.5:       # fix a word
            words = section[i].split(" ")
            words[self.rng.randrange(len(words))] = self.rng.choice(self.words)
            section[i] = " ".join(words)
        elif kind < 0.75:    # add a sentence
            section[i] += " " + self.sentence()
        elif kind < 0.9:     # add a list item
            section.append("- " + self.sentence())
        elif len(section) > 2:   # drop a paragraph
            del section[i]

    @staticmethod
    def render(doc: list[list[str]]) -> str:
        out = []
        for section in doc:
            out.append(f"<h2>{html.escape(section[0])}</h2>")
            for block in section[1:]:
                tag = ("<ul><li>", "</li></ul>") if block.startswith("- ") else ("<p>", "</p>")
                out.append(f"{tag[0]}{html.escape(block.removeprefix('- '))}{tag[1]}")
        return "\n".join(out)

    def feed(self, n: int, docs: list[list[list[str]]]) -> str:
        items = "".join(
            f"<item><title>Feed {n} item {k}</title><link>https://example.org/{n}/{k}</link>"
            f"<guid>https://example.org/{n}/{k}</guid><description>{html.escape(self.render(d))}</description></item>"
            for k, d in enumerate(docs))
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
                f"<link>https://example.org/{n}</link><description>farm</description>{items}</channel></rss>")

    def __call__(self, work: Path) -> list[Path]:
        (work / "feeds").mkdir(parents=True)
        docs = [[self.document() for _ in range(self.items)] for _ in range(self.feeds)]
        for r in range(self.rounds):
            directory = work / "rounds" / f"{r:04d}"
            directory.mkdir(parents=True)
            for n, feed_docs in enumerate(docs):
                if r:
                    for d in feed_docs:
                        if self.rng.random() < self.change:
                            self.edit(d)
                (directory / f"f{n}.xml").write_text(self.feed(n, feed_docs), encoding="utf-8")
        return [work / "feeds" / f"f{n}.xml" for n in range(self.feeds)]


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--change", type=float, default=0.3, help="share of items edited per round")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    farm = Farm(args.feeds, args.items, args.rounds, args.change)
    rows = []
    for name, workload in (("corpus (60 steps)", corpus),
                           (f"farm {args.feeds}x{args.items}x{args.rounds} @{args.change:.0%}", farm)):
        with tempfile.TemporaryDirectory(prefix="feedwatch-bench-") as tmp:
            rows.append(measure(name, Path(tmp), workload))
    print_table(rows)


def print_table(rows: list[Row]) -> None:
    head = ("workload", "versions", "texts zstd-3", "file", "schema", "growth", "B/version", "growth/texts",
            "payload", "payload/texts")
    table = [head] + [(r.workload, str(r.versions), f"{r.texts:,}", f"{r.file:,}", f"{r.schema:,}",
                       f"{r.growth:,}", f"{r.growth / r.versions:,.0f}", f"{r.growth / r.texts:.2f}",
                       f"{r.payload:,}", f"{r.payload / r.texts:.2f}") for r in rows]
    print_markdown_table(table)


if __name__ == "__main__":
    main()
