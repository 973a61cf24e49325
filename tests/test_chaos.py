"""Chaos (issue 13): hostile servers next to well-behaved feeds, `run` and `watch` as real processes.

1. Every hostile response class at once, each on its own feed: `run` and `watch` give each one a one-line
   error (or a correct result), and the well-behaved feeds' changes are delivered in that same cycle.
2. A farm: servers on several loopback addresses answer at random (seeded) with any of those classes, for a
   bounded number of `run` cycles and then under `watch`, while well-behaved feeds change every cycle.
   Every cycle completes, every well-behaved change is recorded and delivered exactly once, `watch` stays up.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FeedServer, corpus_steps, feedwatch_cmd, write_config
from tests.receivers import Webhook

STEPS = [p.read_bytes() for p in corpus_steps()]
SEED = STEPS[54]
Answer = Callable[[BaseHTTPRequestHandler], None]


# ---------------------------------------------------------------------------------------------- answers


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None,
          content_type: str = "application/rss+xml") -> Answer:
    def answer(req: BaseHTTPRequestHandler) -> None:
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)
    return answer


def slow_body(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.send_header("Content-Type", "application/rss+xml")
    req.send_header("Content-Length", str(len(SEED)))
    req.end_headers()
    req.wfile.write(SEED[:500])
    req.wfile.flush()
    time.sleep(2.5)                  # the hostile feeds' timeout is 1 s


def reset(req: BaseHTTPRequestHandler) -> None:
    req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    req.close_connection = True
    req.connection.close()


def billion_laughs() -> bytes:
    lol = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    return (f'<?xml version="1.0"?><!DOCTYPE rss [{lol}]><rss version="2.0"><channel><title>t</title>'
            '<item><guid>a</guid><title>&lol9;</title></item></channel></rss>').encode()


FAR_FUTURE = "Fri, 31 Dec 9999 23:59:59 GMT"
FAR_FUTURE_DATE = f"<pubDate>{FAR_FUTURE}</pubDate>".encode()
NUL_FEED = SEED.replace(b"</title>", b"&#0;\x00</title>", 3).replace(b"</guid>", b"\x00</guid>", 2)

# class -> (answer, what `run --json` says for the feed: an error prefix, or "ok" for a correct result)
HOSTILE: dict[str, tuple[Answer, str]] = {
    "retry-after-huge": (reply(429, b"no", {"Retry-After": "99999999999999"}),
                         "fetch: {name}: HTTP 429 from {host} (retry after 86400 s)"),
    "retry-after-year-9999": (reply(503, b"no", {"Retry-After": FAR_FUTURE}),
                              "fetch: {name}: HTTP 503 from {host} (retry after 86400 s)"),
    "redirect-data": (reply(302, b"", {"Location": "data:text/xml,<rss/>"}),
                      "fetch: {name}: redirected by {host} to a data: URL"),
    "redirect-javascript": (reply(301, b"", {"Location": "javascript:alert(1)"}),
                            "fetch: {name}: redirected by {host} to a javascript: URL"),
    "bad-gzip": (reply(200, gzip.compress(SEED)[:-40] + b"garbage" * 9, {"Content-Encoding": "gzip"}),
                 "fetch: {name}: corrupt compressed response from {host}"),
    "gzip-labelled-deflate": (reply(200, gzip.compress(SEED), {"Content-Encoding": "deflate"}), "ok"),
    "truncated-xml": (reply(200, SEED[: len(SEED) // 2]), "parse: {name}: malformed XML"),
    "entity-bomb": (reply(200, billion_laughs()), "parse: {name}: refused: the feed declares XML entities"),
    "slow-body": (slow_body, "fetch: {name}: timed out"),
    "server-error": (reply(500, b"oops", content_type="text/plain"), "fetch: {name}: HTTP 500 from {host}"),
    "nul-characters": (reply(200, NUL_FEED), "ok"),
    "far-future-dates": (reply(200, re.sub(rb"<pubDate>[^<]*</pubDate>", FAR_FUTURE_DATE, SEED),
                               {"Last-Modified": FAR_FUTURE, "Expires": FAR_FUTURE,
                                "Cache-Control": "max-age=99999999999999"}), "ok"),
    "html-page": (reply(200, b"<!doctype html><p>hello</p>", content_type="text/html"),
                  "parse: {name}: not an RSS or Atom feed"),
    "declared-too-large": (reply(200, b"x" * (2 << 20)), "fetch: {name}: response too large"),
    "connection-reset": (reset, "fetch: {name}: "),
    "empty-body": (reply(200, b""), "parse: {name}: empty response"),
}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass        # a connection the hostile answer itself broke


class Hostile:
    """A server on one loopback address; each path answers with a fixed class, or (random=True) with a
    class drawn from a seeded generator on every request."""

    def __init__(self, address: str, rng: random.Random | None = None) -> None:
        self.fixed: dict[str, str] = {}
        self.rng = rng
        self.lock = threading.Lock()
        self.served: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                name = server.pick(self.path)
                with contextlib.suppress(OSError):
                    HOSTILE[name][0](self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = _QuietServer((address, 0), Handler)
        self.httpd.daemon_threads = True
        self.address, self.port = address, self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def pick(self, path: str) -> str:
        with self.lock:
            name = self.fixed.get(path) or (self.rng.choice(sorted(HOSTILE)) if self.rng else "server-error")
            self.served[name] += 1
        return name

    def url(self, path: str) -> str:
        return f"http://{self.address}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostiles() -> Iterator[list[Hostile]]:
    rng = random.Random(1313)
    servers = [Hostile(f"127.0.0.{i}", rng) for i in range(2, 6)]
    yield servers
    for s in servers:
        s.close()


def farm_config(tmp_path: Path, good: list[str], hostile: list[str], hook: Webhook,
                lenient: Callable[[int], bool] = lambda i: True) -> Path:
    lines = [f"database: sqlite:///{tmp_path / 'fw.db'}",
             "defaults: {notify: [hook], interval: 1s, max_errors: 1000}",
             f"targets:\n  hook: {{urls: [\"{hook.url()}\"]}}", "feeds:"]
    lines += [f"  - {{name: good{i}, url: \"{u}\", notify_baseline: true}}" for i, u in enumerate(good)]
    lines += [f"  - {{name: bad{i}, url: \"{u}\", timeout: 1s, max_bytes: 1048576, "
              f"lenient: {str(lenient(i)).lower()}}}" for i, u in enumerate(hostile)]
    return write_config(tmp_path / "feedwatch.yaml", "\n".join(lines) + "\n")


def run(config: Path) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([*feedwatch_cmd(), "--config", str(config), "run", "--force", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def delivered(hook: Webhook, feed: str) -> int:
    return sum(1 for b in hook.bodies if f"**{feed}**" in json.dumps(b))


def recorded(db: Path) -> Counter[str]:
    """Changes that are notified (not the silent baselines), per feed."""
    with sqlite3.connect(db) as conn:
        return Counter(name for (name,) in conn.execute(
            "SELECT f.name FROM changes c JOIN feeds f ON f.id = c.feed_id WHERE NOT c.baseline"))


# ---------------------------------------------------------------------------------------------- every class at once


def test_every_hostile_class_is_one_feeds_one_line_error_and_the_rest_is_delivered(
        tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    bad = Hostile("127.0.0.2")
    try:
        for name in HOSTILE:
            bad.fixed[f"/{name}.xml"] = name
        good = [server.set(f"/good{i}.xml", STEPS[0]) for i in range(2)]
        classes = list(HOSTILE)       # only the feed that needs it is lenient: the others must fail strictly
        config = farm_config(tmp_path, good, [bad.url(f"/{n}.xml") for n in classes], hook,
                             lenient=lambda i: classes[i] == "nul-characters")
        names = {f"bad{i}": n for i, n in enumerate(HOSTILE)}
        for i in range(2):
            server.set(f"/good{i}.xml", STEPS[1])
        code, out, _ = run(config)
        assert code == 1
        feeds = {f["name"]: f for f in out["feeds"]}
        for feed, name in names.items():
            expected = HOSTILE[name][1].format(name=feed, host="127.0.0.2")
            result = feeds[feed]
            if expected == "ok":
                assert result["status"] == "ok", (name, result)
            else:
                assert result["status"] == "error" and result["error"].startswith(expected), (name, result)
                assert "\n" not in result["error"] and len(result["error"]) < 300
        assert {feeds[f"good{i}"]["status"] for i in range(2)} == {"ok"}
        made = Counter(c["feed"] for c in out["changes"])
        assert [delivered(hook, f"good{i}") for i in range(2)] == [made["good0"], made["good1"]]   # same run
        assert made["good0"] > 0

        # watch, on a fresh database (127.0.0.2 is now backed off, rightly): every class is answered in its
        # first cycle, and the good feeds change again meanwhile.
        config.write_text(config.read_text().replace("fw.db", "fw2.db"))
        log = tmp_path / "watch.log"
        with log.open("w") as err:
            proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"],
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "cycle feeds=18" not in log.read_text():
                time.sleep(0.3)
            for i in range(2):
                server.set(f"/good{i}.xml", STEPS[2])
            while time.monotonic() < deadline and min(recorded(tmp_path / "fw2.db")[f"good{i}"]
                                                      for i in range(2)) <= made["good0"]:
                time.sleep(0.3)
            time.sleep(1)
            assert proc.poll() is None, log.read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
        text = log.read_text()
        assert "Traceback" not in text and "internal error" not in text, text
        for feed, name in names.items():
            if HOSTILE[name][1] != "ok":
                assert f"feed={feed} status=error" in text, (feed, name)
        changes = recorded(tmp_path / "fw2.db")
        for i in range(2):
            assert changes[f"good{i}"] > made[f"good{i}"], changes
            assert delivered(hook, f"good{i}") == made[f"good{i}"] + changes[f"good{i}"]     # each exactly once
    finally:
        bad.close()


# ---------------------------------------------------------------------------------------------- the farm

CYCLES = 4
GOOD = 4
HOSTILE_PER_SERVER = 3


def test_chaos_farm_run_cycles_then_watch(tmp_path: Path, server: FeedServer, hook: Webhook,
                                          hostiles: list[Hostile]) -> None:
    good = [server.set(f"/good{i}.xml", STEPS[0]) for i in range(GOOD)]
    good = [u.replace("127.0.0.1", "localhost") if i % 2 else u for i, u in enumerate(good)]
    bad = [h.url(f"/bad{j}.xml") for h in hostiles for j in range(HOSTILE_PER_SERVER)]
    config = farm_config(tmp_path, good, bad, hook)
    db = tmp_path / "fw.db"
    for cycle in range(1, CYCLES + 1):
        for i in range(GOOD):
            server.set(f"/good{i}.xml", STEPS[cycle * (i + 1) % len(STEPS)])
        _, out, _ = run(config)
        statuses = {f["name"]: f["status"] for f in out["feeds"]}
        assert all(statuses[f"good{i}"] in ("ok", "unchanged") for i in range(GOOD)), (cycle, statuses)
        assert all(s in ("ok", "unchanged", "not_modified", "error") for s in statuses.values())
        assert all("\n" not in (f["error"] or "") for f in out["feeds"])
        changes = recorded(db)
        assert [delivered(hook, f"good{i}") for i in range(GOOD)] == [changes[f"good{i}"] for i in range(GOOD)]

    # watch through the same farm: the good feeds change twice more while it runs
    log = tmp_path / "watch.log"
    with log.open("w") as err:
        proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        for step in (CYCLES + 1, CYCLES + 2):
            before = sum(recorded(db)[f"good{i}"] for i in range(GOOD))
            for i in range(GOOD):
                server.set(f"/good{i}.xml", STEPS[(step * 7 + i) % len(STEPS)])
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and sum(recorded(db)[f"good{i}"] for i in range(GOOD)) <= before:
                time.sleep(0.3)
            time.sleep(1.5)     # a few more cycles of hostility
            assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text and "internal error" not in text
    changes = recorded(db)
    assert all(changes[f"good{i}"] >= CYCLES for i in range(GOOD)), changes
    assert [delivered(hook, f"good{i}") for i in range(GOOD)] == [changes[f"good{i}"] for i in range(GOOD)]
    served = Counter[str]()
    for h in hostiles:
        served.update(h.served)
    assert len(served) >= len(HOSTILE) - 3, served      # the seeded draw really tried (nearly) every class
