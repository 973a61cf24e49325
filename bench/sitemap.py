"""A sitemap of N pages on the local farm: feedwatch's cold and warm cycles beside the raw fetch floor.

The site serves ``/sitemap.xml`` listing N pages; each page is a whole HTML page (navigation, header,
a sidebar, a footer) around an article built from the real Kubernetes community texts (bench/farm.py's
pool), 3-11 KB of article. Pages answer with an ETag and honour If-None-Match. ``POST /_round`` edits one
sentence in 1% of the pages. The site runs in its own process and counts what it served.

    .venv/bin/pip install aiohttp     # the floor's client (not a feedwatch dependency)
    .venv/bin/python bench/sitemap.py [--pages 1000]

Rows: a cold cycle (every page new), a warm cycle with nothing changed (every page must cost a 304 and
no body), a warm cycle after 1% of the pages changed. The floor is aiohttp fetching the same URLs with the
same conditional headers and doing nothing with them (bench/floors.py).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from farm import FarmContent, FarmServer, QuietHandler
from floors import with_aiohttp


def page(content: FarmContent, n: int, edit: int | None) -> bytes:
    article = content.item_html(n, 0)
    if edit:
        article += f"\n<p>Revised in round {edit}: this sentence was edited on the site.</p>"
    return (f"<!DOCTYPE html><html><head><title>Page {n} | Contributor site</title><script>var x=1;</script>"
            "</head><body><header><a href='/'>Site</a></header><nav><ul>"
            + "".join(f"<li><a href='/page/{k}'>Section {k}</a></li>" for k in range(20))
            + f"</ul></nav><main><article>{article}</article><aside><h3>On this page</h3><p>Links</p></aside>"
            "</main><footer>Last modified by the site generator. (c) The Authors</footer></body></html>").encode()


def _serve(pages: int, port: int, ready: Any) -> None:
    content = FarmContent(pages, 1)
    edits: dict[int, int] = {}
    stats = {"bodies": 0, "not_modified": 0}
    cache: dict[int, tuple[bytes, str]] = {}

    def body(n: int) -> tuple[bytes, str]:
        if n not in cache:
            data = page(content, n, edits.get(n))
            cache[n] = (data, '"' + hashlib.sha1(data).hexdigest()[:20] + '"')
        return cache[n]

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/sitemap.xml":
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                urls = "".join(f"<url><loc>{base}/page/{n}</loc></url>" for n in range(pages))
                self._reply(200, ("<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
                                  f"{urls}</urlset>").encode(), {"Content-Type": "application/xml"})
                return
            if self.path == "/_stats":
                self._reply(200, json.dumps(stats).encode(), {})
                return
            m = re.fullmatch(r"/page/(\d+)", self.path)
            if not m or int(m.group(1)) >= pages:
                self._reply(404, b"", {})
                return
            data, etag = body(int(m.group(1)))
            if self.headers.get("If-None-Match") == etag:
                stats["not_modified"] += 1
                self._reply(304, b"", {"ETag": etag})
                return
            stats["bodies"] += 1
            self._reply(200, data, {"ETag": etag, "Content-Type": "text/html; charset=utf-8"})

        def do_POST(self) -> None:
            round_ = max(edits.values(), default=0) + 1
            for n in content.changed_feeds(round_):
                edits[n] = round_
                cache.pop(n, None)
            self._reply(200, b"", {})

    server = FarmServer(("127.0.0.1", port), Handler)
    ready.put(server.server_address[1])
    server.serve_forever()


def stats(base: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base}/_stats", timeout=30) as r:
        data: dict[str, int] = json.loads(r.read())
    return data


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--per-host", type=int, default=2,
                        help="feedwatch's polling.per_host (default 2, as in the default config)")
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    ready: Any = ctx.Queue()
    site = ctx.Process(target=_serve, args=(args.pages, 0, ready), daemon=True)
    site.start()
    base = f"http://127.0.0.1:{ready.get(timeout=30)}"
    feedwatch = str(Path(sys.executable).parent / "feedwatch")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "feedwatch.yaml"
            config.write_text(f"database: sqlite:///{tmp}/fw.db\npolling:\n  per_host: {args.per_host}\n"
                              f"feeds:\n  - name: site\n    kind: sitemap\n    url: {base}/sitemap.xml\n"
                              f"    max_documents: {args.pages}\n")
            run = [feedwatch, "-q", "--config", str(config), "run", "--force"]
            urls = [f"{base}/page/{n}" for n in range(args.pages)]
            state: dict[str, dict[str, str]] = {}
            for label, edit in (("cold", False), ("warm, nothing changed", False), ("warm, 1% changed", True)):
                if edit:
                    urllib.request.urlopen(urllib.request.Request(f"{base}/_round", method="POST"), timeout=30)
                before = stats(base)
                seconds = timed(run)
                after = stats(base)
                started = time.perf_counter()
                asyncio.run(with_aiohttp(urls, state))
                floor = time.perf_counter() - started
                rows.append((label, seconds, floor, after["bodies"] - before["bodies"],
                             after["not_modified"] - before["not_modified"]))
    finally:
        site.terminate()
    print(f"sitemap of {args.pages} pages on 127.0.0.1, feedwatch with polling.per_host {args.per_host} (one run "
          "each; the floor fetches the same pages with aiohttp, 50 in flight, conditionally when warm)\n")
    print("| cycle | feedwatch s | aiohttp floor s | ratio | page bodies downloaded | 304s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, seconds, floor, bodies, not_modified in rows:
        print(f"| {label} | {seconds:.2f} | {floor:.2f} | {seconds / floor:.1f}x | {bodies} | {not_modified} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
