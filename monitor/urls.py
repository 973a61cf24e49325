"""Small URL helpers shared by stages and storage (no network libraries imported here)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|key|apikey|api_key|access_token|secret|password|pass|sig|"
                           r"signature|auth)=)[^&#]*")


def is_local(url: str) -> bool:
    """True for file:// URLs and plain paths."""
    return url.startswith("file:") or "://" not in url


def host_of(url: str) -> str:
    """The host a URL points at, for per-host limits and messages ("localhost" for files)."""
    if is_local(url):
        return "localhost"
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


_TOKENISH = re.compile(r"(?<=/)(?=[^/?#]*\d)(?=[^/?#]*[A-Za-z])[^/?#@]{12,}")


def mask_tokens(url: str) -> str:
    """Mask path segments that look like tokens (12+ characters mixing letters and digits)."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{head}://{host}{slash}{_TOKENISH.sub('****', '/' + path)[1:]}" if slash else url


def mask(url: str) -> str:
    """A URL safe to print: user info, secret-looking query values and token-like path segments are
    replaced by ****."""
    return mask_credentials(url) if is_local(url) else mask_tokens(mask_credentials(url))


def mask_credentials(url: str) -> str:
    """A web page's URL safe to print: user info and secret-looking query values replaced by ****, the
    path kept readable (page paths are names, not tokens)."""
    if is_local(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "****@" + netloc.rsplit("@", 1)[1]
    return _SECRET_QUERY.sub(r"\1****", urlunsplit(parts._replace(netloc=netloc)))


_WEB = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.I)


def web_link(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL a report may link to, else None.

    Links come from feeds, which are untrusted: ``javascript:``, ``data:`` and relative URLs never
    become links; neither do URLs with whitespace or control characters in them.
    """
    text = (url or "").strip()
    if not _WEB.match(text) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return None
    try:
        return text if urlsplit(text).hostname else None
    except ValueError:
        return None
