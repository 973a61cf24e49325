"""A local feed farm for benchmarks: N feeds x K items of realistic HTML on 127.0.0.1.

Each feed is an RSS 2.0 document whose items are pages built from the real Kubernetes community texts
(tests/fixtures/corpus/seed-feed.xml), cut and mixed deterministically per (feed, item), 3-11 KB of HTML each
like the seed's own pages (a 20-item feed is about 140 KB).
The server answers with ETag and Last-Modified and honours If-None-Match / If-Modified-Since (304).
`POST /_round` advances the farm by one round: a deterministic fraction of the feeds (default 1%) get one
item's sentence edited. Run it in its own process so it does not compete with the code being measured
for the GIL:

    python bench/farm.py --feeds 1000 --items 20 --port 8800     # serve until Ctrl-C

or from a benchmark: ``with Farm(1000, 20) as farm: farm.urls(); farm.next_round()``.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import multiprocessing
import re
import sys
import time
import urllib.request
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "corpus"


def _paragraph_pool() -> list[str]:
    """HTML blocks (headings, paragraphs, list items) from the seed feed's pages, whose markup escapes
    ``<`` but not ``>``. Finding none is an error: a placeholder fallback once hid that the
    pattern matched nothing, and every farm item was one short sentence repeated."""
    text = (CORPUS / "seed-feed.xml").read_text(encoding="utf-8")
    blocks = re.findall(r"&lt;(h[1-4]|p|li)(?:\s[^>]*)?(?:>|&gt;)(.*?)&lt;/\1(?:>|&gt;)", text, re.S)
    pool = [f"<{tag}>{html.unescape(body).strip()}</{tag}>" for tag, body in blocks if body.strip()]
    if len(pool) < 50:
        raise SystemExit(f"bench/farm.py: only {len(pool)} HTML blocks found in {CORPUS / 'seed-feed.xml'}")
    return pool


class FarmContent:
    """Deterministic bodies: the same (feed, round) always gives the same bytes."""

    def __init__(self, feeds: int, items: int, fraction: float = 0.01) -> None:
        self.feeds, self.items, self.fraction = feeds, items, fraction
        self.pool = _paragraph_pool()
        self.round = 0
        self.edits: dict[int, dict[int, int]] = {}     # feed -> item -> round of its last edit
        self.cache: dict[int, tuple[bytes, str, str]] = {}
        self.started = time.time()

    def changed_feeds(self, round_: int) -> list[int]:
        count = max(1, round(self.feeds * self.fraction))
        ranked = sorted(range(self.feeds), key=lambda i: hashlib.sha256(f"{round_}:{i}".encode()).digest())
        return sorted(ranked[:count])

    def next_round(self) -> list[int]:
        self.round += 1
        changed = self.changed_feeds(self.round)
        for i in changed:
            item = self.round % self.items
            self.edits.setdefault(i, {})[item] = self.round
            self.cache.pop(i, None)
        return changed

    def item_html(self, feed: int, item: int) -> str:
        h = int(hashlib.sha256(f"{feed}/{item}".encode()).hexdigest(), 16)
        start, count = h % len(self.pool), 25 + h % 75     # 3-11 KB, like the seed feed's pages
        blocks = [self.pool[(start + k) % len(self.pool)] for k in range(count)]
        edit = self.edits.get(feed, {}).get(item)
        if edit:
            blocks.insert(count // 2, f"<p>Revised in round {edit}: this sentence was edited by the farm.</p>")
        return f"<h1>Feed {feed} page {item}</h1>\n" + "\n".join(blocks)

    def body(self, feed: int) -> tuple[bytes, str, str]:
        cached = self.cache.get(feed)
        if cached:
            return cached
        items = "".join(
            f"<item><title>Feed {feed} page {j}</title><link>http://farm.invalid/{feed}/{j}</link>"
            f"<guid>farm-{feed}-{j}</guid><pubDate>{formatdate(self.started)}</pubDate>"
            f"<description>{html.escape(self.item_html(feed, j))}</description></item>\n"
            for j in range(self.items))
        body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Farm feed {feed}'
                f"</title><link>http://farm.invalid/{feed}/</link><description>benchmark</description>{items}"
                "</channel></rss>").encode()
        etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        last_round = max(self.edits.get(feed, {}).values(), default=0)
        modified = formatdate(self.started + last_round, usegmt=True)
        self.cache[feed] = (body, etag, modified)
        return self.cache[feed]


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no Nagle stalls, no access log: the base of the benchmark servers."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True     # headers and body go out as separate writes: no 40 ms stalls

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FarmServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024      # the default backlog (5) drops SYNs when clients open 50 connections


def _serve(feeds: int, items: int, fraction: float, port: int, ready: Any) -> None:
    content = FarmContent(feeds, items, fraction)

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            m = re.fullmatch(r"/feed/(\d+)\.xml", self.path)
            if not m or int(m.group(1)) >= content.feeds:
                self._reply(404, b"not found", {})
                return
            body, etag, modified = content.body(int(m.group(1)))
            if self.headers.get("If-None-Match") == etag or (
                    "If-None-Match" not in self.headers and self.headers.get("If-Modified-Since") == modified):
                self._reply(304, b"", {"ETag": etag, "Last-Modified": modified})
                return
            self._reply(200, body, {"ETag": etag, "Last-Modified": modified,
                                    "Content-Type": "application/rss+xml; charset=utf-8"})

        def do_POST(self) -> None:
            if self.path == "/_round":
                changed = content.next_round()
                self._reply(200, ",".join(map(str, changed)).encode(), {"Content-Type": "text/plain"})
            else:
                self._reply(404, b"", {})

    server = FarmServer(("127.0.0.1", port), Handler)
    ready.put(server.server_address[1])
    server.serve_forever()


class Farm:
    """The farm in a child process. Use as a context manager."""

    def __init__(self, feeds: int, items: int = 20, *, fraction: float = 0.01, port: int = 0) -> None:
        self.feeds, self.items, self.fraction, self.port = feeds, items, fraction, port
        self.process: multiprocessing.Process | None = None

    def __enter__(self) -> Farm:
        ctx = multiprocessing.get_context("spawn")
        ready: Any = ctx.Queue()
        self.process = ctx.Process(target=_serve, args=(self.feeds, self.items, self.fraction, self.port, ready),
                                   daemon=True)
        self.process.start()
        self.port = ready.get(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(5)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def urls(self) -> list[str]:
        return [f"{self.base}/feed/{i}.xml" for i in range(self.feeds)]

    def next_round(self) -> list[int]:
        with urllib.request.urlopen(urllib.request.Request(f"{self.base}/_round", method="POST"), timeout=30) as r:
            data = r.read().decode()
        return [int(x) for x in data.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a local feed farm for benchmarks.")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--fraction", type=float, default=0.01, help="share of feeds edited per round")
    parser.add_argument("--port", type=int, default=8800)
    args = parser.parse_args(argv)
    with Farm(args.feeds, args.items, fraction=args.fraction, port=args.port) as farm:
        print(f"serving {args.feeds} feeds x {args.items} items at {farm.base}/feed/N.xml "
              f"(POST {farm.base}/_round to edit {args.fraction:.0%} of them)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
