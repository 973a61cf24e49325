"""Several `watch` workers sharing one PostgreSQL database (issue 7): real processes, real server."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.helpers import FeedServer, feedwatch_cmd, write_config
from tests.receivers import Webhook

INTERVAL = 4.0


def feed_body(i: int, rounds: list[int]) -> bytes:
    items = "".join(f"<item><guid>f{i}-{j}</guid><title>f{i}-item{j}</title><description>&lt;p&gt;Feed {i} item "
                    f"{j}, revision {r}.&lt;/p&gt;</description></item>" for j, r in enumerate(rounds))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>f{i}</title>{items}</channel></rss>'.encode()


def start_workers(config: Path, n: int, tmp_path: Path) -> list[subprocess.Popen[str]]:
    procs = []
    for k in range(n):
        with (tmp_path / f"worker{k}.log").open("w") as log:   # the child keeps its own descriptor
            procs.append(subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"], stdout=log,
                                          stderr=log, text=True, env={**os.environ, "FEEDWATCH_WORKER_ID": f"w{k}"}))
    return procs


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Db:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def scalar(self, sql: str) -> int:
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(text(sql)).scalar() or 0)
        except Exception:
            return 0


@pytest.fixture
def db(postgres_url: str) -> Iterator[Db]:
    d = Db(postgres_url)
    yield d
    d.close()


def setup_farm(tmp_path: Path, server: FeedServer, hook: Webhook, postgres_url: str, feeds: int,
               delay: float = 0.0, lease: str = "10s") -> Path:
    lines = [f"database: {postgres_url}", "polling: {concurrency: 8, per_host: 8, lease: " + lease + "}",
             f"defaults: {{interval: {INTERVAL:g}s, notify: [hook]}}",
             f"targets: {{hook: {{urls: ['{hook.url()}']}}}}", "feeds:"]
    for i in range(feeds):
        url = server.set(f"/f{i}.xml", feed_body(i, [0, 0, 0]), delay=delay)
        lines.append(f"  - {{name: f{i}, url: '{url}'}}")
    return write_config(tmp_path / "feedwatch.yaml", "\n".join(lines) + "\n")


def delivered(hook: Webhook) -> Counter[tuple[str, str]]:
    """(document title, version) of every message the receiver got."""
    keys = []
    for body in hook.bodies:
        title = re.sub(r"^feedwatch: | changed$", "", body["title"])
        version = re.search(r"\(v(\d+)\)", body["message"])
        keys.append((title, version.group(1) if version else "?"))
    return Counter(keys)


@pytest.mark.slow
def test_four_workers_300_feeds_every_change_and_delivery_exactly_once(
        tmp_path: Path, server: FeedServer, hook: Webhook, postgres_url: str, db: Db) -> None:
    feeds, rounds = 300, 3
    config = setup_farm(tmp_path, server, hook, postgres_url, feeds)
    procs = start_workers(config, 4, tmp_path)
    try:
        wait_until(lambda: db.scalar("SELECT count(*) FROM feeds WHERE polls > 0") == feeds, 120, "the baseline")
        revisions = [0, 0, 0]
        for r in range(1, rounds + 1):
            revisions[(r - 1) % 3] = r                      # one item of every feed changes per round
            for i in range(feeds):
                server.set(f"/f{i}.xml", feed_body(i, revisions))
            wait_until(lambda r=r: db.scalar("SELECT count(*) FROM changes WHERE kind = 'changed'") == feeds * r,
                       120, f"round {r}'s changes")
        wait_until(lambda: len(hook.bodies) >= feeds * rounds and
                   db.scalar("SELECT count(*) FROM deliveries WHERE status <> 'sent'") == 0, 120, "deliveries")
        time.sleep(1.0)                                     # let any (wrong) duplicate arrive
    finally:
        stop(procs)
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    # Every change recorded exactly once ...
    assert db.scalar("SELECT count(*) FROM changes WHERE kind = 'changed'") == feeds * rounds
    assert db.scalar("SELECT count(*) FROM (SELECT document_id, version FROM changes GROUP BY document_id, version "
                     "HAVING count(*) > 1) d") == 0
    # ... every delivery sent exactly once (counted at the receiver) ...
    got = delivered(hook)
    assert len(got) == feeds * rounds and set(got.values()) == {1}, got.most_common(3)
    # ... the work was shared ...
    logs = [(tmp_path / f"worker{k}.log").read_text() for k in range(4)]
    polls_per_worker = [log.count(" status=") for log in logs]
    assert all(n > 0 for n in polls_per_worker), polls_per_worker
    # ... and no feed was polled twice in one due period.
    for i in range(feeds):
        times = [h.at for h in server.hits if h.path == f"/f{i}.xml"]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) > INTERVAL * 0.85 - 0.3, (i, gaps)


@pytest.mark.slow
def test_a_killed_workers_feeds_are_taken_over_after_its_lease(
        tmp_path: Path, server: FeedServer, hook: Webhook, postgres_url: str, db: Db) -> None:
    feeds = 40
    config = setup_farm(tmp_path, server, hook, postgres_url, feeds, delay=0.4, lease="3s")
    procs = start_workers(config, 4, tmp_path)
    try:
        wait_until(lambda: db.scalar("SELECT count(*) FROM feeds WHERE polls > 0") == feeds, 120, "the baseline")
        for i in range(feeds):
            server.set(f"/f{i}.xml", feed_body(i, [1, 0, 0]), delay=0.4)
        # Kill worker 0 while it holds leases on feeds it is polling.
        wait_until(lambda: db.scalar("SELECT count(*) FROM feeds WHERE lease_owner LIKE 'w0:%'") > 0, 60,
                   "worker 0 to hold leases")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        with db.engine.connect() as conn:
            held = [r[0] for r in conn.execute(text("SELECT name FROM feeds WHERE lease_owner LIKE 'w0:%'"))]
        wait_until(lambda: db.scalar("SELECT count(*) FROM changes WHERE kind = 'changed'") == feeds, 120,
                   "every change after the kill")
        wait_until(lambda: db.scalar("SELECT count(*) FROM deliveries WHERE status <> 'sent'") == 0, 60, "deliveries")
        time.sleep(1.0)
    finally:
        stop(procs[1:])
    assert procs[0].returncode == -signal.SIGKILL
    assert held, "worker 0 held no lease when it was killed"
    # w0 is another "host" (FEEDWATCH_WORKER_ID), so its leases had to expire; then the others took over.
    assert db.scalar("SELECT count(*) FROM feeds WHERE lease_owner LIKE 'w0:%'") == 0
    survivors = "".join((tmp_path / f"worker{k}.log").read_text() for k in (1, 2, 3))
    for name in held:
        assert re.search(rf"feed={name} status=ok documents=3 changes=1", survivors), name
    assert db.scalar("SELECT count(*) FROM changes WHERE kind = 'changed'") == feeds   # nothing lost, nothing twice
    got = delivered(hook)
    assert len(got) == feeds and set(got.values()) == {1}


@pytest.mark.slow
def test_watch_survives_the_database_dropping_its_connections(
        tmp_path: Path, server: FeedServer, hook: Webhook, postgres_url: str, db: Db) -> None:
    config = setup_farm(tmp_path, server, hook, postgres_url, feeds=3)
    [proc] = start_workers(config, 1, tmp_path)
    try:
        wait_until(lambda: db.scalar("SELECT count(*) FROM feeds WHERE polls > 0") == 3, 60, "the baseline")
        # What a server restart does to a client: every connection of feedwatch's is cut.
        # Only this test's database: other test sessions (pytest-xdist workers) share the server.
        killed = db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = 'feedwatch' AND datname = current_database()")
        assert killed >= 1
        for i in range(3):
            server.set(f"/f{i}.xml", feed_body(i, [1, 0, 0]))
        wait_until(lambda: db.scalar("SELECT count(*) FROM changes WHERE kind = 'changed'") == 3, 60,
                   "the changes after the connections were cut")
        assert proc.poll() is None
    finally:
        stop([proc])
    assert proc.returncode == 0
