"""urls: join_url is urllib's urljoin, only faster on plain absolute links."""

from __future__ import annotations

from urllib.parse import urljoin

from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.urls import join_url

BASES = st.sampled_from(["", "http://e.org/feed", "https://e.org/a/b?c=d", "HTTP://E.org", "ftp://e.org/",
                         "/relative/", "http://[e.org/", "http://e.org:99999/", "file:///tmp/f.xml"])
SCHEMES = st.sampled_from(["http://", "https://", "HTTP://", "Https://", "ftp://", "http:", "//", "", " http://",
                           "\thttp://", "javascript:"])
HOSTS = st.sampled_from(["e.org", "E.Org:80", "e.org:", "e.org:x", "[::1]", "[e.org", "ß.de", "", "a@e.org",
                         "e.org.", "e-x.org"])
PIECES = st.sampled_from(["/", "/a", "/a/b", ";p", "?", "?q=1&r=2", "#", "#f", "/..", "/./", " ", "\t", "\n", "é",
                          "%20", "//", ":", "'", "~", "=", "[", "]", "\x00", "\x7f", "?x?y"])


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(BASES, SCHEMES, HOSTS, st.lists(PIECES, max_size=5).map("".join))
@example("http://e.org/feed", "http://", "e.org", "/a;")
@example("http://e.org/feed", "http://", "e.org", "/a?")
@example("http://[e.org/", "http://", "e.org", "/a")
def test_join_url_is_urljoin(base: str, scheme: str, host: str, rest: str) -> None:
    """urljoin, where urljoin gives an answer; where it raises (a malformed host), the URL as it is."""
    url = scheme + host + rest
    try:
        expected = urljoin(base, url)
    except ValueError:
        expected = url
    assert join_url(base, url) == expected
