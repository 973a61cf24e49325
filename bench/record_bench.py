"""Recording benchmark: CPU seconds per 1,000 documents that Store.record_polls spends on a cold batch.

A cold cycle's first poll of each feed stores 20 new documents: a raw-item blob and a canonical-text blob
each, a document row, a version and a change record (plus outbox rows when the feed notifies on its
baseline). This times exactly that write, apart from fetching, parsing and normalising: the farm's feeds
(bench/farm.py content, 3-11 KB pages of real community text) are parsed and normalised once, up front,
into the poll records the cycle would build; then each repeat claims the feeds in a fresh database and
records them through ``Store.record_polls`` in batches of 32 (monitor.poll.WRITE_BATCH), timed with
``time.process_time`` (SQLite runs in this process, so its work is counted too).

Each ``--repo`` is measured in its own process with that checkout first on ``sys.path`` (so an older
revision, checked out with ``git worktree add /tmp/old REV``, runs its own storage code against the same
farm), and each gets one row:

    .venv/bin/python bench/record_bench.py [--feeds 200] [--repeat 5] [--repo /tmp/old --repo .]
    .venv/bin/python bench/record_bench.py --database postgresql+psycopg://user@127.0.0.1/test   # empties it

Columns: ``docs`` recorded per repeat; ``CPU s / 1000 docs`` the median (and the best) of the repeats;
``blobs`` how many blobs were stored and their total stored size, the same for every revision that
keeps the codec choices.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = Path(os.environ.get("RECORD_BENCH_REPO", HERE.parent)).resolve()
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(HERE))

from tables import print_markdown_table  # noqa: E402

BATCH = 32           # monitor.poll.WRITE_BATCH: polls committed together
OWNER = "bench:1"


def cold_records(feeds: int, items: int, ids: dict[str, int], settings: Any) -> list[Any]:
    """The poll records of every farm feed's first poll, as monitor.poll builds them."""
    from farm import FarmContent

    from monitor import compare, identity
    from monitor.models import DocumentUpdate, FetchResult, PollRecord, PollStatus, Validators, utcnow
    from monitor.poll import process_body

    content = FarmContent(feeds, items)
    content.started = 1_780_000_000.0      # the items' pubDate: the same bytes in every run
    records = []
    for n in range(feeds):
        feed = settings.feed(f"f{n}")
        body, etag, modified = content.body(n)
        fetched = FetchResult(url=feed.url, status=200, body=body, content_type="application/rss+xml",
                              validators=Validators(etag, modified))
        decisions = compare.compare(identity.match(process_body(feed, fetched), []), [],
                                    removal_grace=feed.removal_grace)
        records.append(PollRecord(
            feed_id=ids[feed.name], feed=feed.name, owner=OWNER, now=utcnow(), status=PollStatus.OK,
            next_due_at=utcnow(), validators=fetched.validators, body_hash=None, settings_hash=feed.settings_hash,
            updates=tuple(DocumentUpdate(d) for d in decisions), baseline=not feed.notify_baseline,
            notify=feed.notify))
    return records


def config_text(database: str, feeds: int, notify: bool) -> str:
    lines = [f"database: {database}"]
    if notify:       # every change of the first poll gets an outbox row
        lines += ["targets: {log: {urls: ['json://127.0.0.1:9/']}}", "defaults: {notify: [log], notify_baseline: true}"]
    lines += ["feeds:"] + [f"  - {{name: f{n}, url: 'http://farm.invalid/feed/{n}.xml'}}" for n in range(feeds)]
    return "\n".join(lines) + "\n"


def fresh_store(url: str, work: Path) -> Any:
    from storage.store import Store

    if url.startswith("postgresql"):
        from tests.helpers import empty_postgres

        empty_postgres(url)
        return Store.open(url)
    db = work / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return Store.open(f"sqlite:///{db}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One repo's row: build the records once, then record them `repeat` times into fresh databases."""
    from monitor import config

    with tempfile.TemporaryDirectory(prefix="feedwatch-record-") as tmp:
        work = Path(tmp)
        url = args.database or f"sqlite:///{work / 'bench.db'}"
        path = work / "feedwatch.yaml"
        path.write_text(config_text(url, args.feeds, args.notify))
        settings = config.load(path)
        names = [(f.name, f.url) for f in settings.feeds]
        store = fresh_store(url, work)
        records = cold_records(args.feeds, args.items, store.sync_feeds(names), settings)
        store.close()
        times = []
        for _ in range(args.repeat):
            store = fresh_store(url, work)
            ids = store.sync_feeds(names)
            store.claim_due_feeds(list(ids.values()), OWNER, limit=len(ids), lease=3600)
            started = time.process_time()
            for i in range(0, len(records), BATCH):
                written = store.record_polls(records[i:i + BATCH])
                assert all(w is not None for w in written), "a lease was lost"
            times.append(time.process_time() - started)
            blobs = blob_totals(store)
            store.close()
    docs = sum(len(r.updates) for r in records)
    return {"repo": str(REPO), "docs": docs, "times": times, "blobs": blobs}


def blob_totals(store: Any) -> list[int]:
    from sqlalchemy import func, select

    from storage.schema import Blob, Delivery

    with store.engine.connect() as conn:
        count, size = conn.execute(select(func.count(), func.sum(func.length(Blob.c.data)))).one()
        outbox = conn.execute(select(func.count()).select_from(Delivery)).scalar_one()
    return [int(count), int(size), int(outbox)]


def run_repo(repo: str, argv: list[str]) -> dict[str, Any]:
    env = {**os.environ, "RECORD_BENCH_REPO": str(Path(repo).resolve())}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", *argv], env=env,
                         check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("repo", "docs", "CPU s / 1000 docs (median)", "best", "blobs", "blob bytes", "outbox rows")
    table = [head] + [(r["repo"], str(r["docs"]), f"{1000 * statistics.median(r['times']) / r['docs']:.3f}",
                       f"{1000 * min(r['times']) / r['docs']:.3f}", f"{r['blobs'][0]:,}", f"{r['blobs'][1]:,}",
                       f"{r['blobs'][2]:,}")
                      for r in rows]
    print_markdown_table(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--notify", action="store_true", help="notify on the baseline: one outbox row per change")
    parser.add_argument("--database", help="a PostgreSQL URL to measure there (its tables are dropped)")
    parser.add_argument("--repo", action="append", help="a checkout to measure (default: this one)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return
    argv = [f"--feeds={args.feeds}", f"--items={args.items}", f"--repeat={args.repeat}"]
    argv += ["--notify"] * args.notify + ([f"--database={args.database}"] if args.database else [])
    print_table([run_repo(repo, argv) for repo in args.repo or [str(REPO)]])


if __name__ == "__main__":
    main()
