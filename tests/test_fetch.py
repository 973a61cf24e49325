"""fetch, against a real HTTP server on 127.0.0.1: validators, 304, redirects, caps, deadlines, files."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from monitor import USER_AGENT
from monitor.errors import FetchError
from monitor.fetch import Fetcher
from monitor.models import FetchResult, Validators
from tests.helpers import FeedServer, http_date

LAST_MODIFIED = http_date(1_700_000_000)


def fetch(url: str, validators: Validators | None = None, *, timeout: float = 5, max_bytes: int = 1 << 20,
          **kw: int) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(**kw) as f:
            return await f.fetch("t", url, validators, timeout=timeout, max_bytes=max_bytes)
    return asyncio.run(go())


def test_conditional_get_sends_both_validators_and_304_is_a_result(server: FeedServer) -> None:
    url = server.set("/f", b"<rss/>", last_modified=LAST_MODIFIED)
    first = fetch(url)
    assert first.status == 200 and first.body == b"<rss/>"
    assert first.validators.etag and first.validators.last_modified == LAST_MODIFIED
    second = fetch(url, first.validators)
    assert second.not_modified and second.status == 304 and second.body == b""
    hit = server.hits[-1]
    assert hit.headers["If-None-Match"] == first.validators.etag
    assert hit.headers["If-Modified-Since"] == LAST_MODIFIED             # echoed verbatim
    assert hit.headers["User-Agent"] == USER_AGENT and "feedwatch/" in USER_AGENT


def test_last_modified_alone_is_honoured(server: FeedServer) -> None:
    url = server.set("/f", b"<rss/>", etag=False, last_modified=LAST_MODIFIED)
    first = fetch(url)
    assert first.validators == Validators(None, LAST_MODIFIED)
    assert fetch(url, first.validators).not_modified


def test_redirects_are_followed_and_the_final_url_is_kept(server: FeedServer) -> None:
    final = server.set("/final", b"<rss/>")
    server.set("/old", b"", status=301, headers={"Location": final})
    assert fetch(server.url("/old")).url == final


def test_redirect_loop_is_an_error(server: FeedServer) -> None:
    server.set("/a", b"", status=302, headers={"Location": server.url("/b")})
    server.set("/b", b"", status=302, headers={"Location": server.url("/a")})
    with pytest.raises(FetchError, match="too many redirects"):
        fetch(server.url("/a"))


@pytest.mark.parametrize("status", [404, 410, 500])
def test_http_errors(server: FeedServer, status: int) -> None:
    with pytest.raises(FetchError, match=f"fetch: t: HTTP {status} from 127.0.0.1$"):
        fetch(server.set("/x", b"no", status=status))


def test_retry_after_is_parsed(server: FeedServer) -> None:
    url = server.set("/x", b"slow down", status=429, headers={"Retry-After": "90"})
    with pytest.raises(FetchError) as err:
        fetch(url)
    assert err.value.retry_after == 90 and err.value.http_status == 429


def test_declared_size_over_the_cap_is_refused_before_reading(server: FeedServer) -> None:
    url = server.set("/big", b"x" * 200_000)
    with pytest.raises(FetchError, match=r"response too large: 195\.3 KiB"):
        fetch(url, max_bytes=100_000)


def _chunked_forever(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.send_header("Content-Type", "application/rss+xml")
    req.send_header("Transfer-Encoding", "chunked")
    req.end_headers()
    chunk = b"x" * 65536
    try:
        for _ in range(10_000):     # 640 MB if read to the end
            req.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except (BrokenPipeError, ConnectionResetError):
        pass


def test_undeclared_size_is_capped_while_streaming(server: FeedServer) -> None:
    server.set("/stream", handler=_chunked_forever)
    with pytest.raises(FetchError, match=r"response too large: more than 1 MiB \(stopped reading\)"):
        fetch(server.url("/stream"))


def test_gzip_is_decoded_and_a_gzip_bomb_is_capped(server: FeedServer) -> None:
    url = server.set("/gz", gzip.compress(b"<rss>ok</rss>"), headers={"Content-Encoding": "gzip"})
    assert fetch(url).body == b"<rss>ok</rss>"
    bomb = gzip.compress(b"\0" * (50 << 20))                     # 50 MB of zeros in ~50 KB
    url = server.set("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="response too large"):
        fetch(url)
    url = server.set("/deflate", zlib.compress(b"<rss/>"), headers={"Content-Encoding": "deflate"})
    assert fetch(url).body == b"<rss/>"


def _stall(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.send_header("Content-Length", "100000")
    req.end_headers()
    req.wfile.write(b"<rss>")
    req.wfile.flush()
    time.sleep(5)


def test_a_server_that_stalls_mid_body_hits_the_deadline(server: FeedServer) -> None:
    server.set("/stall", handler=_stall)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 1 s \(127.0.0.1\)|timed out reading"):
        fetch(server.url("/stall"), timeout=1)
    assert time.monotonic() - started < 4


def test_connection_refused() -> None:
    with pytest.raises(FetchError, match=r"cannot connect to 127\.0\.0\.1: "):
        fetch("http://127.0.0.1:9/feed")


def test_files_and_paths(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(b"<rss/>")
    assert fetch(str(feed)).body == b"<rss/>"
    assert fetch(feed.as_uri()).body == b"<rss/>"
    with pytest.raises(FetchError, match="no such file"):
        fetch(str(tmp_path / "missing.xml"))
    feed.write_bytes(b"x" * 2000)
    with pytest.raises(FetchError, match="file too large"):
        fetch(str(feed), max_bytes=1000)


def test_per_host_limit_is_respected(server: FeedServer) -> None:
    for i in range(6):
        server.set(f"/slow{i}", b"<rss/>", delay=0.3)

    async def go() -> float:
        async with Fetcher(concurrency=8, per_host=2) as f:
            started = time.monotonic()
            await asyncio.gather(*(f.fetch("t", server.url(f"/slow{i}"), None, timeout=10, max_bytes=100)
                                   for i in range(6)))
            return time.monotonic() - started
    asyncio.run(go())
    # Never more than two requests in flight to the host at once (measured from the server's log).
    spans = sorted(h.at for h in server.hits)
    in_flight = max(sum(1 for t in spans if s <= t < s + 0.25) for s in spans)
    assert in_flight <= 2
