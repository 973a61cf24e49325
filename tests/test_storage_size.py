"""History that stays small: the replay corpus on disk, unchanged polls, dedup across feeds, exact reads.

Definitions used below (issue 9, "Must show" 1 and 2):

* **texts** = the sum, over the *distinct* canonical texts of the 60-step corpus, of the size of each text
  compressed alone with zstd level 3. The texts are computed here from the corpus files with feedwatch's
  own parse + normalise stages, independently of what the database stores.
* **database** = the growth of the SQLite file from the freshly created, empty schema to the end of the
  replay, each size taken after ``PRAGMA wal_checkpoint(TRUNCATE)`` (so the WAL is folded into the file;
  no VACUUM). The empty schema (one page per table and index, about 60 KiB) is a fixed cost that does not
  depend on the data; the whole file size is printed as well.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import zstandard
from sqlalchemy import func, select

from monitor import config
from monitor.cycle import poll_due
from monitor.models import FetchResult, PollStatus, Validators
from monitor.poll import process_body
from storage import blobs
from storage.schema import Blob, Change, Delivery, Document, Feed, Version
from storage.store import Store
from tests.helpers import FeedServer, corpus_steps, sqlite_file_size, write_config

BOUND = 1.5


def corpus_texts() -> set[str]:
    """The distinct canonical texts of the corpus, by feedwatch's parse + normalise stages."""
    feed = config.FeedSettings(name="k8s", url="file:///corpus")
    texts: set[str] = set()
    for step in corpus_steps():
        fetched = FetchResult(url=step.as_uri(), status=200, body=step.read_bytes(), content_type="application/rss+xml",
                              validators=Validators())
        texts.update(item.text for item in process_body(feed, fetched))
    return texts


def replay(tmp_path: Path, database: str, steps: list[Path], feeds: int = 1) -> Store:
    """Poll `steps` in turn through the library, `feeds` feeds reading the same file."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "feed.xml"
    lines = [f"database: {database}", "feeds:"] + [f"  - {{name: f{i}, url: '{path}'}}" for i in range(feeds)]
    settings = config.load(write_config(tmp_path / "feedwatch.yaml", "\n".join(lines) + "\n"))
    store = Store.open(settings.database_url)
    for step in steps:
        shutil.copy(step, path)
        outcomes = asyncio.run(poll_due(store, settings, force=True))
        assert all(o.status is PollStatus.OK for o in outcomes), outcomes
    return store


def test_corpus_takes_at_most_one_and_a_half_times_its_compressed_distinct_texts(tmp_path: Path) -> None:
    texts = corpus_texts()
    compressor = zstandard.ZstdCompressor(level=3)
    texts_size = sum(len(compressor.compress(t.encode())) for t in texts)
    db = tmp_path / "feedwatch.db"
    Store.open(f"sqlite:///{db}").close()
    schema = sqlite_file_size(db)
    store = replay(tmp_path, f"sqlite:///{db}", corpus_steps())
    with store.engine.connect() as conn:
        versions = conn.execute(select(func.count()).select_from(Version)).scalar_one()
        stored_texts = {blobs.get_text(conn, h) for h in conn.execute(select(Version.c.text_hash)).scalars()}
    store.close()
    total = sqlite_file_size(db)
    print(f"\ncorpus: {len(texts)} distinct canonical texts, {versions} versions")
    print(f"texts, each zstd-3 alone:       {texts_size:>9,} B")
    print(f"database growth (file - schema): {total - schema:>9,} B = {(total - schema) / texts_size:.2f} x texts"
          f"  ({(total - schema) / versions:,.0f} B per version)")
    print(f"database file (schema {schema:,} B): {total:>9,} B = {total / texts_size:.2f} x texts")
    assert stored_texts == texts                    # every version reads back exactly, nothing more is stored
    assert total - schema <= BOUND * texts_size


def test_every_stored_blob_reads_back_in_at_most_two_decompressions(tmp_path: Path, database_url: str) -> None:
    store = replay(tmp_path, database_url, corpus_steps()[:30])
    with store.engine.connect() as conn:
        rows = conn.execute(select(Blob.c.hash, Blob.c.codec, Blob.c.base)).all()
        codecs = {r.hash: r.codec for r in rows}
        for r in rows:
            assert blobs.digest(blobs.get(conn, r.hash)) == r.hash       # content-addressed, exact
            if r.codec == "zstd-dict":
                assert codecs[r.base] in ("zstd", "none")              # the dictionary is a keyframe
    store.close()
    assert "zstd-dict" in codecs.values()


def test_identical_content_is_stored_once_across_feeds(tmp_path: Path, database_url: str) -> None:
    def sizes(store: Store) -> tuple[int, int, int]:
        with store.engine.connect() as conn:
            result = (conn.execute(select(func.count()).select_from(Version)).scalar_one(),
                      conn.execute(select(func.count()).select_from(Blob)).scalar_one(),
                      conn.execute(select(func.sum(func.length(Blob.c.data)))).scalar_one())
        store.close()
        return result

    versions, blob_count, blob_bytes = sizes(replay(tmp_path / "one", f"sqlite:///{tmp_path / 'one.db'}",
                                                    corpus_steps()[:12]))
    assert sizes(replay(tmp_path / "three", database_url, corpus_steps()[:12], feeds=3)) == (
        3 * versions, blob_count, blob_bytes)


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (Blob, Document, Version, Change, Delivery)}


@pytest.mark.slow
def test_a_thousand_unchanged_polls_grow_the_database_by_less_than_one_percent(
        tmp_path: Path, server: FeedServer) -> None:
    """Two feeds, polled 1,001 times each: one answers 304 (ETag), one is a file that never changes."""
    step = corpus_steps()[-1]
    url = server.set("/community/index.xml", step.read_bytes())
    shutil.copy(step, tmp_path / "feed.xml")
    db = tmp_path / "feedwatch.db"
    settings = config.load(write_config(tmp_path / "feedwatch.yaml", f"""
database: sqlite:///{db}
feeds:
  - {{name: http, url: '{url}'}}
  - {{name: file, url: '{tmp_path / "feed.xml"}'}}
"""))
    store = Store.open(settings.database_url)
    assert {o.status for o in asyncio.run(poll_due(store, settings, force=True))} == {PollStatus.OK}
    first = sqlite_file_size(db)
    rows = counts(store)

    async def poll_a_thousand_times() -> set[tuple[str, PollStatus]]:
        seen = set()
        for _ in range(1000):
            seen.update((o.name, o.status) for o in await poll_due(store, settings, force=True))
        return seen

    assert asyncio.run(poll_a_thousand_times()) == {("http", PollStatus.NOT_MODIFIED), ("file", PollStatus.UNCHANGED)}
    assert counts(store) == rows                    # no row added anywhere: only the feed rows changed
    with store.engine.connect() as conn:
        assert set(conn.execute(select(Feed.c.polls)).scalars()) == {1001}
    wal = db.with_name(db.name + "-wal")
    wal_size = wal.stat().st_size if wal.exists() else 0   # recycled, not grown, past 1,000 pages
    store.close()
    after = sqlite_file_size(db)
    print(f"\nafter the first poll: {first:,} B; after 1,000 more polls of each feed: {after:,} B "
          f"(+{after - first:,} B, {100 * (after - first) / first:.2f}%); WAL before the checkpoint: {wal_size:,} B")
    assert server.count("/community/index.xml", status=304) == 1000
    assert after - first < 0.01 * first
