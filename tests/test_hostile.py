"""Hostile and broken input (issue 8): each poll runs in a subprocess under a memory limit and a deadline,
against a real local server, and ends with a clear per-feed error (or a correct result) and nothing lost."""

from __future__ import annotations

import gzip
import json
import resource
import subprocess
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CORPUS, FeedServer, feedwatch_cmd, run_cli, write_config

MEMORY_LIMIT = 512 << 20          # address space of the feedwatch process
DEADLINE = 60                     # seconds; every case is designed to end long before
SEED = (CORPUS / "seed-feed.xml").read_bytes()
PATH = "/feed.xml"


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def poll_in_subprocess(config: Path) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    proc = subprocess.run([*feedwatch_cmd(), "--config", str(config), "run", "--force", "--json"],
                          capture_output=True, text=True, timeout=DEADLINE, preexec_fn=limited)
    elapsed = time.monotonic() - started
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout), elapsed


def stall(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.send_header("Content-Type", "application/rss+xml")
    req.send_header("Content-Length", "200000")
    req.end_headers()
    req.wfile.write(SEED[:1000])
    req.wfile.flush()
    time.sleep(30)


def endless(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.send_header("Content-Type", "application/rss+xml")
    req.end_headers()                        # no length, no chunking: the body ends when the server says so
    try:
        req.wfile.write(SEED[:500])
        for _ in range(100_000):
            req.wfile.write(b"<item><title>more</title></item>" * 2000)
    except (BrokenPipeError, ConnectionResetError):
        pass


def quadratic_bomb() -> bytes:
    entity = "A" * 100_000
    return (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{entity}">]><rss version="2.0"><channel>'
            f'<title>t</title><item><guid>x</guid><title>t</title><description>{"&a;" * 3000}</description>'
            "</item></channel></rss>").encode()


def billion_laughs() -> bytes:
    lol = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    return (f'<?xml version="1.0"?><!DOCTYPE rss [{lol}]><rss version="2.0"><channel><title>t</title>'
            '<item><guid>a</guid><title>&lol9;</title></item></channel></rss>').encode()


# name -> (how the server answers, the error expected in `run --json`)
HOSTILE: dict[str, tuple[Callable[[FeedServer], None], str]] = {
    "malformed-xml": (lambda s: s.set(PATH, SEED.replace(b"</item>", b"</itme>", 1)), "parse: hostile: malformed XML"),
    "quadratic-entity-expansion": (lambda s: s.set(PATH, quadratic_bomb()),
                                   "parse: hostile: refused: the feed declares XML entities"),
    "billion-laughs": (lambda s: s.set(PATH, billion_laughs()), "parse: hostile: refused: the feed declares XML"),
    "gzip-bomb": (lambda s: s.set(PATH, gzip.compress(b"\0" * (200 << 20)), headers={"Content-Encoding": "gzip"}),
                  "fetch: hostile: response too large: more than 10 MiB (stopped reading)"),
    "deflate-bomb": (lambda s: s.set(PATH, zlib.compress(b" " * (200 << 20)), headers={"Content-Encoding": "deflate"}),
                     "fetch: hostile: response too large: more than 10 MiB (stopped reading)"),
    "declared-too-large": (lambda s: s.set(PATH, b"x" * (11 << 20)), "fetch: hostile: response too large: 11 MiB"),
    "endless-body": (lambda s: s.set(PATH, handler=endless), "fetch: hostile: response too large: more than 10 MiB"),
    "stall-mid-body": (lambda s: s.set(PATH, handler=stall), "fetch: hostile: timed out"),
    "redirect-loop": (lambda s: (s.set(PATH, b"", status=302, headers={"Location": s.url("/loop")}),
                                 s.set("/loop", b"", status=302, headers={"Location": s.url(PATH)})),
                      "fetch: hostile: too many redirects (more than 5)"),
    "html-page": (lambda s: s.set(PATH, b"<!doctype html><html><body><p>Welcome!</p></body></html>",
                                  content_type="text/html"),
                  "parse: hostile: not an RSS or Atom feed (got an HTML page)"),
    "binary-garbage": (lambda s: s.set(PATH, bytes(range(256)) * 4096), "parse: hostile: not an RSS or Atom feed"),
}


@pytest.fixture
def feed(tmp_path: Path, server: FeedServer) -> Path:
    """A feed with a stored history (the seed), then turned hostile by the test."""
    url = server.set(PATH, SEED)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"defaults: {{timeout: 3s}}\nfeeds:\n  - {{name: hostile, url: '{url}'}}\n")
    assert run_cli("--config", str(config), "run").code == 0
    return config


def history(config: Path) -> Any:
    return run_cli("--config", str(config), "history", "--json").json()


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_input_is_a_bounded_clear_error_and_loses_nothing(name: str, server: FeedServer, feed: Path) -> None:
    before = history(feed)
    setup, expected = HOSTILE[name]
    setup(server)
    code, out, elapsed = poll_in_subprocess(feed)
    assert code == 1
    [result] = out["feeds"]
    assert result["status"] == "error" and result["error"].startswith(expected), result["error"]
    assert "\n" not in result["error"] and len(result["error"]) < 300
    assert elapsed < 30
    assert history(feed) == before                        # nothing already stored is lost or changed
    server.set(PATH, SEED)
    recovered = run_cli("--config", str(feed), "run", "--force", "--json")
    assert recovered.code == 0 and recovered.json()["changes"] == []


@pytest.mark.parametrize(("charset", "declared"), [("iso-8859-1", "utf-8"), ("windows-1252", None)])
def test_wrong_or_missing_charset_still_reads_right(charset: str, declared: str | None, server: FeedServer,
                                                    feed: Path) -> None:
    body = SEED.decode("utf-8").replace("Community: Code Of Conduct", "Community: Code Of Conduct – déjà vu")
    content_type = "application/rss+xml" + (f"; charset={declared}" if declared else "")
    server.set(PATH, body.encode(charset, errors="replace"), content_type=content_type)
    code, out, _ = poll_in_subprocess(feed)
    assert code == 0 and out["feeds"][0]["status"] == "ok"
    [change] = out["changes"]
    assert change["title"].endswith("déjà vu")


def test_a_2_mb_item_is_handled_within_bounds(server: FeedServer, feed: Path) -> None:
    paragraph = "<p>" + "word " * 200 + "</p>"
    big = "<h1>Huge</h1>" + paragraph * 2000 + "<p>The one sentence that changes.</p>" + paragraph * 2000
    escaped = big.replace("<", "&lt;")
    item = f"<item><guid>huge</guid><title>Huge page</title><description>{escaped}</description></item>"
    server.set(PATH, SEED.replace(b"</channel>", item.encode() + b"</channel>"))
    code, out, _ = poll_in_subprocess(feed)
    assert code == 0 and [c["kind"] for c in out["changes"]] == ["added"]
    server.set(PATH, SEED.replace(b"</channel>", item.replace("changes.", "changed!").encode() + b"</channel>"))
    code, out, elapsed = poll_in_subprocess(feed)
    assert code == 0 and elapsed < 30
    [change] = out["changes"]
    assert change["inserted"] == ["changed!"] and change["deleted"] == ["changes."]


def test_a_malformed_link_is_one_documents_data_not_the_feeds_failure(tmp_path: Path, server: FeedServer) -> None:
    """An item link or a link in the content that urllib cannot take apart ("http://[::1") once made the
    whole feed fail with an internal error and a traceback, on every run; the other items were never read."""
    rss = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>http://127.0.0.1/</link>'
           b'<item><guid>bad-link</guid><title>Bad link</title><link>http://[::1</link><description>one'
           b'</description></item><item><guid>bad-href</guid><title>Bad href</title><link>/ok</link>'
           b'<description>&lt;p&gt;see &lt;a href="http://[oops/x"&gt;this&lt;/a&gt;&lt;/p&gt;</description>'
           b'</item><item><guid>good</guid><title>Good</title><link>/good</link><description>fine'
           b'</description></item></channel></rss>')
    jsonfeed = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "j", "items": [
        {"id": "bad", "url": "http://[::1", "content_html": "<p>see <a href='http://[x/y'>it</a></p>"},
        {"id": "good", "url": "/good", "content_text": "fine"}]}).encode()
    rss_url = server.set("/r.xml", rss)
    json_url = server.set("/j.json", jsonfeed, content_type="application/feed+json")
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: rss, url: '{rss_url}', links: true}}\n"
                          f"  - {{name: json, url: '{json_url}', links: true}}\n")
    code, out, _ = poll_in_subprocess(config)
    assert code == 0, out
    assert {f["name"]: (f["status"], f["documents"]) for f in out["feeds"]} == {"rss": ("ok", 3), "json": ("ok", 2)}
    shown = run_cli("--config", str(config), "show", "bad-href")
    assert shown.code == 0 and "this <http://[oops/x>" in shown.out, shown.out + shown.err
