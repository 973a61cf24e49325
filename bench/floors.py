"""The floors a feed monitor cannot beat: raw fetching, and fetching plus feedparser with its defaults.

Runs one cycle over the farm's feeds and exits; bench/cycle.py runs it under /usr/bin/time. Conditional
requests (ETag/Last-Modified) are sent on warm cycles from a validators file, as a monitor would.

    python floors.py MODE URLS_FILE STATE_FILE
    MODE: aiohttp | httpx4 | httpx50 | httpx-feedparser
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path


def load_state(path: Path) -> dict[str, dict[str, str]]:
    return json.loads(path.read_text()) if path.exists() else {}


def conditional(state: dict[str, dict[str, str]], url: str) -> dict[str, str]:
    v = state.get(url, {})
    headers = {}
    if v.get("etag"):
        headers["If-None-Match"] = v["etag"]
    if v.get("last_modified"):
        headers["If-Modified-Since"] = v["last_modified"]
    return headers


async def with_aiohttp(urls: list[str], state: dict[str, dict[str, str]]) -> dict[str, bytes | None]:
    import aiohttp

    sem = asyncio.Semaphore(50)
    out: dict[str, bytes | None] = {}
    async with aiohttp.ClientSession() as session:
        async def one(url: str) -> None:
            async with sem, session.get(url, headers=conditional(state, url)) as r:
                out[url] = None if r.status == 304 else await r.read()
                state[url] = {"etag": r.headers.get("ETag", ""), "last_modified": r.headers.get("Last-Modified", "")}
        await asyncio.gather(*(one(u) for u in urls))
    return out


async def with_httpx(urls: list[str], state: dict[str, dict[str, str]], in_flight: int) -> dict[str, bytes | None]:
    import httpx

    sem = asyncio.Semaphore(in_flight)
    out: dict[str, bytes | None] = {}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=in_flight)) as client:
        async def one(url: str) -> None:
            async with sem:
                r = await client.get(url, headers=conditional(state, url))
                out[url] = None if r.status_code == 304 else r.content
                state[url] = {"etag": r.headers.get("ETag", ""), "last_modified": r.headers.get("Last-Modified", "")}
        await asyncio.gather(*(one(u) for u in urls))
    return out


def main() -> int:
    mode, urls_file, state_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    urls = urls_file.read_text().split()
    state = load_state(state_file)
    if mode == "aiohttp":
        bodies = asyncio.run(with_aiohttp(urls, state))
    elif mode in ("httpx4", "httpx-feedparser"):
        bodies = asyncio.run(with_httpx(urls, state, 4))
    elif mode == "httpx50":
        bodies = asyncio.run(with_httpx(urls, state, 50))
    else:
        raise SystemExit(f"unknown mode {mode}")
    if mode == "httpx-feedparser":
        import feedparser

        for body in bodies.values():
            if body is not None:
                feedparser.parse(io.BytesIO(body))      # the library's defaults: sanitising, URI resolution
    state_file.write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
