"""`kill -9` of a real `feedwatch run` in the middle of polling: the next run records each change once."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import FeedServer, corpus_steps, feedwatch_cmd, run_process, write_config

FEEDS = 12


def _setup(tmp_path: Path, server: FeedServer, step: int) -> Path:
    body = corpus_steps()[step].read_bytes()
    lines = ["database: sqlite:///fw.db", "polling:", "  concurrency: 3", "  per_host: 3", "feeds:"]
    for i in range(FEEDS):
        # Slow answers, so that the kill lands while some polls are in flight and others are done.
        server.set(f"/feed{i}.xml", body, delay=0.15 + 0.1 * (i % 4))
        lines += [f"  - name: feed{i}", f"    url: {server.url(f'/feed{i}.xml')}"]
    return write_config(tmp_path / "feedwatch.yaml", "\n".join(lines) + "\n")


def _polls(db: Path) -> int:
    """Committed polls so far (the sum of every feed's poll counter)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT coalesce(sum(polls), 0) FROM feeds").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _kill_mid_run(config: Path, db: Path, server: FeedServer, after_polls: int) -> int:
    """Start a run, SIGKILL it once `after_polls` polls have committed; return how many had."""
    start = _polls(db)
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "run", "--force"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while _polls(db) < start + after_polls and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    return _polls(db) - start


def _changes(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT f.name, c.kind, c.version FROM changes c JOIN feeds f ON f.id = c.feed_id"
                            " ORDER BY f.name, c.document_id, c.version").fetchall()


@pytest.mark.slow
def test_kill_9_mid_poll_then_every_change_recorded_exactly_once(tmp_path: Path, server: FeedServer) -> None:
    db = tmp_path / "fw.db"
    config = _setup(tmp_path, server, step=54)       # 4 documents per feed
    killed_at = _kill_mid_run(config, db, server, after_polls=2)
    assert 2 <= killed_at < FEEDS, f"{killed_at} feeds were committed before the kill"

    # The next run finds the dead run's leases stale, polls what was not committed, and nothing twice.
    result = run_process("--config", str(config), "run", "--json", cwd=tmp_path)
    assert result.code == 0, result.err
    polled_now = {f["name"] for f in result.json()["feeds"]}
    assert len(polled_now) == FEEDS - killed_at
    added = Counter(name for name, kind, _ in _changes(db) if kind == "added")
    assert added == {f"feed{i}": 4 for i in range(FEEDS)}

    # Second round: every feed changes (step 55: mentoring), killed again mid-run.
    for i in range(FEEDS):
        server.set(f"/feed{i}.xml", corpus_steps()[55].read_bytes(), delay=0.15 + 0.1 * (i % 4))
    killed_at = _kill_mid_run(config, db, server, after_polls=3)
    assert 3 <= killed_at < FEEDS
    result = run_process("--config", str(config), "run", "--json", cwd=tmp_path)
    assert result.code == 0, result.err
    changed = Counter(name for name, kind, _ in _changes(db) if kind == "changed")
    assert changed == {f"feed{i}": 1 for i in range(FEEDS)}
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        dup = conn.execute("SELECT count(*) FROM (SELECT document_id, number FROM versions "
                           "GROUP BY document_id, number HAVING count(*) > 1)").fetchone()
        assert dup == (0,)
        assert conn.execute("SELECT max(latest_version) FROM documents").fetchone() == (2,)
