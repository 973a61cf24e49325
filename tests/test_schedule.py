"""Running for real: `watch` cadence and clean stop, overlapping runs, Retry-After back-off (issue 6)."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.helpers import FeedServer, corpus_steps, feedwatch_cmd, run_cli, run_process, write_config

STEP = corpus_steps()[54].read_bytes()


def _changes(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT f.name, c.kind, c.version FROM changes c JOIN feeds f ON f.id = c.feed_id "
                            "ORDER BY c.id").fetchall()


def _poll_times(server: FeedServer, path: str) -> list[float]:
    return [h.at for h in server.hits if h.path == path]


@pytest.mark.slow
def test_watch_polls_at_each_feeds_cadence_and_stops_cleanly_on_sigterm(tmp_path: Path, server: FeedServer) -> None:
    fast, slow = server.set("/fast.xml", STEP), server.set("/slow.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"""database: sqlite:///{tmp_path / 'fw.db'}
feeds:
  - {{name: fast, url: "{fast}", interval: 1s}}
  - {{name: slow, url: "{slow}", interval: 3s}}
""")
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4.5)
        server.set("/fast.xml", corpus_steps()[55].read_bytes())      # a change while watching
        time.sleep(3.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert time.monotonic() - stopped < 5
    fast_polls, slow_polls = _poll_times(server, "/fast.xml"), _poll_times(server, "/slow.xml")
    # ~8 s of watching: the 1 s feed about 8 times, the 3 s feed about 3 times (intervals have +-10% jitter).
    assert 5 <= len(fast_polls) <= 10, fast_polls
    assert 2 <= len(slow_polls) <= 4, slow_polls
    gaps = [b - a for a, b in itertools.pairwise(fast_polls)]
    assert min(gaps) >= 0.85 and max(gaps) < 2.5, gaps
    slow_gaps = [b - a for a, b in itertools.pairwise(slow_polls)]
    assert min(slow_gaps) >= 2.6, slow_gaps
    # Nothing lost: the change seen while watching is recorded once; no lease is left behind.
    assert _changes(tmp_path / "fw.db").count(("fast", "changed", 2)) == 1
    with sqlite3.connect(tmp_path / "fw.db") as conn:
        assert conn.execute("SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL").fetchone() == (0,)
    assert "stopped" in err


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
             "heavy = {'httpx', 'feedparser', 'apprise', 'alembic', 'lxml', 'diff_match_patch', 'jinja2'}; "
             "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), code, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[] 0"
    assert '"feeds": []' in result.stdout and server.count() == 1
