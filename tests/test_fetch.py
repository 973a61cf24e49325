"""fetch, against a real HTTP server on 127.0.0.1: validators, 304, redirects, caps, deadlines, files."""

from __future__ import annotations

import asyncio
import base64
import gzip
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from monitor import USER_AGENT
from monitor.errors import FetchError
from monitor.fetch import Fetcher
from monitor.models import FetchResult, Validators
from tests.helpers import FeedServer, http_date, run_process, write_config

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


def test_a_redirect_without_a_location_says_so(server: FeedServer) -> None:
    """It once read the redirect's own (empty) body, and the feed failed as "empty response (no feed)"."""
    server.set("/moved", b"", status=302)
    with pytest.raises(FetchError) as raised:
        fetch(server.url("/moved"))
    assert raised.value.detail == "HTTP 302 (a redirect) from 127.0.0.1 without a Location header: nowhere to go"


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


class _Feed(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An https server on 127.0.0.1 whose certificate comes from a throwaway CA: (its URL, the CA's file)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield f"https://127.0.0.1:{server.server_address[1]}/feed", ca_file
    server.shutdown()
    server.server_close()


def test_https_certificates_are_verified_against_certifi_not_the_environment(
        tls_server: tuple[str, Path], tmp_path: Path) -> None:
    """`feedwatch run` fetches an https feed with certifi's CA bundle, whatever SSL_CERT_FILE says: a CA
    slipped into the environment does not make its certificates trusted (a context from the environment,
    such as aiohttp's default, would trust it). A real process, so the variable is set before anything
    reads it."""
    url, ca_file = tls_server
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: tls, url: '{url}'}}\n")
    result = run_process("--config", str(config), "run", "--json", env={"SSL_CERT_FILE": str(ca_file)})
    [feed] = result.json()["feeds"]
    assert result.code == 1 and feed["status"] == "error"
    assert "certificate verify failed" in feed["error"] and "127.0.0.1" in feed["error"]


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


# ---------------------------------------------------------------------------------------------- HTTP client edges


def _raw(answer: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    def handler(req: BaseHTTPRequestHandler) -> None:
        req.close_connection = True
        req.wfile.write(answer)
    return handler


@pytest.mark.parametrize(("answer", "error"), [
    (b"garbage\r\n\r\n", "request to 127.0.0.1 failed: Bad status line"),
    (b"HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\nok", "request to 127.0.0.1 failed: "),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", "request to 127.0.0.1 failed: "),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     "request to 127.0.0.1 failed: "),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<rss>", "response from 127.0.0.1 broken off: Not enough data"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n<rss>", "response from 127.0.0.1 broken off: "),
    (b"", "request to 127.0.0.1 failed: Server disconnected"),
])
def test_a_malformed_response_is_one_line_fetch_error(server: FeedServer, answer: bytes, error: str) -> None:
    """What the HTTP parser refuses (it is stricter than some: duplicate Content-Length, Content-Length with
    chunking) is that feed's error, one line without the URL, never an exception of the HTTP library."""
    server.set("/bad", handler=_raw(answer))
    with pytest.raises(FetchError) as err:
        fetch(server.url("/bad"))
    assert str(err.value).startswith(f"fetch: t: {error}") and "\n" not in str(err.value), err.value


def test_validators_that_are_not_utf8_are_read_as_latin1_and_echoed(server: FeedServer) -> None:
    server.set("/f", handler=_raw(b'HTTP/1.1 200 OK\r\nETag: "caf\xe9"\r\nContent-Length: 6\r\n\r\n<rss/>'))
    assert fetch(server.url("/f")).validators.etag == '"café"'       # a string any database can store
    server.set("/u", handler=_raw('HTTP/1.1 200 OK\r\nETag: "café"\r\nContent-Length: 6\r\n\r\n<rss/>'.encode()))
    assert fetch(server.url("/u")).validators.etag == '"café"'
    url = server.set("/w", b"<rss/>", etag=False, headers={"ETag": 'W/"1"'})
    assert fetch(url, Validators('W/"1"', None)).status == 200
    assert server.hits[-1].headers["If-None-Match"] == 'W/"1"'


def test_the_url_is_requested_as_given(server: FeedServer) -> None:
    """Percent-escapes are not rewritten (``%7E`` stays, a signed query keeps its ``%2F``)."""
    url = server.set("/~a%7Eb", b"<rss/>") + "?sig=x%2Fy"
    result = fetch(url)
    assert result.status == 200 and result.url == url
    assert server.hits[-1].path == "/~a%7Eb"


def test_credentials_in_the_url_go_to_their_origin_only(server: FeedServer) -> None:
    elsewhere = server.set("/elsewhere", b"<rss/>").replace("127.0.0.1", "localhost")
    server.set("/same", b"", status=302, headers={"Location": "/final"})
    server.set("/away", b"", status=302, headers={"Location": elsewhere})
    server.set("/final", b"<rss/>")
    with_user = server.url("/same").replace("http://", "http://me:s%C3%A9cret@")
    assert fetch(with_user).url == with_user.replace("/same", "/final")
    basic = "Basic " + base64.b64encode("me:sécret".encode()).decode()
    assert [h.headers.get("Authorization") for h in server.hits[-2:]] == [basic, basic]
    fetch(server.url("/away").replace("http://", "http://me:pw@"))
    assert "Authorization" in server.hits[-2].headers and "Authorization" not in server.hits[-1].headers
