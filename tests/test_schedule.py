"""Running for real: `watch` cadence (on a controlled clock) and clean stop, overlapping runs, Retry-After
back-off (issue 6)."""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine

from monitor.schedule import Metrics, Watcher
from tests.helpers import FeedServer, corpus_steps, feedwatch_cmd, run_cli, run_process, write_config

STEP = corpus_steps()[54].read_bytes()


def _changes(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT f.name, c.kind, c.version FROM changes c JOIN feeds f ON f.id = c.feed_id "
                            "ORDER BY c.id").fetchall()


class SteppedWatcher(Watcher):
    """`watch` on a controllable clock: where the real loop would sleep, time is moved forward instead
    (time-machine moves every clock feedwatch reads: datetime.now and time.time). Polls, database and HTTP
    are real; only the waiting is skipped, so cadence is exact whatever the machine's load."""

    def __init__(self, store: Any, settings: Any, clock: time_machine.Coordinates, server: FeedServer,
                 until: float, on_time: Callable[[float], None]) -> None:
        super().__init__(store, settings, Metrics())
        self.clock, self.server, self.until, self.on_time = clock, server, until, on_time
        self.now = 0.0                                  # seconds since the start, on the controlled clock
        self.pauses: list[float] = []
        self.polled: dict[str, list[float]] = {}       # path -> when it was polled
        self._seen = 0

    async def _pause(self, delay: float) -> None:     # the one place the real loop lets time pass
        if self.stop.is_set():
            return
        for hit in self.server.hits[self._seen:]:      # everything fetched in the cycle that just ran
            self.polled.setdefault(hit.path, []).append(round(self.now, 3))
        self._seen = len(self.server.hits)
        self.pauses.append(delay)
        self.clock.shift(delay)
        self.now += delay
        self.on_time(self.now)
        if self.now >= self.until:
            self.stop.set()


def test_watch_polls_each_feed_at_its_cadence_on_a_controlled_clock(tmp_path: Path, server: FeedServer) -> None:
    from monitor import config
    from monitor.schedule import MAX_SLEEP
    from storage.store import Store

    random.seed(16)
    fast, slow = server.set("/fast.xml", STEP), server.set("/slow.xml", STEP)
    settings = config.loads(f"""database: sqlite:///{tmp_path / 'fw.db'}
feeds:
  - {{name: fast, url: "{fast}", interval: 1s}}
  - {{name: slow, url: "{slow}", interval: 3s}}
""")

    def edit_once(now: float) -> None:      # a change while watching, at 4.5 s
        if now >= 4.5 and server.routes["/fast.xml"].body == STEP:
            server.set("/fast.xml", corpus_steps()[55].read_bytes())

    with time_machine.travel(datetime(2026, 3, 1, 12, tzinfo=UTC), tick=False) as clock, \
            Store.open(settings.database_url) as store:
        watcher = SteppedWatcher(store, settings, clock, server, until=60.0, on_time=edit_once)
        assert asyncio.run(watcher.run()) == 0
    fast_polls, slow_polls = watcher.polled["/fast.xml"], watcher.polled["/slow.xml"]
    # Each poll is due one interval (+-10% jitter) after the last; watch wakes 50 ms after a feed is due.
    fast_gaps = [b - a for a, b in itertools.pairwise(fast_polls)]
    slow_gaps = [b - a for a, b in itertools.pairwise(slow_polls)]
    assert fast_polls[0] == slow_polls[0] == 0.0
    assert all(0.9 + 0.05 - 1e-6 <= g <= 1.1 + 0.05 + 1e-6 for g in fast_gaps), fast_gaps
    assert all(2.7 + 0.05 - 1e-6 <= g <= 3.3 + 0.05 + 1e-6 for g in slow_gaps), slow_gaps
    assert 60 / 1.15 <= len(fast_gaps) <= 60 / 0.95 and 60 / 3.35 <= len(slow_gaps) <= 60 / 2.75
    # It sleeps until the next feed is due: no busy loop, no wake-up with nothing due, never over a minute.
    assert len(watcher.pauses) <= len(fast_polls) + len(slow_polls) and max(watcher.pauses) <= MAX_SLEEP
    # Nothing lost: the change seen while watching is recorded once; no lease is left behind.
    assert _changes(tmp_path / "fw.db").count(("fast", "changed", 2)) == 1
    with sqlite3.connect(tmp_path / "fw.db") as conn:
        assert conn.execute("SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL").fetchone() == (0,)


def _committed(db: Path) -> bool:
    try:
        return db.exists() and bool(_changes(db))
    except sqlite3.OperationalError:     # the schema is not there yet
        return False


def test_sigterm_wakes_a_sleeping_watch_which_stops_cleanly(tmp_path: Path, server: FeedServer) -> None:
    url = server.set("/f.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: f, url: \"{url}\", interval: 1h}}\n")
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _committed(tmp_path / "fw.db") and time.monotonic() < deadline:   # the first poll is in
            time.sleep(0.1)
        assert server.count("/f.xml") == 1
    finally:
        proc.send_signal(signal.SIGTERM)     # it sleeps for up to a minute: only waking on the signal stops it
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing the polls in flight, then stopping" in err and err.rstrip().endswith("stopped")
    with sqlite3.connect(tmp_path / "fw.db") as conn:
        assert conn.execute("SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL").fetchone() == (0,)


@pytest.mark.slow
def test_sigterm_finishes_the_poll_in_flight(tmp_path: Path, server: FeedServer) -> None:
    arrived = threading.Event()

    def slow_feed(req: BaseHTTPRequestHandler) -> None:
        arrived.set()
        time.sleep(1.5)
        req.send_response(200)
        req.send_header("Content-Type", "application/rss+xml")
        req.send_header("Content-Length", str(len(STEP)))
        req.end_headers()
        req.wfile.write(STEP)

    server.set("/slow.xml", handler=slow_feed)
    config = write_config(tmp_path / "feedwatch.yaml", f"""database: sqlite:///{tmp_path / 'fw.db'}
feeds:
  - {{name: slow, url: "{server.url('/slow.xml')}", interval: 1h}}
""")
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert arrived.wait(15)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert Counter(kind for _, kind, _ in _changes(tmp_path / "fw.db")) == {"added": 4}   # committed, not lost


@pytest.mark.slow
def test_two_concurrent_runs_poll_every_feed_once(tmp_path: Path, server: FeedServer) -> None:
    lines = [f"database: sqlite:///{tmp_path / 'fw.db'}", "feeds:"]
    for i in range(30):
        lines.append(f"  - {{name: f{i}, url: \"{server.set(f'/f{i}.xml', STEP, delay=0.05)}\"}}")
    config = write_config(tmp_path / "feedwatch.yaml", "\n".join(lines) + "\n")
    procs = [subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "run", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    assert Counter(h.path for h in server.hits) == {f"/f{i}.xml": 1 for i in range(30)}
    added = Counter(name for name, kind, _ in _changes(tmp_path / "fw.db") if kind == "added")
    assert added == {f"f{i}": 4 for i in range(30)}
    with sqlite3.connect(tmp_path / "fw.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_retry_after_keeps_the_host_quiet_until_then(tmp_path: Path, server: FeedServer) -> None:
    url = server.set("/busy.xml", b"slow down", status=429, headers={"Retry-After": "2"})
    other = server.set("/other.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"""database: sqlite:///{tmp_path / 'fw.db'}
feeds:
  - {{name: busy, url: "{url}"}}
  - {{name: other, url: "{other}"}}
""")
    first = run_cli("--config", str(config), "run", "--json", "--feed", "busy")
    assert first.json()["feeds"][0]["error"] == "fetch: busy: HTTP 429 from 127.0.0.1 (retry after 2 s)"
    hits = server.count()
    server.set("/busy.xml", STEP)
    early = run_cli("--config", str(config), "run", "--json")     # (--force would poll now: test_wedges)
    assert early.json()["feeds"] == [] and server.count() == hits     # not even the other feed on that host
    time.sleep(2.2)
    late = run_cli("--config", str(config), "run", "--force", "--json")
    assert {f["name"]: f["status"] for f in late.json()["feeds"]} == {"busy": "ok", "other": "ok"}


def test_retry_after_holds_back_only_the_server_that_asked(tmp_path: Path, server: FeedServer) -> None:
    """Another server on the same host (another port) is another server: its feeds are polled as due."""
    url = server.set("/busy.xml", b"slow down", status=503, headers={"Retry-After": "120"})
    elsewhere = FeedServer()
    try:
        other = elsewhere.set("/other.xml", STEP)
        config = write_config(tmp_path / "feedwatch.yaml", f"""database: sqlite:///{tmp_path / 'fw.db'}
feeds:
  - {{name: busy, url: "{url}"}}
  - {{name: other, url: "{other}"}}
""")
        assert run_cli("--config", str(config), "run", "--json", "--feed", "busy").code == 1
        later = run_cli("--config", str(config), "-v", "run", "--json")
        assert {f["name"]: f["status"] for f in later.json()["feeds"]} == {"other": "ok"}, later.err
        assert elsewhere.count("/other.xml") == 1 and server.count("/busy.xml") == 1
        status = run_cli("--config", str(config), "status").out
        assert f"127.0.0.1:{urlsplit(url).port}" in status, status     # who asked to wait, port and all
    finally:
        elsewhere.close()


def test_ttl_and_cache_control_never_poll_more_often(tmp_path: Path, server: FeedServer) -> None:
    body = STEP.replace(b"<language>en</language>", b"<language>en</language><ttl>1</ttl>")
    url = server.set("/ttl.xml", body, headers={"Cache-Control": "max-age=1"})
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: ttl, url: \"{url}\", interval: 1h}}\n")
    run_cli("--config", str(config), "run")
    time.sleep(1.2)
    assert run_cli("--config", str(config), "run", "--json").json()["feeds"] == []   # due in an hour, not in 1 s
    assert server.count("/ttl.xml") == 1


def test_run_with_nothing_due_does_no_start_up_work(tmp_path: Path, server: FeedServer) -> None:
    url = server.set("/f.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: f, url: \"{url}\"}}\n")
    assert run_process("--config", str(config), "run").code == 0
    # A cron run with nothing due: polls nothing and imports none of the heavy machinery.
    probe = ("import sys; from monitor.cli import main; code = main(['--config', sys.argv[1], 'run', '--json']); "
             "heavy = {'aiohttp', 'feedparser', 'apprise', 'alembic', 'lxml', 'diff_match_patch', 'jinja2'}; "
             "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), code, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[] 0"
    assert '"feeds": []' in result.stdout and server.count() == 1


def test_a_shortened_interval_applies_from_the_last_poll_not_after_the_old_wait(tmp_path: Path,
                                                                               server: FeedServer) -> None:
    """interval 1d -> 1h: the feed is due an hour after its last poll, not a day after it. A lengthened
    interval leaves the due time alone (it grows from the next poll on)."""
    url = server.set("/f.xml", STEP)
    config = tmp_path / "feedwatch.yaml"

    def configure(interval: str) -> None:
        write_config(config, f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                     f"feeds:\n  - {{name: f, url: \"{url}\", interval: {interval}}}\n")

    def next_due() -> float:
        [feed] = run_cli("--config", str(config), "status", "--json").json()["feeds"]
        return (datetime.fromisoformat(feed["next_due"]) - datetime.now(UTC)).total_seconds()

    with time_machine.travel(datetime(2026, 3, 1, 12, tzinfo=UTC), tick=False) as clock:
        configure("1d")
        assert run_cli("--config", str(config), "run").code == 0
        assert next_due() > 0.8 * 86400
        configure("1h")
        assert run_cli("--config", str(config), "run", "--json").json()["feeds"] == []   # not due yet ...
        assert 0 < next_due() <= 1.1 * 3600
        clock.shift(1.2 * 3600)
        [polled] = run_cli("--config", str(config), "run", "--json").json()["feeds"]       # ... but soon
        assert polled["name"] == "f" and server.count() == 2
        configure("1d")
        assert run_cli("--config", str(config), "run", "--json").json()["feeds"] == []
        assert 0 < next_due() <= 1.1 * 3600


def test_a_run_that_finds_the_due_feeds_taken_says_so_not_a_due_time_in_the_past(
        tmp_path: Path, server: FeedServer) -> None:
    """Two overlapping runs: the one left with nothing said "nothing due; next at" a time already past."""
    from storage.store import Store

    url = server.set("/f.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: f, url: \"{url}\"}}\n")
    with Store.open(f"sqlite:///{tmp_path / 'fw.db'}") as store:
        [feed_id] = store.sync_feeds([("f", url)]).values()
        assert store.claim_due_feeds([feed_id], "another-host:4242", limit=1, lease=600)
    result = run_cli("--config", str(config), "run")
    assert result.code == 0 and server.count() == 0
    assert "nothing polled: the due feeds are being polled by another feedwatch right now" in result.err
    assert "nothing due" not in result.err


@pytest.mark.slow
def test_a_slow_feed_does_not_hold_back_what_the_others_found(tmp_path: Path, server: FeedServer) -> None:
    """`watch` delivered only after every poll of a cycle had ended: one feed trickling its answer for
    12 s held back the notification of a change another feed had recorded at once."""
    from tests.receivers import Webhook

    hook = Webhook()
    finished = threading.Event()

    def slow(req: BaseHTTPRequestHandler) -> None:
        time.sleep(12)
        finished.set()
        FeedServer._send(req, 200, STEP, {"Content-Type": "application/rss+xml"})

    fast = server.set("/fast.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"targets:\n  chat: {{urls: ['{hook.url()}']}}\nfeeds:\n"
                          f"  - {{name: slow, url: '{server.set('/slow.xml', STEP)}', interval: 1s, notify: [chat]}}\n"
                          f"  - {{name: fast, url: '{fast}', interval: 1s, notify: [chat]}}\n")
    assert run_process("--config", str(config), "run").code == 0
    server.set("/fast.xml", corpus_steps()[55].read_bytes())
    server.set("/slow.xml", handler=slow)
    time.sleep(1.5)                                        # both due when watch starts: one cycle polls both
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not hook.bodies and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hook.bodies and not finished.is_set()      # delivered while the slow poll was still going
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        hook.down()
