"""Wedges (issue 13): one hostile header, body or value must never stop the whole monitor.

Each case runs against a real server on 127.0.0.1 and, where a crash must be observed, `feedwatch` as a
subprocess. A healthy feed on another host ("localhost" next to "127.0.0.1", same server) must go on being
polled and delivered in the same cycle.
"""

from __future__ import annotations

import gzip
import json
import random
import sqlite3
import string
import subprocess
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from monitor.config import FeedSettings
from monitor.fetch import parse_retry_after
from monitor.poll import next_due
from tests.helpers import FeedServer, corpus_steps, empty_postgres, feedwatch_cmd, run_cli, run_process, write_config
from tests.receivers import Webhook

STEP = corpus_steps()[54].read_bytes()
NEXT = corpus_steps()[55].read_bytes()


def two_feeds(tmp_path: Path, server: FeedServer, hook: Webhook, database: str | None = None) -> Path:
    """'bad' on 127.0.0.1 and 'good' on localhost (another host for back-offs), both notifying the hook."""
    bad = server.set("/bad.xml", STEP)
    good = server.set("/good.xml", STEP).replace("127.0.0.1", "localhost")
    database = database or f"sqlite:///{tmp_path / 'fw.db'}"
    return write_config(tmp_path / "feedwatch.yaml", f"""database: {database}
defaults: {{timeout: 5s, notify: [hook]}}
targets:
  hook: {{urls: ["{hook.url()}"]}}
feeds:
  - {{name: bad, url: "{bad}"}}
  - {{name: good, url: "{good}"}}
""")


def assert_good_change_delivered(hook: Webhook, before: int) -> None:
    """The healthy feed's change reached the webhook in that same run."""
    new = [json.dumps(b) for b in hook.bodies[before:]]
    assert any("**good**" in b for b in new), new


# ---------------------------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("retry_after", ["99999999999999", "Fri, 31 Dec 9999 23:59:59 GMT",
                                         "9" * 5000])
def test_huge_or_far_future_retry_after_is_capped_and_the_run_survives(
        retry_after: str, tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    config = two_feeds(tmp_path, server, hook)
    assert run_process("--config", str(config), "run").code == 0          # baselines
    server.set("/bad.xml", b"slow down", status=429, headers={"Retry-After": retry_after})
    server.set("/good.xml", NEXT)
    result = run_process("--config", str(config), "run", "--force", "--json")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err and "OverflowError" not in result.err
    feeds = {f["name"]: f for f in result.json()["feeds"]}
    assert feeds["bad"]["error"] == "fetch: bad: HTTP 429 from 127.0.0.1 (retry after 86400 s)"
    assert feeds["good"]["status"] == "ok"
    assert_good_change_delivered(hook, 0)
    # The host waits at most a day, and `status` says so.
    status = run_cli("--config", str(config), "status", "--json").json()
    [host] = status["hosts"]
    until = datetime.fromisoformat(host["backoff_until"].replace("Z", "+00:00"))
    server_name = f"127.0.0.1:{urlsplit(server.url('/bad.xml')).port}"     # the server that asked: host and port
    assert host["host"] == server_name and until <= datetime.now(UTC) + timedelta(days=1, minutes=1)
    assert "HTTP 429" in host["reason"]
    # Every later run still works (before the fix each one crashed the same way).
    again = run_process("--config", str(config), "run", "--force", "--json")
    assert again.code == 1 and "Traceback" not in again.err


def test_retry_after_values_are_bounded() -> None:
    from monitor.fetch import MAX_RETRY_AFTER

    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("0000120") == 120.0
    assert parse_retry_after("99999999999999") == MAX_RETRY_AFTER
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT") == MAX_RETRY_AFTER
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after("") is None


def test_plain_run_says_why_a_backed_off_host_waits_and_force_polls_it(
        tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    busy = server.set("/busy.xml", b"down for maintenance", status=503, headers={"Retry-After": "120"})
    other = server.set("/other.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"""database: sqlite:///{tmp_path / 'fw.db'}
feeds:
  - {{name: busy, url: "{busy}"}}
  - {{name: other, url: "{other}", interval: 1m}}
""")
    first = run_cli("--config", str(config), "run", "--json", "--feed", "busy")
    assert first.json()["feeds"][0]["error"] == "fetch: busy: HTTP 503 from 127.0.0.1 (retry after 120 s)"
    server.set("/busy.xml", STEP)
    hits = server.count()
    # Without --force: nothing on that host is polled, and the run says why.
    quiet = run_cli("--config", str(config), "run", "--json")
    assert quiet.json()["feeds"] == [] and server.count() == hits
    server_name = f"127.0.0.1:{urlsplit(busy).port}"
    assert f"host {server_name} asked to wait until" in quiet.err and "HTTP 503" in quiet.err
    status = run_cli("--config", str(config), "status")
    assert f"host {server_name}: backed off until" in status.out and "(retry after 120 s)" in status.out
    # --force means now: both feeds of the backed-off host are polled, and no "nothing due" is said.
    forced = run_cli("--config", str(config), "run", "--force", "--json")
    assert {f["name"]: f["status"] for f in forced.json()["feeds"]} == {"busy": "ok", "other": "ok"}
    assert "nothing due" not in forced.err


def test_error_backoff_survives_thousands_of_consecutive_failures() -> None:
    from monitor.fetch import MAX_RETRY_AFTER
    from monitor.schedule import MAX_SLEEP, retry_delay

    feed = FeedSettings(name="f", url="http://example.org/f.xml", interval=3600.0)
    now = datetime.now(UTC)
    assert next_due(feed, now, errors=5000) == now + timedelta(seconds=3600)
    assert next_due(feed, now, errors=5000, retry_after=MAX_RETRY_AFTER) == now + timedelta(days=1)
    assert retry_delay(1) == 2.0 and retry_delay(100_000) == MAX_SLEEP


# ---------------------------------------------------------------------------------------------- bodies, redirects


@pytest.mark.parametrize("target", ["data:text/xml,<rss version='2.0'/>", "javascript:alert(1)",
                                    "file:///etc/passwd"])
def test_redirect_to_a_non_http_url_is_a_one_line_fetch_error(target: str, tmp_path: Path, server: FeedServer,
                                                             hook: Webhook) -> None:
    config = two_feeds(tmp_path, server, hook)
    assert run_cli("--config", str(config), "run").code == 0
    server.set("/bad.xml", b"", status=302, headers={"Location": target})
    server.set("/good.xml", NEXT)
    result = run_process("--config", str(config), "run", "--force", "--json")
    assert result.code == 1
    scheme = target.split(":")[0]
    feeds = {f["name"]: f for f in result.json()["feeds"]}
    assert feeds["bad"]["error"] == (f"fetch: bad: redirected by 127.0.0.1 to a {scheme}: URL (only http and "
                                     "https redirects are followed)")
    assert "internal error" not in result.err and "Traceback" not in result.err
    assert feeds["good"]["status"] == "ok"
    assert_good_change_delivered(hook, 0)


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(("name", "encode"), [("gzip", gzip.compress), ("zlib", zlib.compress),
                                              ("raw", _raw_deflate)])
def test_deflate_labelled_bodies_decode_whatever_their_wrapping(name: str, encode: object, tmp_path: Path,
                                                               server: FeedServer) -> None:
    assert callable(encode)
    url = server.set("/f.xml", encode(STEP), headers={"Content-Encoding": "deflate"})
    config = write_config(tmp_path / "feedwatch.yaml",
                          f"database: sqlite:///{tmp_path / 'fw.db'}\nfeeds:\n  - {{name: f, url: \"{url}\"}}\n")
    result = run_cli("--config", str(config), "run", "--json")
    assert result.code == 0, result.json()
    assert result.json()["feeds"][0]["documents"] == 4


# ---------------------------------------------------------------------------------------------- PostgreSQL


def test_postgres_nul_in_a_lenient_feed_is_stored_and_nothing_is_aborted(
        tmp_path: Path, server: FeedServer, hook: Webhook, postgres_url: str) -> None:
    config = two_feeds(tmp_path, server, hook, postgres_url)
    text = config.read_text().replace('url: "' + server.url("/bad.xml") + '"',
                                      'url: "' + server.url("/bad.xml") + '", lenient: true')
    config.write_text(text)
    assert run_process("--config", str(config), "run").code == 0
    nul = STEP.replace(b"<title>Community: Code Of Conduct</title>", b"<title>Code&#0;Of\x00Conduct</title>", 1)
    nul = nul.replace(b"</guid>", b"&#0;</guid>", 1)
    assert nul != STEP
    server.set("/bad.xml", nul)
    server.set("/good.xml", NEXT)
    result = run_process("--config", str(config), "run", "--force", "--json")
    assert result.code == 0, result.err
    feeds = {f["name"]: f for f in result.json()["feeds"]}
    assert feeds["bad"]["status"] == "ok" and feeds["good"]["status"] == "ok"
    titles = [c["title"] for c in result.json()["changes"] if c["feed"] == "bad"]
    assert "CodeOfConduct" in titles
    assert_good_change_delivered(hook, 0)


def test_postgres_refusing_one_feeds_data_is_that_feeds_error(
        tmp_path: Path, server: FeedServer, hook: Webhook, postgres_url: str) -> None:
    """A guid too big for PostgreSQL's index (program limit, SQLSTATE 54000) once aborted every run."""
    config = two_feeds(tmp_path, server, hook, postgres_url)
    assert run_process("--config", str(config), "run").code == 0
    rng = random.Random(13)
    guid = "".join(rng.choice(string.ascii_letters) for _ in range(12_000)).encode()
    server.set("/bad.xml", STEP.replace(b"</channel>", b"<item><guid>" + guid + b"</guid><title>huge</title>"
                                        b"<description>x</description></item></channel>"))
    server.set("/good.xml", NEXT)
    result = run_process("--config", str(config), "run", "--force", "--json")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    feeds = {f["name"]: f for f in result.json()["feeds"]}
    assert feeds["bad"]["error"].startswith("feed: bad: the database refused this feed's data: index row")
    assert feeds["good"]["status"] == "ok"
    assert_good_change_delivered(hook, 0)
    assert postgres_url.split("@")[0] not in result.err     # no database URL (with user) in feed errors


def test_watch_waits_its_back_off_while_the_database_refuses_writes_and_resumes(
        tmp_path: Path, server: FeedServer, postgres_url: str) -> None:
    """The database answers reads but refuses writes (a standby during a failover; the same path as any
    cycle that fails while the feeds are overdue): `watch` must wait its whole back-off between tries —
    its sleep was once capped at a due time already past, so it retried every 50 ms — and resume."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = server.set("/f.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: {postgres_url}\n"
                          f"feeds:\n  - {{name: f, url: \"{url}\", interval: 1s}}\n")
    assert run_process("--config", str(config), "run").code == 0
    name = make_url(postgres_url).database
    admin = create_engine(make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    log_path = tmp_path / "watch.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"],
                                stdout=subprocess.DEVNULL, stderr=log, text=True)

    def read_only(on: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
                              "AND pid <> pg_backend_pid()"), {"n": name})

    try:
        time.sleep(1.5)
        read_only(True)
        time.sleep(7)
        down = log_path.read_text()
        read_only(False)
        server.set("/f.xml", NEXT)
        deadline = time.monotonic() + 90       # the back-off reached 8 s; a loaded machine is slow
        while time.monotonic() < deadline and not _changed_after(log_path, len(down)):
            time.sleep(0.5)
        assert proc.poll() is None, log_path.read_text()     # still up
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        read_only(False)
        admin.dispose()
    retries = down.count("database unavailable")
    # 2 + 4 s of back-off fit in 7 s: a handful of tries, not one every 50 ms as before the fix.
    assert 1 <= retries <= 5, down
    assert "read-only transaction" in down and "Traceback" not in down
    assert _changed_after(log_path, len(down)), log_path.read_text()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_watch_waits_when_the_database_comes_back_empty_and_resumes_once_it_has_tables(
        tmp_path: Path, server: FeedServer, request: pytest.FixtureRequest, backend: str) -> None:
    """The database is dropped and created again (PostgreSQL) or its file deleted (SQLite) under a running
    `watch`: it says so and waits (it once exited on PostgreSQL, and went on writing into the deleted file
    on SQLite, where nothing could ever read it), and goes on once the database is back (here: `feedwatch
    run` sets up a new history; a restore from a backup would do as well)."""
    db = f"sqlite:///{tmp_path / 'fw.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    url = server.set("/f.xml", STEP)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: {db}\n"
                          f"feeds:\n  - {{name: f, url: \"{url}\", interval: 1s}}\n")
    assert run_process("--config", str(config), "run").code == 0
    log_path = tmp_path / "watch.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch"],
                                stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        time.sleep(1.5)
        if backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                (tmp_path / f"fw.db{suffix}").unlink(missing_ok=True)
        else:
            empty_postgres(db)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "restore it from a backup" not in log_path.read_text():
            time.sleep(0.2)
        gone = log_path.read_text()
        assert proc.poll() is None, gone                          # waiting, not gone
        said = "was deleted while feedwatch was using it" if backend == "sqlite" else "has lost feedwatch's tables"
        assert "database unavailable" in gone and said in gone, gone
        assert "Traceback" not in gone
        assert run_process("--config", str(config), "run").code == 0     # a new history
        server.set("/f.xml", NEXT)
        deadline = time.monotonic() + 90       # the back-off may have reached 8 s or more
        while time.monotonic() < deadline and not _changed_after(log_path, len(gone)):
            time.sleep(0.5)
        assert proc.poll() is None, log_path.read_text()
        assert _changed_after(log_path, len(gone)), log_path.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _changed_after(log: Path, offset: int) -> bool:
    """A watch cycle after `offset` in the log recorded the change (the database is back)."""
    return " changes=1 " in log.read_text()[offset:]


def test_a_validator_that_cannot_be_sent_back_is_not_kept_and_does_not_wedge_the_feed(
        tmp_path: Path, server: FeedServer) -> None:
    """An ETag or Last-Modified with a control character was stored, and every later request of the feed
    failed before it left ("header injection"), for good, whatever the server did next. Such a validator
    is not kept; one stored by an older feedwatch is not sent."""
    bad = {"ETag": '"x\x1by"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT\x1b[31m"}
    url = server.set("/f.xml", STEP, etag=False, headers=bad)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: f, url: \"{url}\"}}\n")
    for _ in range(2):
        result = run_cli("--config", str(config), "run", "--force", "--json")
        assert result.code == 0 and result.json()["feeds"][0]["status"] in ("ok", "unchanged"), result.out
    with sqlite3.connect(tmp_path / "fw.db") as conn:
        assert conn.execute("SELECT etag, last_modified FROM feeds").fetchone() == (None, None)
        conn.execute("UPDATE feeds SET etag = ?, last_modified = ?", (bad["ETag"], bad["Last-Modified"]))
    server.set("/f.xml", NEXT)
    result = run_cli("--config", str(config), "run", "--force", "--json")
    assert result.code == 0 and result.json()["feeds"][0]["status"] == "ok", result.out
    assert server.count("/f.xml") == 3
    assert not {"If-None-Match", "If-Modified-Since"} & set(server.hits[-1].headers)


def test_a_304_to_a_request_that_named_no_version_is_an_error_not_a_quiet_success(
        tmp_path: Path, server: FeedServer) -> None:
    """A server that answers 304 to the first, unconditional request: once a "not modified" feed with no
    documents for ever, exit 0, nothing said."""
    url = server.set("/f.xml", b"", status=304, etag=False)
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"feeds:\n  - {{name: f, url: \"{url}\"}}\n")
    result = run_cli("--config", str(config), "run", "--json")
    assert result.code == 1
    [feed] = result.json()["feeds"]
    assert feed["status"] == "error" and feed["error"].startswith("fetch: f: HTTP 304 (not modified) from "
                                                                  "127.0.0.1 to a request that named no version")
