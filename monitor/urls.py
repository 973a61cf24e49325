"""Small URL helpers shared by stages and storage (no network libraries imported here), and the one
filter through which every log record passes to have secrets masked (SECRETS)."""

from __future__ import annotations

import functools
import logging
import re
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

CONTROL = re.compile(r"[\x00-\x1f\x7f]")    # an ASCII control character: it ends or corrupts a URL or a header
_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|key|apikey|api_key|access_token|secret|password|pass|sig|"
                           r"signature|auth)=)[^&#]*")


def is_local(url: str) -> bool:
    """True for file:// URLs and plain paths."""
    return url.startswith("file:") or "://" not in url


@functools.lru_cache(maxsize=4096)     # asked for every request, of the same few URLs every cycle
def host_of(url: str) -> str:
    """The host a URL points at, for per-host limits and messages ("localhost" for files)."""
    if is_local(url):
        return "localhost"
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


@functools.lru_cache(maxsize=4096)
def server_of(url: str) -> str:
    """The server a Retry-After binds: the host, with the port when the URL names one ("127.0.0.1:8080"),
    so that one server asking to wait does not hold back another on the same host."""
    host = host_of(url)
    try:
        port = urlsplit(url).port if host and not is_local(url) else None
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


def url_problem(url: str) -> str | None:
    """Why an http(s) URL cannot be requested ("no host", "Port out of range 0-65535", "Invalid IPv6 URL"),
    or None: the judgement a poll makes before its request (monitor.fetch), for `check`, `init` and
    `opml import` to refuse what a poll would fail on."""
    if bad := CONTROL.search(url):
        return f"a URL cannot hold a control character ({bad.group()!r})"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        return str(exc).splitlines()[0] if str(exc) else "malformed"
    return None if parts.hostname else "no host"


# A URL that urllib's urljoin returns as it is, whatever the base's scheme: http(s) in lower case, a host
# and port, a path and a query of plain characters; nothing it drops or re-spells when it takes a URL apart
# and puts it together again (";" parameters, an empty "?", "#", whitespace, controls, brackets).
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]*)?(?:/[A-Za-z0-9._~!$&'()*+,=:@%/-]*)?"
                        r"(?:\?[A-Za-z0-9._~!$&'()*+,=:@%/?-]+)?")


def join_url(base: str, url: str) -> str:
    """urllib.parse.urljoin(base, url), without taking apart a plain absolute URL (most feed links), which
    it would give back unchanged. A URL urllib cannot take apart ("http://[::1", a malformed host in a feed
    or page) is given back as it is: it is the document's data, and fetching it (a followed link) says why
    it cannot be read."""
    if _PLAIN_URL.fullmatch(url) and _splits(base):
        return url
    try:
        return urljoin(base, url)
    except ValueError:
        return url


@functools.lru_cache(maxsize=256)
def _splits(base: str) -> bool:
    """Whether urljoin can take the base apart (it raises ValueError for a malformed host)."""
    try:
        urlsplit(base)
    except ValueError:
        return False
    return True


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
    replaced by ****; for a notification service's URL (any scheme but http/https), every piece that may
    be a token too (slack://TOKEN/TOKEN/TOKEN)."""
    if is_local(url):
        return mask_credentials(url)
    masked = mask_tokens(mask_credentials(url))
    if url.partition("://")[0].lower() not in ("http", "https"):
        for piece in sorted(secret_pieces(url), key=len, reverse=True):
            masked = masked.replace(piece, "****")
    return masked


def mask_credentials(url: str) -> str:
    """A web page's URL safe to print: user info and secret-looking query values replaced by ****, the
    path kept readable (page paths are names, not tokens)."""
    if is_local(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:      # malformed (e.g. "http://[::1"): still named, without what could be credentials
        return _SECRET_QUERY.sub(r"\1****", re.sub(r"//[^/?#]*@", "//****@", url))
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


# ---------------------------------------------------------------------------------------------- secrets in logs

_PIECES = re.compile(r"[/:@?&=#,;+\s]+")
_USERINFO = re.compile(r"(://[^/\s:@]*:)(?!\*+@)[^@\s/]+@")


def secret_pieces(url: str) -> set[str]:
    """The pieces of a notification URL that may be credentials: its password, and every other piece
    (user, host — some services keep a token there, slack://TOKEN/... — path segments, query values)
    that looks like a token: six characters or more mixing letters and digits, or sixteen or more.
    Words ("hooks", "feedwatch", "insecure") and dotted host names stay readable."""
    if "://" not in url:
        return set()
    rest = url.partition("://")[2]
    userinfo = rest.split("/", 1)[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    pieces = set(_PIECES.split(rest)) | {unquote(p) for p in _PIECES.split(unquote(rest))}
    found = {p for p in pieces if _tokenish(p) and "." not in p}
    return found | ({password, unquote(password)} if password else set())


def _tokenish(piece: str) -> bool:
    letters, digits = any(c.isalpha() for c in piece), any(c.isdigit() for c in piece)
    return len(piece) >= 16 or (len(piece) >= 6 and letters and digits)


class SecretFilter(logging.Filter):
    """Masks known secrets (and any URL's password) in every record passing a handler, whichever library
    logged it: urllib3 request lines, Apprise's own warnings, tracebacks. Installed on the root handlers
    by the command line; secrets are added once the config is read (:meth:`add_url`)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def add_url(self, url: str) -> None:
        """A notification URL: every piece that may be a credential is masked from now on."""
        self.add(secret_pieces(url))

    def add_password(self, url: str) -> None:
        """A database URL: its password is masked (its host, user and path are no secret)."""
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        self.add({password, unquote(password)} if password else set())

    def add(self, secrets: set[str]) -> None:
        self.secrets = sorted(set(self.secrets) | {s for s in secrets if s}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return _USERINFO.sub(r"\1****@", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = self.scrub(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.scrub(record.exc_text)
        except Exception:           # a log line must never fail: drop what cannot be checked
            record.msg, record.args, record.exc_info, record.exc_text = "(log message withheld)", None, None, None
        return True


SECRETS = SecretFilter()
