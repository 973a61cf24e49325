"""Fetch a feed body: the only module that imports httpx.

- Conditional GET with the stored ETag *and* Last-Modified, echoed verbatim (RFC 9110 §13.1.1-2); a 304
  is a result, not an exception.
- Bounded everywhere: one deadline per fetch (a server that stalls mid-body cannot hold a worker), a
  redirect limit, and a size cap applied to the *decoded* body while it streams, so neither a huge body
  nor a gzip bomb is ever held in memory past the cap.
- Concurrency: a total limit and a per-host limit, shared by every fetch of one Fetcher.
- ``file://`` URLs and plain paths are read from disk under the same size cap.
- A server's say over our schedule is bounded: ``Retry-After`` counts for at most MAX_RETRY_AFTER, so a
  huge value or a date in year 9999 cannot silence a host for ever. Redirects go to http(s) URLs only.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ssl
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from monitor import USER_AGENT
from monitor.errors import FetchError
from monitor.models import FetchResult, Validators
from monitor.urls import host_of, is_local

MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 86400.0     # a Retry-After longer than a day counts as a day (README, Polling)
REDIRECT_SCHEMES = ("http", "https")
ACCEPT = "application/atom+xml, application/rss+xml, application/rdf+xml, application/xml;q=0.9, " \
         "text/xml;q=0.9, */*;q=0.1"


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
    """One TLS context per process, shared by every Fetcher: building one reads the whole CA bundle
    (about 20 ms here), which `watch` would otherwise pay on every cycle. Same settings as httpx's default."""
    return httpx.create_ssl_context(trust_env=False)


class Fetcher:
    """Fetches feeds with one shared httpx client; use as an async context manager."""

    def __init__(self, *, concurrency: int = 8, per_host: int = 2, user_agent: str | None = None) -> None:
        self._total = asyncio.Semaphore(concurrency)
        self._per_host: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(per_host))
        self._client = httpx.AsyncClient(
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": user_agent or USER_AGENT, "Accept": ACCEPT,
                     # Only codings we can decode with a bounded decompressor (see _decoded).
                     "Accept-Encoding": "gzip, deflate"},
            limits=httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2),
            verify=_tls(),
            trust_env=False,
            event_hooks={"response": [_refuse_odd_redirect]},
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

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
        headers = {}
        if validators and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        host = host_of(url)
        try:
            _ = urlsplit(url).port         # ValueError for a malformed host or a port out of range
            request = self._client.build_request("GET", url, headers=headers,
                                                 timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        except (httpx.InvalidURL, ValueError) as exc:   # URLs from sitemaps and feeds are untrusted
            raise FetchError(name, f"invalid URL: {exc}") from None
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TooManyRedirects:
            raise FetchError(name, f"too many redirects (more than {MAX_REDIRECTS}) from {host}") from None
        except _RefusedRedirect as exc:
            raise FetchError(name, f"redirected by {exc.host} to a {exc.scheme}: URL (only http and https "
                             "redirects are followed)") from None
        except httpx.InvalidURL:
            raise FetchError(name, f"redirected by {host} to an invalid URL") from None
        except httpx.ConnectError as exc:
            raise FetchError(name, f"cannot connect to {host}: {_reason(exc)}") from None
        except httpx.TimeoutException:
            raise FetchError(name, f"timed out after {timeout:g} s ({host})") from None
        except httpx.HTTPError as exc:
            raise FetchError(name, f"request to {host} failed: {_reason(exc)}") from None
        try:
            return await self._read(name, response, max_bytes)
        finally:
            await response.aclose()

    async def _read(self, name: str, response: httpx.Response, max_bytes: int) -> FetchResult:
        final_url = str(response.url)
        host = response.url.host
        validators = Validators(response.headers.get("etag"), response.headers.get("last-modified"))
        if response.status_code == 304:
            await response.aread()     # the (empty) rest of the message: otherwise the connection is not reused
            return FetchResult(final_url, 304, b"", None, validators, not_modified=True)
        if response.status_code >= 400 or response.status_code < 200:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            hint = f" (retry after {retry_after:.0f} s)" if retry_after is not None else ""
            raise FetchError(name, f"HTTP {response.status_code} from {host}{hint}",
                             retry_after=retry_after, http_status=response.status_code)
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
        except httpx.TimeoutException:
            raise FetchError(name, f"timed out reading the response from {host}") from None
        except httpx.HTTPError as exc:
            raise FetchError(name, f"response from {host} broken off: {_reason(exc)}") from None
        return FetchResult(final_url, response.status_code, bytes(body),
                           response.headers.get("content-type"), validators)


class _RefusedRedirect(Exception):
    """A redirect to a URL scheme feedwatch does not fetch (data:, javascript:, file:, ftp: …)."""

    def __init__(self, host: str, scheme: str) -> None:
        super().__init__(scheme)
        self.host, self.scheme = host, scheme


async def _refuse_odd_redirect(response: httpx.Response) -> None:
    """Stop before httpx follows a redirect anywhere but http(s): a ``data:`` URL would otherwise end in an
    httpx.InvalidURL deep inside the client. Only the scheme is reported (the rest may be anything)."""
    if not response.has_redirect_location:
        return
    try:
        scheme = urlsplit(response.headers.get("location", "").strip()).scheme.lower()
    except ValueError:
        return      # httpx refuses it in its own way (InvalidURL), reported by _get
    if scheme and scheme not in REDIRECT_SCHEMES:
        raise _RefusedRedirect(response.url.host, scheme[:20])


async def _decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body with gzip/deflate undone in bounded steps (at most 1 MiB out per step)."""
    coding = response.headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        async for chunk in response.aiter_raw():
            yield chunk
        return
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise zlib.error(f"unsupported content-encoding '{coding}'")
    decoder: Any = None
    head = b""
    async for chunk in response.aiter_raw():
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


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    # httpx wraps OS errors as "[Errno 111] Connection refused"; keep the human part.
    if "] " in text and text.startswith("[Errno"):
        text = text.split("] ", 1)[1]
    return text or type(exc).__name__
