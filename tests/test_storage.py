"""storage on SQLite and PostgreSQL: schema upgrades, content addressing, leases, one transaction per poll."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update

from monitor import config
from monitor.cycle import poll_due
from monitor.errors import LeaseLost, SchemaTooNewError
from monitor.models import Alert, ChangeKind, Decision, DocumentUpdate, Item, PollRecord, PollStatus, utcnow
from monitor.normalize import state_hash
from monitor.poll import process_body
from storage import blobs
from storage.db import HEAD, REVISIONS, migrate, open_engine, schema_state
from storage.schema import Blob, Change, Delivery, Feed, Version
from storage.store import Store
from tests.helpers import CORPUS, rss, write_config


def new_item(key: str, text_: str, title: str = "T") -> Item:
    th = hashlib.sha256(text_.encode()).digest()
    return Item(key=f"guid:{key}", guid=key, link=None, title=title, text=text_, raw=b'{"r":1}',
                text_hash=th, state_hash=state_hash(title, None, th))


def poll(store: Store, feed_id: int, owner: str, items: list[Item], *, notify: tuple[str, ...] = ()) -> PollRecord:
    now = utcnow()
    return PollRecord(feed_id=feed_id, feed="f", owner=owner, now=now, status=PollStatus.OK,
                      next_due_at=now + timedelta(hours=1), settings_hash=b"s" * 32, notify=notify,
                      updates=tuple(DocumentUpdate(Decision(ChangeKind.ADDED, i, None, True)) for i in items))


def test_a_new_database_gets_the_current_schema(database_url: str) -> None:
    store = Store.open(database_url)
    assert schema_state(store.engine) == "current"
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    store.close()
    Store.open(database_url).close()                        # opening again changes nothing


def test_a_newer_schema_is_refused_clearly(database_url: str) -> None:
    Store.open(database_url).close()
    engine = open_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaTooNewError, match=r"database schema 0099 is newer than this feedwatch knows "
                                                rf"\(up to {HEAD}\); upgrade feedwatch"):
        Store.open(database_url)
    engine.dispose()


def test_revisions_match_the_migration_files() -> None:
    from pathlib import Path

    files = sorted(p.name.split("_", 1)[0] for p in (Path(__file__).parent.parent / "storage" / "migrations"
                                                        / "versions").glob("*.py"))
    assert tuple(files) == REVISIONS


def test_identical_content_is_stored_once_across_feeds(database_url: str) -> None:
    store = Store.open(database_url)
    ids = store.sync_feeds([("a", "u1"), ("b", "u2")])
    for name in ("a", "b"):
        [state] = store.claim_due_feeds([ids[name]], "me:1", limit=1, lease=60)
        store.record_poll(poll(store, state.id, "me:1", [new_item("x", "same text"), new_item("y", "same text")]))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Version)).scalar() == 4
        # one canonical text + one raw item, whoever stores them
        assert conn.execute(select(func.count()).select_from(Blob)).scalar() == 2
    store.close()


def test_a_blob_put_returns_the_keyframes_it_stored_unless_another_writer_stored_one_first(database_url: str) -> None:
    """What blobs.put returns lets the next put of the same transaction skip reading keyframes back; when
    another writer stored one of the blobs after the caller checked (`existing`), it returns nothing and
    the stored forms are read instead."""
    first = b" ".join(hashlib.sha256(bytes([n])).hexdigest().encode() for n in range(60))   # compresses poorly
    second, third = first + b" and one edit", b"another item " + first[::-1]
    a, b, c = map(blobs.digest, (first, second, third))
    with Store.open(database_url) as store, store.engine.begin() as conn:
        assert blobs.put(conn, {a: first}) == {a: a}                         # a keyframe: its own
        assert blobs.put(conn, {b: second}, similar={b: a}, chain=True) == {b: a}
        assert blobs.put(conn, {a: first, c: third}, existing=set()) == {}   # `a` was stored meanwhile
        assert blobs.get_many(conn, [a, b, c]) == {a: first, b: second, c: third}


def test_a_leased_feed_is_not_claimed_twice_and_a_lost_lease_writes_nothing(database_url: str) -> None:
    store = Store.open(database_url)
    ids = store.sync_feeds([("a", "u1")])
    [state] = store.claim_due_feeds(list(ids.values()), "host-a:1", limit=5, lease=600)
    assert store.claim_due_feeds(list(ids.values()), "host-b:1", limit=5, lease=600) == []
    with pytest.raises(LeaseLost):
        store.record_poll(poll(store, state.id, "host-b:1", [new_item("x", "text")]))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Version)).scalar() == 0
    changes = store.record_poll(poll(store, state.id, "host-a:1", [new_item("x", "text")], notify=("chat",)))
    assert [c.kind for c in changes] == [ChangeKind.ADDED]
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Change)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(Delivery)).scalar() == 1   # same transaction
    store.close()


def test_a_claim_skips_the_feeds_its_cycle_has_polled_even_while_they_are_due(database_url: str) -> None:
    """A cycle's claims leave alone the feeds it has polled (`exclude`) and fill their limit with others."""
    store = Store.open(database_url)
    ids = store.sync_feeds([(name, f"u{name}") for name in "abcdef"])
    feeds = list(ids.values())
    first = store.claim_due_feeds(feeds, "me:1", limit=2, lease=600, exclude={ids["a"], ids["b"]})
    store.release_feeds("me:1")
    second = store.claim_due_feeds(feeds, "me:1", limit=2, lease=600, exclude={ids[n] for n in "abcd"})
    assert [s.name for s in first] == ["c", "d"] and [s.name for s in second] == ["e", "f"]
    assert store.claim_due_feeds(feeds, "me:1", limit=2, lease=600, exclude=set(feeds)) == []
    store.close()


def test_a_cycles_claims_are_one_statement_text_on_sqlite_however_many_feeds_they_skip(tmp_path: Path) -> None:
    """Each text is prepared anew and SQLite keeps the last 128 per connection: a text per claim of a
    cycle over 5,000 feeds (their ids in an IN list that shrank as feeds were polled) took 60 MiB."""
    store = Store.open(f"sqlite:///{tmp_path / 'fw.db'}")
    feeds = list(store.sync_feeds([(f"f{i}", f"u{i}") for i in range(100)]).values())
    selects: list[str] = []     # the claims' SELECT of due feeds
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_: selects.append(sql) if "ORDER BY feeds.next_due_at" in sql else None)
    for n in (0, 10, 50):
        assert len(store.claim_due_feeds(feeds, "me:1", limit=5, lease=600, exclude=set(feeds[:n]))) == 5
    assert len(selects) == 3 and len(set(selects)) == 1
    store.close()


def test_polls_recorded_together_keep_their_own_leases(database_url: str) -> None:
    """Group commit (Store.record_polls): a batch whose middle poll lost its lease writes the other two,
    and reports the lost one as None with nothing of it stored."""
    store = Store.open(database_url)
    ids = store.sync_feeds([("a", "u1"), ("b", "u2"), ("c", "u3")])
    for name in ("a", "c"):
        store.claim_due_feeds([ids[name]], "me:1", limit=1, lease=600)
    store.claim_due_feeds([ids["b"]], "other:1", limit=1, lease=600)
    results = store.record_polls([poll(store, ids[name], "me:1", [new_item(name, f"text of {name}")])
                                  for name in ("a", "b", "c")])
    assert [None if r is None else [c.kind for c in r] for r in results] == [
        [ChangeKind.ADDED], None, [ChangeKind.ADDED]]
    with store.engine.connect() as conn:
        assert sorted(conn.execute(select(Change.c.feed_id)).scalars()) == [ids["a"], ids["c"]]
        assert conn.execute(select(Feed.c.polls).where(Feed.c.id == ids["b"])).scalar() == 0
    store.close()


def test_an_alert_recorded_with_another_polls_notified_change_keeps_its_payload(database_url: str) -> None:
    """Group commit: one poll's notified change and another's error alert go to the outbox in one batch, and
    the alert keeps its payload (rows of two shapes in one executemany once lost it: the alert was sent
    without its error)."""
    store = Store.open(database_url)
    ids = store.sync_feeds([("a", "u1"), ("b", "u2")])
    store.claim_due_feeds(list(ids.values()), "me:1", limit=2, lease=600)
    failed = PollRecord(feed_id=ids["b"], feed="b", owner="me:1", now=utcnow(), status=PollStatus.ERROR,
                        next_due_at=utcnow() + timedelta(hours=1), error="boom",
                        alerts=(Alert("error", ("chat",), '{"feed": "b", "error": "boom"}'),))
    store.record_polls([poll(store, ids["a"], "me:1", [new_item("x", "text")], notify=("chat",)), failed])
    claimed, _ = store.outbox.claim("sender:1", now=utcnow(), lease=60)
    assert [(d.kind, d.feed, d.payload) for d in claimed] == [
        ("change", "a", {}), ("error", "b", {"feed": "b", "error": "boom"})]
    store.close()


def test_a_cycle_commits_its_polls_in_batches(tmp_path: Path) -> None:
    """Forty feeds answering at once are recorded in a few transactions, not forty, and every one of them
    is recorded in full."""
    feeds = "".join(f"  - {{name: f{i}, url: '{CORPUS / 'k8s-community' / 'step_000.xml'}'}}\n" for i in range(40))
    settings = config.load(write_config(tmp_path / "feedwatch.yaml",
                                        f"database: sqlite:///{tmp_path / 'fw.db'}\nfeeds:\n{feeds}"))
    store = Store.open(settings.database_url)
    batches: list[int] = []
    record_polls = store.record_polls

    def counted(records: Any) -> Any:
        batches.append(len(records))
        return record_polls(records)

    store.record_polls = counted    # type: ignore[method-assign]
    outcomes = asyncio.run(poll_due(store, settings, force=True, parse_pool=False))
    assert len(outcomes) == 40 and all(o.status is PollStatus.OK for o in outcomes)
    assert sum(batches) == 40 and len(batches) < 40
    with store.engine.connect() as conn:
        per_feed = set(conn.execute(select(func.count()).select_from(Version).group_by(Version.c.document_id)
                                    ).scalars())
        assert per_feed == {1}
        assert conn.execute(select(func.count(func.distinct(Change.c.feed_id)))).scalar() == 40
    store.close()


def test_an_expired_lease_can_be_taken_over(database_url: str) -> None:
    store = Store.open(database_url)
    ids = store.sync_feeds([("a", "u1")])
    assert store.claim_due_feeds(list(ids.values()), "other-host:1", limit=1, lease=0.01)
    import time
    time.sleep(0.05)
    assert store.claim_due_feeds(list(ids.values()), "host-b:1", limit=1, lease=60)
    store.close()


def test_a_dead_process_lease_on_this_host_is_freed_at_once(database_url: str) -> None:
    import os
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    store = Store.open(database_url)
    ids = store.sync_feeds([("a", "u1")])
    assert store.claim_due_feeds(list(ids.values()), f"{os.uname().nodename}:{dead.pid}", limit=1, lease=600)
    assert store.claim_due_feeds(list(ids.values()), "host-b:1", limit=1, lease=600)
    store.close()


def test_the_migrations_build_exactly_the_schema_the_code_declares(database_url: str) -> None:
    """storage/schema.py and storage/migrations agree: autogenerate finds nothing to change in a database
    the migrations built (not the fast path a new SQLite file takes, which the next test compares)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.schema import POSTGRESQL_ONLY_INDEXES, metadata

    engine = open_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
        # PostgreSQL's extra indexes come from migration 0002 only (schema.py says why).
        assert [d for d in diffs if not (d[0] == "remove_index" and d[1].name in POSTGRESQL_ONLY_INDEXES)] == []
    finally:
        engine.dispose()


def _sqlite_schema(path: Path) -> list[tuple[str, str, object]]:
    """Everything SQLite knows of a database's schema: each table's and index's definition (a table's
    clauses as a set: the same constraints listed in another order are the same table), the recorded
    revision, and the file's settings."""
    conn = sqlite3.connect(path)
    try:
        out: list[tuple[str, str, object]] = []
        for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name"):
            head, _, body = (sql or "").partition("(")
            out.append((kind, name, (" ".join(head.split()), frozenset(_clauses(body.rsplit(")", 1)[0])))))
        out.append(("revision", "", conn.execute("SELECT version_num FROM alembic_version").fetchall()))
        out += [("pragma", p, conn.execute(f"PRAGMA {p}").fetchone()) for p in ("page_size", "auto_vacuum",
                                                                                "journal_mode", "user_version")]
        return out
    finally:
        conn.close()


def _clauses(body: str) -> list[str]:
    """The top-level comma-separated clauses of a CREATE TABLE's body, whitespace normalised."""
    clauses, depth, current = [], 0, ""
    for char in body:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            clauses.append(" ".join(current.split()))
            current = ""
        else:
            current += char
    return [*clauses, " ".join(current.split())]


def test_a_new_sqlite_database_gets_exactly_the_schema_the_migrations_build(tmp_path: Path) -> None:
    """A new SQLite file is given storage.schema's tables directly, stamped at the head revision, without
    running Alembic (storage.db._create_fresh, a third of a second of every first run): the result must be
    the database the migrations build, table by table, index by index, revision and settings."""
    Store.open(f"sqlite:///{tmp_path / 'fresh.db'}").close()
    engine = open_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    try:
        migrate(engine)
    finally:
        engine.dispose()
    fresh, migrated = _sqlite_schema(tmp_path / "fresh.db"), _sqlite_schema(tmp_path / "migrated.db")
    assert ("revision", "", [(HEAD,)]) in fresh
    tables = {name for kind, name, _ in fresh if kind == "table"}
    assert {"feeds", "documents", "versions", "changes", "blobs", "deliveries"} <= tables
    assert fresh == migrated


def _file_feeds(tmp_path: Path, count: int) -> config.Settings:
    lines = []
    for i in range(count):
        path = tmp_path / f"f{i}.xml"
        path.write_text(rss((f"g{i}", f"text {i}")), encoding="utf-8")
        lines.append(f"  - {{name: f{i:03}, url: '{path}'}}\n")
    return config.load(write_config(tmp_path / "feedwatch.yaml",
                                    f"database: sqlite:///{tmp_path / 'fw.db'}\nfeeds:\n{''.join(lines)}"))


def test_a_cycle_claims_until_a_claim_comes_back_short_then_once_more_when_its_queue_is_empty(
        tmp_path: Path) -> None:
    """Each claim is a write transaction: none is wasted on an empty queue's every finished poll."""
    settings = _file_feeds(tmp_path, 100)
    store = Store.open(settings.database_url)
    claims: list[tuple[int, int]] = []      # (limit, claimed)
    claim = store.claim_due_feeds

    def counting(*args: Any, **kwargs: Any) -> Any:
        got = claim(*args, **kwargs)
        claims.append((kwargs["limit"], len(got)))
        return got

    store.claim_due_feeds = counting  # type: ignore[method-assign]
    outcomes = asyncio.run(poll_due(store, settings, parse_pool=False))
    assert len(outcomes) == 100 and {o.status for o in outcomes} == {PollStatus.OK}
    assert claims[0] == (64, 64)                                  # a queue of 64 (concurrency 8), refilled
    assert all(limit == got for limit, got in claims[:-2])       # full claims, until one comes back short
    assert claims[-2][1] < claims[-2][0] and claims[-1][1] == 0 and sum(got for _, got in claims) == 100
    claims.clear()
    asyncio.run(poll_due(store, settings, parse_pool=False, force=True, shared=False))
    assert claims == [(256, 100), (256, 0)]                       # polling alone: one large batch
    store.close()


def test_a_feed_another_process_frees_during_a_cycle_is_polled_before_the_cycle_ends(tmp_path: Path) -> None:
    settings = _file_feeds(tmp_path, 3)
    store = Store.open(settings.database_url)
    store.sync_feeds([(f.name, f.url) for f in settings.feeds])
    with store.engine.begin() as conn:      # a live process on another host holds f002
        conn.execute(update(Feed).where(Feed.c.name == "f002").values(lease_owner="elsewhere:1",
                                                                       lease_until=utcnow() + timedelta(hours=1)))

    async def free_it_while_f000_is_parsed(feed: Any, fetched: Any, stored: Any) -> list[Item]:
        if feed.name == "f000":
            with store.engine.begin() as conn:
                conn.execute(update(Feed).where(Feed.c.name == "f002").values(lease_owner=None, lease_until=None))
        return process_body(feed, fetched, stored)

    outcomes = asyncio.run(poll_due(store, settings, process=free_it_while_f000_is_parsed))
    assert [(o.name, o.status) for o in outcomes] == [(f"f00{i}", PollStatus.OK) for i in range(3)]
    store.close()


def test_a_poll_whose_lease_was_taken_over_is_discarded_and_not_reported(tmp_path: Path) -> None:
    """Another process took the feed while this one was parsing: nothing is written, nothing reported."""
    seed = tmp_path / "seed.xml"
    seed.write_bytes((CORPUS / "seed-feed.xml").read_bytes())
    other = tmp_path / "other.xml"
    other.write_bytes(seed.read_bytes())
    settings = config.load(write_config(tmp_path / "feedwatch.yaml", f"""\
database: sqlite:///{tmp_path / 'fw.db'}
feeds:
  - {{name: taken, url: '{seed}'}}
  - {{name: kept, url: '{other}'}}
"""))
    store = Store.open(settings.database_url)

    async def parse_while_another_process_takes_the_feed(feed: Any, fetched: Any, stored: Any) -> list[Item]:
        if feed.name == "taken":
            with store.engine.begin() as conn:
                conn.execute(update(Feed).where(Feed.c.name == "taken").values(lease_owner="host-b:1"))
        return process_body(feed, fetched, stored)

    outcomes = asyncio.run(poll_due(store, settings, process=parse_while_another_process_takes_the_feed))
    assert [(o.name, o.status, o.change_count) for o in outcomes] == [("kept", PollStatus.OK, 4)]
    assert [d.feed for d in store.documents(None)] == ["kept"] * 4
    store.close()
