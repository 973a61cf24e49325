"""Per-feed parse time: feedparser (the reference) against the lxml fast path (monitor.fastparse).

    .venv/bin/python bench/parse_bench.py [--farm-feeds 5] [--items 20] [--repeat 20]

Feeds: the bench farm's RSS 2.0 feeds (bench/farm.py, 20 items of 3-11 KB HTML each, about 140 KB), the
replay corpus's seed feed (tests/fixtures/corpus/seed-feed.xml) and its last step, and the Atom fixture.
Both columns are the whole of ``monitor.parse.parse`` (guards, parser, ParsedItems with their raw JSON),
``fast=False`` for feedparser. CPU time (process_time), median of the repeats; the fast path is also
checked to give the same ParsedFeed, so a row where it declined says so instead of timing feedparser twice.

A second table gives the fast path per item, on one farm feed and on bench/items.py's feed of --big items
(10,000 by default; feedparser is not timed there): the parse, and ``monitor.poll.process_body`` on a warm
poll where every item's raw form is already stored (``stored_item``: no normalisation, the path of a feed
in which one item of many changed).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.farm import FarmContent
from bench.items import Items
from monitor.config import FeedSettings
from monitor.models import FetchResult, ParsedFeed, Validators
from monitor.parse import parse, parse_fast
from monitor.poll import process_body

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def feeds(farm_feeds: int, items: int) -> list[tuple[str, FetchResult]]:
    farm = FarmContent(max(farm_feeds, 1), items)
    rows = [(f"farm feed {i} ({items} items)", _fetched(farm.body(i)[0], "application/rss+xml; charset=utf-8"))
            for i in range(farm_feeds)]
    corpus = FIXTURES / "corpus"
    steps = sorted((corpus / "k8s-community").glob("step_*.xml"))
    rows.append(("k8s seed feed", _fetched((corpus / "seed-feed.xml").read_bytes(), None)))
    rows.append((f"k8s {steps[-1].stem}", _fetched(steps[-1].read_bytes(), None)))
    rows.append(("atom10 fixture", _fetched((FIXTURES / "atom10.xml").read_bytes(), "application/atom+xml")))
    return rows


def _fetched(body: bytes, content_type: str | None) -> FetchResult:
    return FetchResult("http://bench.invalid/feed", 200, body, content_type, Validators())


def median_us(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        call()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--farm-feeds", type=int, default=5)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--big", type=int, default=10_000, help="items in the per-item table's big feed")
    args = parser.parse_args(argv)
    if compare(args) != 0:
        return 1
    per_item(args)
    return 0


def compare(args: argparse.Namespace) -> int:
    """The first table: feedparser against the fast path, per feed."""
    print(f"{'feed':<28} {'KB':>6} {'items':>5} {'feedparser µs':>14} {'fast path µs':>13} {'speed-up':>9}")
    totals = [0.0, 0.0]
    for name, fetched in feeds(args.farm_feeds, args.items):
        reference = parse("bench", fetched, fast=False)
        fast: ParsedFeed | None = parse_fast("bench", fetched)
        slow_us = median_us(lambda f=fetched: parse("bench", f, fast=False), args.repeat)
        size = f"{len(fetched.body) / 1024:6.1f}"
        if fast is None:
            print(f"{name:<28} {size} {len(reference.items):>5} {slow_us:>14.0f} {'declined':>13}")
            continue
        if fast != reference:
            print(f"{name:<28} the fast path disagrees with feedparser", file=sys.stderr)
            return 1
        fast_us = median_us(lambda f=fetched: parse("bench", f), args.repeat)
        totals[0] += slow_us
        totals[1] += fast_us
        print(f"{name:<28} {size} {len(reference.items):>5} {slow_us:>14.0f} {fast_us:>13.0f} "
              f"{slow_us / fast_us:>8.1f}×")
    if totals[1]:
        print(f"{'all read by the fast path':<28} {'':>6} {'':>5} {totals[0]:>14.0f} {totals[1]:>13.0f} "
              f"{totals[0] / totals[1]:>8.1f}×")
    return 0


def per_item(args: argparse.Namespace) -> None:
    """The second table: the fast path's parse and a warm process_body, per item."""
    farm = FarmContent(1, args.items)
    rows = [(f"farm feed 0 ({args.items} items)", _fetched(farm.body(0)[0], "application/rss+xml; charset=utf-8"),
             args.repeat),
            (f"bench/items.py ({args.big:,} items)",
             _fetched(Items(args.big).body(0)[0], "application/rss+xml; charset=utf-8"), 3)]
    print(f"\n{'fast path, per item':<28} {'KB':>6} {'items':>6} {'parse µs':>9} {'warm process_body µs':>21}")
    for name, fetched, repeat in rows:
        feed = FeedSettings(name="bench", url=fetched.url)
        items = process_body(feed, fetched)
        stored = {hashlib.sha256(i.raw).digest(): i.text_hash for i in items}
        parse_us = median_us(lambda f=fetched: parse("bench", f), repeat) / len(items)
        warm_us = median_us(lambda c=feed, f=fetched, s=stored: process_body(c, f, s), repeat) / len(items)
        print(f"{name:<28} {len(fetched.body) / 1024:6.0f} {len(items):>6} {parse_us:>9.1f} {warm_us:>21.1f}")


if __name__ == "__main__":
    sys.exit(main())
