"""Fetch a feed body: the only module that imports aiohttp.

- Conditional GET with the stored ETag *and* Last-Modified, echoed verbatim (RFC 9110 §13.1.1-2); a 304
  is a result, not an exception.
- Bounded everywhere: one deadline per fetch (a server that stalls mid-body cannot hold a worker), a
  redirect limit, and a size cap applied to the *decoded* body while it streams, so neither a huge body
  nor a gzip bomb is ever held in memory past the cap.
- Concurrency: a total limit and a per-host limit, shared by every fetch of one Fetcher; connections are
  kept alive and reused between fetches (a warm cycle is mostly 304s: the per-request cost is what counts).
- ``file://`` URLs and plain paths are read from disk under the same size cap.
- A server's say over our schedule is bounded: ``Retry-After`` counts for at most MAX_RETRY_AFTER, so a
  huge value or a date in year 9999 cannot silence a host for ever. Redirects go to http(s) URLs only.

Redirects are followed here, not by aiohttp, so that each hop is checked (scheme, URL) before it is
requested and a URL's credentials go only where they went before: to the same origin (or its https
upgrade), as browsers and httpx do. aiohttp's own decompression is off: bodies are decoded by `_decoded`,
in bounded steps.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import os
import re
import ssl
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
import certifi
from yarl import URL

from monitor import USER_AGENT
from monitor.errors import FetchError
from monitor.models import FetchResult, Validators
from monitor.urls import CONTROL, host_of, is_local

MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 86400.0     # a Retry-After longer than a day counts as a day (README, Polling)
REDIRECT_SCHEMES = ("http", "https")
REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
ACCEPT = "application/atom+xml, application/rss+xml, application/rdf+xml, application/xml;q=0.9, " \
         "text/xml;q=0.9, */*;q=0.1"
# A response head may be as large as the one httpx (h11) accepted: 100 KiB, any number of fields.
MAX_HEAD = 100 * 1024
KEEPALIVE = 5.0               # seconds an idle connection is kept: less than common server timeouts
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")   # RFC 3986 §2


def human_size(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    if n < 1024:
        return f"{int(n)} bytes"
    units = iter(("KiB", "MiB", "GiB"))
    unit = next(units)
    n /= 1024
    while n >= 1024 and unit != "GiB":
        n, unit = n / 1024, next(units)
    return f"{n:.1f} {unit}".replace(".0 ", " ")


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process, shared by every Fetcher, made for the first https request: building one
    reads the whole CA bundle (20-50 ms here), which `watch` would otherwise pay on every cycle and a cycle of
    http feeds need not pay at all. certifi's CA bundle, whatever SSL_CERT_FILE says (no settings from the
    environment), HTTP/1.1 offered by ALPN."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


class Fetcher:
    """Fetches feeds with one shared aiohttp session; use as an async context manager."""

    def __init__(self, *, concurrency: int = 8, per_host: int = 2, user_agent: str | None = None) -> None:
        self._total = asyncio.Semaphore(concurrency)
        self._per_host: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(per_host))
        self._connections = concurrency * 2      # room for connections still closing
        self._headers = {"User-Agent": user_agent or USER_AGENT, "Accept": ACCEPT,
                         # Only codings we can decode with a bounded decompressor (see _decoded).
                         "Accept-Encoding": "gzip, deflate"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        # Per-host limits are the semaphores' (a redirect to another host must not wait on that host's).
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=0, keepalive_timeout=KEEPALIVE)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, trust_env=False, auto_decompress=False,
            cookie_jar=aiohttp.CookieJar(unsafe=True),    # cookies kept for the run, IP hosts included
            timeout=aiohttp.ClientTimeout(total=None), max_line_size=MAX_HEAD, max_field_size=MAX_HEAD,
            max_headers=MAX_HEAD // 4)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, name: str, url: str, validators: Validators | None, *, timeout: float,
                    max_bytes: int) -> FetchResult:
        """Fetch `url` for feed `name`; raises FetchError with a one-line, secret-free message."""
        host = host_of(url)
        async with self._total, self._per_host[host]:
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    if is_local(url):
                        result = await asyncio.to_thread(_read_file, name, url, max_bytes)
                    else:
                        result = await self._get(name, url, validators, timeout, max_bytes)
            except TimeoutError:
                raise FetchError(name, f"timed out after {timeout:g} s ({host})") from None
            elapsed = int((time.monotonic() - started) * 1000)
            return FetchResult(result.url, result.status, result.body, result.content_type,
                               result.validators, result.not_modified, elapsed)

    async def _get(self, name: str, url: str, validators: Validators | None, timeout: float,
                   max_bytes: int) -> FetchResult:
        if self._session is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        headers = {}
        if validators and _sendable(validators.etag):
            headers["If-None-Match"] = validators.etag
        if validators and _sendable(validators.last_modified):
            headers["If-Modified-Since"] = validators.last_modified
        host = host_of(url)
        target = _request_url(name, url)
        auth = _basic_auth(target)
        limits = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 10.0))
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await self._session.get(target.with_user(None) if target.raw_user else target,
                                                   headers={**headers, **auth}, allow_redirects=False,
                                                   timeout=limits, ssl=_tls() if target.scheme == "https" else True)
            except aiohttp.ServerTimeoutError:
                raise FetchError(name, f"timed out after {timeout:g} s ({host})") from None
            except aiohttp.ClientConnectorError as exc:
                raise FetchError(name, f"cannot connect to {host}: {_reason(exc)}") from None
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise FetchError(name, f"request to {host} failed: {_reason(exc)}") from None
            try:
                following = _redirect(name, host, target, response)
                if following is None:
                    return await self._read(name, target, response, max_bytes, conditional=bool(headers))
            finally:
                response.release()
            # Credentials stay with the origin they were given for (or go to the one the new URL names).
            auth = _basic_auth(following) or (auth if _same_origin(target, following) else {})
            target = following
        raise FetchError(name, f"too many redirects (more than {MAX_REDIRECTS}) from {host}")

    async def _read(self, name: str, target: URL, response: aiohttp.ClientResponse,
                    max_bytes: int, *, conditional: bool) -> FetchResult:
        final_url, host = str(target), target.host
        etag, last_modified = _header(response, "etag"), _header(response, "last-modified")
        # A validator that cannot be sent back (a control character: a header injection to aiohttp) is not
        # kept: every later request of the feed would fail before it left, whatever the server did next.
        validators = Validators(etag if _sendable(etag) else None,
                                last_modified if _sendable(last_modified) else None)
        if response.status == 304:      # no body by definition: the connection goes back to the pool
            if not conditional:         # "not modified" since nothing: the feed would never be read
                raise FetchError(name, f"HTTP 304 (not modified) from {host} to a request that named no "
                                 "version (no ETag or Last-Modified sent): a server fault")
            return FetchResult(final_url, 304, b"", None, validators, not_modified=True)
        if response.status >= 400 or response.status < 200:
            retry_after = parse_retry_after(_header(response, "retry-after"))
            hint = f" (retry after {retry_after:.0f} s)" if retry_after is not None else ""
            raise FetchError(name, f"HTTP {response.status} from {host}{hint}",
                             retry_after=retry_after, http_status=response.status)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes and "content-encoding" not in response.headers:
            raise FetchError(name, f"response too large: {human_size(int(declared))} "
                             f"(limit {human_size(max_bytes)}) from {host}")
        body = bytearray()
        try:
            async for chunk in _decoded(response):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(name, f"response too large: more than {human_size(max_bytes)} "
                                     f"(stopped reading) from {host}")
        except zlib.error as exc:
            raise FetchError(name, f"corrupt compressed response from {host}: {exc}") from None
        except aiohttp.ServerTimeoutError:
            raise FetchError(name, f"timed out reading the response from {host}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FetchError(name, f"response from {host} broken off: {_reason(exc)}") from None
        return FetchResult(final_url, response.status, bytes(body), _header(response, "content-type"),
                           validators)


def _request_url(name: str, url: str) -> URL:
    """`url` as a URL to request; URLs from sitemaps and feeds are untrusted. Percent-escapes and characters
    that are valid in a URI are sent as given (yarl would rewrite ``%7E`` as ``~``, ``%2f`` in a query as ``/``:
    equivalent to most servers, not to a signed URL), the rest is encoded."""
    try:
        return _checked_url(url)
    except _Refused as exc:
        raise FetchError(name, str(exc)) from None


class _Refused(Exception):
    """A URL that is not requested; its message is the FetchError's."""


@functools.lru_cache(maxsize=4096)      # the same feed URLs every cycle (a refusal is not kept)
def _checked_url(url: str) -> URL:
    try:
        if bad := CONTROL.search(url):
            raise ValueError(f"Invalid non-printable ASCII character in URL, {bad.group()!r} at position "
                             f"{bad.start()}.")
        _ = urlsplit(url).port         # ValueError for a malformed host or a port out of range
        target = URL(url)
        host = target.host             # decodes an IDNA host: UnicodeError (a ValueError) if it is malformed
    except (ValueError, TypeError) as exc:
        raise _Refused(f"invalid URL: {_reason(exc)}") from None
    if target.scheme not in REDIRECT_SCHEMES:
        raise _Refused(f"request to {host or ''} failed: Request URL has an unsupported protocol "
                       f"'{target.scheme[:20]}://'.")
    if not host:
        raise _Refused("invalid URL: no host")
    if str(target) != url and "/." not in url and _URI_CHARS.fullmatch(url):
        given = URL(url, encoded=True)
        if given.raw_host == target.raw_host:
            return given
    return target


def _basic_auth(url: URL) -> dict[str, str]:
    """The Authorization header for a URL's user:password (UTF-8, as httpx sent it), or none."""
    if not url.raw_user:
        return {}
    pair = f"{url.user}:{url.password or ''}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def _redirect(name: str, host: str, current: URL, response: aiohttp.ClientResponse) -> URL | None:
    """Where a redirect response sends us next (None if `response` is not a redirect). Only http(s) URLs are
    followed: a ``data:`` or ``javascript:`` target is refused, and only its scheme is reported."""
    if response.status not in REDIRECT_STATUSES:
        return None
    location = (_header(response, "location") or "").strip()
    if not location:
        raise FetchError(name, f"HTTP {response.status} (a redirect) from {host} without a Location header: "
                         "nowhere to go")
    try:
        scheme = urlsplit(location).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme and scheme not in REDIRECT_SCHEMES:
        raise FetchError(name, f"redirected by {current.host} to a {scheme[:20]}: URL (only http and https "
                         "redirects are followed)")
    try:
        following = urljoin(str(current), location)
        if current.fragment and "#" not in following:    # RFC 9110 §10.2.2: the fragment carries over
            following += "#" + current.raw_fragment
        return _request_url(name, following)
    except (FetchError, ValueError):
        raise FetchError(name, f"redirected by {host} to an invalid URL") from None


def _same_origin(a: URL, b: URL) -> bool:
    """Same scheme, host and port, or the https upgrade of the same host (RFC 6454 origins)."""
    if a.host != b.host:
        return False
    return (a.scheme, a.port) == (b.scheme, b.port) or (a.scheme, a.port, b.scheme, b.port) == (
        "http", 80, "https", 443)


def _sendable(value: str | None) -> TypeGuard[str]:
    """Whether a stored validator can go back to the server as a request header."""
    return bool(value) and CONTROL.search(value or "") is None


def _header(response: aiohttp.ClientResponse, name: str) -> str | None:
    """A response header as httpx read it: repeated fields joined with ", ", bytes that are not UTF-8 read
    as ISO-8859-1 (aiohttp would leave lone surrogates in the string, which no database can store)."""
    values = response.headers.getall(name, ())
    if not values:
        return None
    value = values[0] if len(values) == 1 else ", ".join(values)
    if value.isascii():
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1")


async def _decoded(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body with gzip/deflate undone in bounded steps (at most 1 MiB out per step)."""
    coding = (_header(response, "content-encoding") or "").strip().lower()
    raw = response.content.iter_any()
    if coding in ("", "identity"):
        async for chunk in raw:
            yield chunk
        return
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise zlib.error(f"unsupported content-encoding '{coding}'")
    decoder: Any = None
    head = b""
    async for chunk in raw:
        if decoder is None:
            head += chunk
            if len(head) < 2:
                continue
            decoder, chunk = zlib.decompressobj(_wbits(head)), head
        data = chunk
        while data:
            out = decoder.decompress(data, 1 << 20)
            if out:
                yield out
            data = decoder.unconsumed_tail
    if decoder is None:
        if head:
            raise zlib.error("truncated compressed body")
        return
    tail = decoder.flush()
    if tail:
        yield tail
    if not decoder.eof:      # the stream never reached its end: a truncated or corrupt body
        raise zlib.error("the compressed body ends before its end marker")


def _wbits(head: bytes) -> int:
    """The zlib window setting for a body starting with `head`, whatever its Content-Encoding label says:
    servers send gzip labelled ``deflate``, and ``deflate`` as a zlib stream (RFC 9110 §8.4.1.2) or raw
    (RFC 1951). 47 = gzip or zlib header, auto-detected; -15 = raw deflate."""
    gzip_magic = head[:2] == b"\x1f\x8b"
    zlib_header = head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return 47 if gzip_magic or zlib_header else -15


def _read_file(name: str, url: str, max_bytes: int) -> FetchResult:
    path = Path(unquote(urlsplit(url).path)) if url.startswith("file:") else Path(url)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FetchError(name, f"file too large: {human_size(size)} (limit {human_size(max_bytes)}): "
                             f"{path}")
        with path.open("rb") as fh:
            body = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise FetchError(name, f"no such file: {path}") from None
    except OSError as exc:
        raise FetchError(name, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(body) > max_bytes:
        raise FetchError(name, f"file too large (limit {human_size(max_bytes)}): {path}")
    return FetchResult(path.resolve().as_uri(), 200, body, "application/xml", Validators())


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3),
    at most MAX_RETRY_AFTER. None when the header is absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0")
        return MAX_RETRY_AFTER if len(digits) > 9 else min(MAX_RETRY_AFTER, float(digits or 0))
    try:
        when = email.utils.parsedate_to_datetime(value)
        seconds = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _reason(exc: BaseException) -> str:
    """One line, no URL (it may hold credentials): the OS's words for a socket error, the parser's first
    line for a malformed response."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(exc.__cause__, aiohttp.http.HttpProcessingError):
        exc = exc.__cause__     # "Not enough data to satisfy content length header (received 10 of 100 bytes)."
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.http.HttpProcessingError):
        # A response aiohttp could not parse. The parser's message points at the offending bytes on two more
        # lines: "Bad status line:\n\n  b'garbage'\n  ^" -> "Bad status line: b'garbage'".
        lines = (line.strip() for line in exc.message.splitlines())
        text = " ".join(line for line in lines if line.strip("^ "))[:200]
    elif isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.errno:
        # "Connection refused", not asyncio's "[Errno 111] Connect call failed ('127.0.0.1', 9)"
        text = os.strerror(exc.errno) if exc.errno > 0 else exc.strerror or str(exc)
    else:
        text = str(exc)
    return " ".join(text.split("\n", 1)[0].split()) or type(exc).__name__
