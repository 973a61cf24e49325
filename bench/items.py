"""One feed of N items on 127.0.0.1: feedwatch's polls, history, reports and export beside the parse floor.

The site serves ``/feed/K.xml`` (K < --feeds, default one feed): an RSS 2.0 feed of N items, each a short
page (4-9 blocks, about 1 KB of HTML) cut from the real Kubernetes community texts (bench/farm.py's pool).
It answers with ETag and Last-Modified and honours If-None-Match / If-Modified-Since. ``POST /_edit``
edits one sentence of one item of every feed. The site runs in its own process.

    .venv/bin/python bench/items.py [--items 10000] [--feeds 1]

Each step runs the installed ``feedwatch`` CLI as a subprocess under /usr/bin/time (wall, CPU, peak RSS):
a cold ``run`` (every item new), a warm ``run`` with nothing changed (a 304), a warm ``run`` after one item
changed (a full body: every item read, one changed), ``history --json``, ``report`` in every format, and
``export``. The floors fetch the same body and parse it, once with feedparser and once with lxml (the feed
as XML, then every item's HTML), doing nothing else. feedwatch reads at most 10,000 items of a feed
(monitor/parse.py), so ``--feeds 10`` is the way to 100,000 documents.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from email.utils import formatdate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from farm import FarmServer, QuietHandler, _paragraph_pool
from tables import print_markdown_table

REPORT_FORMATS = ("html", "markdown", "atom")     # `feedwatch report --help`


class Items:
    """N items per feed; the same (feed, item, edits) always gives the same bytes."""

    def __init__(self, items: int) -> None:
        self.items = items
        self.pool = _paragraph_pool()
        self.edits = 0
        self.started = time.time()
        self.cache: dict[int, tuple[bytes, str, str]] = {}

    def item_html(self, feed: int, n: int) -> str:
        h = int(hashlib.sha256(f"{feed}/{n}".encode()).hexdigest(), 16)
        start, count = h % len(self.pool), 4 + h % 6
        blocks = [self.pool[(start + k) % len(self.pool)] for k in range(count)]
        if self.edits and n == self.edits % self.items:
            blocks.insert(1, f"<p>Revised in edit {self.edits}: this sentence was changed on the site.</p>")
        return f"<h2>Feed {feed} item {n}</h2>\n" + "\n".join(blocks)

    def body(self, feed: int) -> tuple[bytes, str, str]:
        if feed not in self.cache:
            date = formatdate(self.started)
            items = "".join(
                f"<item><title>Feed {feed} item {n}</title><link>http://items.invalid/{feed}/{n}</link>"
                f"<guid>items-{feed}-{n}</guid><pubDate>{date}</pubDate>"
                f"<description>{html.escape(self.item_html(feed, n))}</description></item>\n"
                for n in range(self.items))
            data = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Items {feed}'
                    f"</title><link>http://items.invalid/{feed}/</link><description>benchmark</description>"
                    f"{items}</channel></rss>").encode()
            etag = '"' + hashlib.sha1(data).hexdigest()[:20] + '"'
            self.cache[feed] = (data, etag, formatdate(self.started + self.edits, usegmt=True))
        return self.cache[feed]


def _serve(items: int, feeds: int, ready: Any) -> None:
    content = Items(items)

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            m = re.fullmatch(r"/feed/(\d+)\.xml", self.path)
            if not m or int(m.group(1)) >= feeds:
                self._reply(404, b"not found", {})
                return
            data, etag, modified = content.body(int(m.group(1)))
            headers = {"ETag": etag, "Last-Modified": modified}
            if self.headers.get("If-None-Match") == etag or (
                    "If-None-Match" not in self.headers and self.headers.get("If-Modified-Since") == modified):
                self._reply(304, b"", headers)
                return
            self._reply(200, data, headers | {"Content-Type": "application/rss+xml; charset=utf-8"})

        def do_POST(self) -> None:
            content.edits += 1
            content.cache.clear()
            for feed in range(feeds):   # made now, not while the next step waits for them
                content.body(feed)
            self._reply(200, b"", {})

    server = FarmServer(("127.0.0.1", 0), Handler)
    for feed in range(feeds):    # every body made before the first step, which should not wait for it
        content.body(feed)
    ready.put(server.server_address[1])
    server.serve_forever()


def floor(url: str, parser: str) -> None:
    """Fetch the feed and parse it, nothing else (run in its own process, under /usr/bin/time)."""
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
    if parser == "feedparser":
        import feedparser

        parsed = feedparser.parse(body)
        assert parsed.entries
        return
    import lxml.etree
    import lxml.html

    root = lxml.etree.fromstring(body, parser=lxml.etree.XMLParser(huge_tree=True))
    for item in root.iter("item"):
        description = item.findtext("description")
        if description:
            lxml.html.fragment_fromstring(description, create_parent="div")


def timed(cmd: list[str], out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one command."""
    stats = out.with_suffix(".time")
    subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(stats), *cmd], check=True,
                   stdout=out.open("wb"))
    wall, user, system, rss = stats.read_text().split()[-4:]
    return float(wall), float(user) + float(system), int(rss) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000, help="items per feed (default 10,000)")
    parser.add_argument("--feeds", type=int, default=1, help="feeds (default 1)")
    parser.add_argument("--floor", nargs=2, metavar=("URL", "PARSER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:
        floor(*args.floor)
        return 0
    ctx = multiprocessing.get_context("spawn")
    ready: Any = ctx.Queue()
    site = ctx.Process(target=_serve, args=(args.items, args.feeds, ready), daemon=True)
    site.start()
    base = f"http://127.0.0.1:{ready.get(timeout=600)}"
    feedwatch = str(Path(sys.executable).parent / "feedwatch")
    rows: list[tuple[str, float, float, float, int]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "feedwatch.yaml"
            config.write_text(f"database: sqlite:///{tmp}/fw.db\nfeeds:\n" + "".join(
                f"  - name: items-{k}\n    url: {base}/feed/{k}.xml\n    max_bytes: 1GiB\n"
                for k in range(args.feeds)))
            fw = [feedwatch, "-q", "--config", str(config)]
            out = Path(tmp) / "out"

            def step(label: str, cmd: list[str]) -> None:
                wall, cpu, rss = timed(cmd, out)
                rows.append((label, wall, cpu, rss, out.stat().st_size))

            url = f"{base}/feed/0.xml"
            step("floor: fetch + feedparser (feed 0)", [sys.executable, __file__, "--floor", url, "feedparser"])
            step("floor: fetch + lxml, every item's HTML (feed 0)", [sys.executable, __file__, "--floor", url, "lxml"])
            step("run, cold (every item new)", [*fw, "run", "--force"])
            step("run, warm, nothing changed (304)", [*fw, "run", "--force"])
            urllib.request.urlopen(urllib.request.Request(f"{base}/_edit", method="POST"), timeout=30).close()
            step("run, warm, one item changed", [*fw, "run", "--force"])
            step("history --json", [*fw, "history", "--json"])
            for fmt in REPORT_FORMATS:
                step(f"report --format {fmt}", [*fw, "report", "--format", fmt])
            step("export", [*fw, "export"])
    finally:
        site.terminate()
    size = len(Items(args.items).body(0)[0])
    print(f"{args.feeds} feed{'s' if args.feeds > 1 else ''} of {args.items:,} items ({size / 2**20:.1f} MiB "
          "each) on 127.0.0.1; one run of each step, under /usr/bin/time\n")
    print_markdown_table([["step", "wall s", "CPU s", "peak RSS MiB", "output MiB"]]
                         + [[label, f"{wall:.2f}", f"{cpu:.2f}", f"{rss:.0f}", f"{written / 2**20:.1f}"]
                            for label, wall, cpu, rss, written in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
