"""Retention: `prune` keeps what the policy says, never what a pending delivery needs, and gives space back.

The main test replays the 60-step corpus with ``retention: {versions: 5}`` and a webhook target that goes
down at step 50 and stays down until after the prune, so that deliveries are pending on versions the
policy would otherwise remove. What is kept is derived from the corpus manifest, not from feedwatch.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, update

from monitor import config
from monitor.cycle import poll_due
from monitor.models import utcnow
from storage.db import REVISIONS, open_engine, schema_revision
from storage.schema import Blob, Change, Delivery, Version
from storage.store import Store
from tests.helpers import (
    FeedServer,
    corpus_steps,
    empty_postgres,
    feedwatch_cmd,
    manifest,
    run_cli,
    sqlite_file_size,
    write_config,
)
from tests.receivers import Webhook

PATH = "/community/index.xml"
DOWN_FROM = 50       # the webhook is down from this step until after the prune
KEEP = 5


def expected_versions() -> dict[str, tuple[list[int], set[int]]]:
    """guid -> (all version numbers, the versions a pending delivery needs), from the manifest alone."""
    steps: dict[str, list[int]] = {}
    for s in manifest()["steps"]:
        visible = [g for g in s["changed"] if g not in s["markup_only"]]
        for guid in [*s["added"], *visible]:
            steps.setdefault(guid, []).append(s["step"])
    out = {}
    for guid, when in steps.items():
        pending = {n for n, step in enumerate(when, start=1) if step >= DOWN_FROM}
        out[guid] = (list(range(1, len(when) + 1)), pending | {n - 1 for n in pending if n > 1})
    return out


def kept_by_policy(expected: dict[str, tuple[list[int], set[int]]]) -> dict[str, list[int]]:
    """Per document, its KEEP newest versions and the versions a pending delivery needs."""
    return {g: sorted(set(numbers[-KEEP:]) | pending) for g, (numbers, pending) in expected.items()}


def configure(tmp_path: Path, database: str, url: str, retention: str, targets: str = "",
              notify: str = "") -> Path:
    return write_config(tmp_path / "feedwatch.yaml", f"""
database: {database}
defaults:
  retention: {retention}
targets:{targets or " {}"}
feeds:
  - name: k8s
    url: {url}
{notify}""")


def cli(cfg: Path, *args: str) -> Any:
    return run_cli("--config", str(cfg), *args)


def kept_versions(database: str) -> dict[str, list[int]]:
    store = Store.open(database, readonly=True)
    try:
        return {d.ref: store.version_numbers(d.id) for d in store.documents()}
    finally:
        store.close()


def orphan_blobs(database: str) -> int:
    """Blobs that no version, change or other blob refers to (the sweep must leave none)."""
    store = Store.open(database, readonly=True)
    try:
        with store.engine.connect() as conn:
            used = set(conn.execute(select(Version.c.text_hash)).scalars())
            used |= set(conn.execute(select(Version.c.raw_hash)).scalars())
            used |= set(conn.execute(select(Change.c.diff_hash)).scalars())
            used |= set(conn.execute(select(Blob.c.base)).scalars())
            return sum(1 for h in conn.execute(select(Blob.c.hash)).scalars() if h not in used)
    finally:
        store.close()


def diffs(cfg: Path, kept: dict[str, list[int]]) -> dict[tuple[str, int, int, str], str]:
    out = {}
    for ref, numbers in kept.items():
        for a, b in itertools.pairwise(numbers):
            for fmt in ("text", "json"):
                result = cli(cfg, "diff", ref, "--from", str(a), "--to", str(b), "--format", fmt)
                assert result.code == 0, result.err
                out[(ref, a, b, fmt)] = result.out
    return out


@dataclass(frozen=True)
class Pruned:
    """The 60-step replay with ``versions: 5`` and the webhook down from DOWN_FROM, seen before `prune`,
    after it, and once the webhook is back: recorded once per database, checked by the tests below."""

    expected: dict[str, tuple[list[int], set[int]]]    # from the manifest: guid -> (versions, pending needs)
    run_codes: list[int]                               # `run --force` exit code per step
    kept_before: dict[str, list[int]]
    report: dict[str, Any]                             # `prune --json`
    kept_after: dict[str, list[int]]
    orphan_blobs: int
    diffs_before: dict[tuple[str, int, int, str], str]
    diffs_after: dict[tuple[str, int, int, str], str]
    history_before: list[dict[str, Any]]
    history_after: list[dict[str, Any]]
    show_pruned: Any                                   # `show` of the Code of Conduct's v3
    sqlite: tuple[int, int, list[Any], list[Any]] | None   # file size before, after; FK and integrity checks
    run_after: dict[str, Any]                          # `run --force --json` with the webhook back
    sent_after: list[dict[str, Any]]                   # what the webhook got after the prune
    pending_after: int                                 # `status --json` deliveries.pending then

    def keep(self) -> dict[str, list[int]]:
        return kept_by_policy(self.expected)

    def beyond_policy(self) -> int:
        """Versions kept only because a pending delivery needs them."""
        return sum(len(pending - set(numbers[-KEEP:])) for numbers, pending in self.expected.values())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pruned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pruned]:
    tmp_path = tmp_path_factory.mktemp("keep-five")
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path / 'feedwatch.db'}"
    else:
        database_url = request.getfixturevalue("postgres_server")
        empty_postgres(database_url)
    server, hook = FeedServer(), Webhook()
    try:
        with pytest.MonkeyPatch.context() as env:    # as tests/conftest.py's _isolated_home, for the module
            env.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
            env.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
            env.chdir(tmp_path)
            yield _replay_prune_and_send(tmp_path, database_url, server, hook)
    finally:
        hook.down()
        server.close()


def _replay_prune_and_send(tmp_path: Path, database_url: str, server: FeedServer, hook: Webhook) -> Pruned:
    url = server.set(PATH, corpus_steps()[0].read_bytes())
    cfg = configure(tmp_path, database_url, url, f"{{versions: {KEEP}}}",
                    f"\n  hook:\n    urls: ['{hook.url()}']\n    format: text\n    max_attempts: 100\n",
                    "    notify: [hook]\n")
    run_codes = []
    for step, path in enumerate(corpus_steps()):
        if step == DOWN_FROM:
            hook.down()
        server.set(PATH, path.read_bytes())
        run_codes.append(cli(cfg, "run", "--force").code)
    sent_before_prune = len(hook.bodies)
    expected = expected_versions()
    keep = kept_by_policy(expected)
    kept_before = kept_versions(database_url)
    history_before = cli(cfg, "history", "--json").json()["documents"]
    diffs_before = diffs(cfg, keep)
    sqlite_db = Path(database_url.removeprefix("sqlite:///")) if database_url.startswith("sqlite") else None
    size_before = sqlite_file_size(sqlite_db) if sqlite_db else 0

    report = cli(cfg, "prune", "--json")
    assert report.code == 0, report.err
    sqlite = None
    if sqlite_db is not None:
        with sqlite3.connect(sqlite_db) as con:
            sqlite = (size_before, sqlite_file_size(sqlite_db), con.execute("PRAGMA foreign_key_check").fetchall(),
                      con.execute("PRAGMA integrity_check").fetchall())
    coc = next(g for g in keep if g.endswith("/code-of-conduct/"))
    facts = dict(expected=expected, run_codes=run_codes, kept_before=kept_before, report=report.json(),
                 kept_after=kept_versions(database_url), orphan_blobs=orphan_blobs(database_url),
                 diffs_before=diffs_before, diffs_after=diffs(cfg, keep), history_before=history_before,
                 history_after=cli(cfg, "history", "--json").json()["documents"],
                 show_pruned=cli(cfg, "show", coc, "--version", "3"), sqlite=sqlite)
    hook.up()
    rerun = cli(cfg, "run", "--force", "--json")
    assert rerun.code == 0, rerun.err
    return Pruned(**facts, run_after=rerun.json(), sent_after=hook.bodies[sent_before_prune:],
                  pending_after=cli(cfg, "status", "--json").json()["deliveries"]["pending"])


@pytest.mark.slow
def test_sixty_steps_keep_every_version_until_prune(pruned: Pruned) -> None:
    assert pruned.run_codes == [0] * DOWN_FROM + [1] * (len(corpus_steps()) - DOWN_FROM)   # 1: webhook down
    assert pruned.kept_before == {g: numbers for g, (numbers, _) in pruned.expected.items()}
    assert pruned.beyond_policy() >= 2       # the corpus really has deliveries pending on older versions


@pytest.mark.slow
def test_prune_keeps_the_five_newest_and_what_pending_deliveries_need(pruned: Pruned) -> None:
    assert pruned.kept_after == pruned.keep()
    assert pruned.orphan_blobs == 0


@pytest.mark.slow
def test_prune_reports_what_it_removed(pruned: Pruned) -> None:
    removed = sum(len(numbers) for numbers, _ in pruned.expected.values()) - sum(map(len, pruned.keep().values()))
    assert pruned.report["feeds"] == [{"name": "k8s", "versions": removed, "changes": 0,
                                       "kept_for_deliveries": pruned.beyond_policy()}]
    assert pruned.report["blobs"] > 0 and pruned.report["blob_bytes"] > 0


@pytest.mark.slow
def test_diffs_between_kept_versions_read_as_before_prune(pruned: Pruned) -> None:
    assert pruned.diffs_after == pruned.diffs_before


@pytest.mark.slow
def test_history_keeps_every_change_record_and_marks_the_pruned_versions(pruned: Pruned) -> None:
    after = copy.deepcopy(pruned.history_after)
    marked = {(d["document"], v["version"]) for d in after for v in d["versions"] if v.pop("pruned", False)}
    assert after == pruned.history_before
    keep = pruned.keep()
    assert marked == {(g, n) for g, (numbers, _) in pruned.expected.items() for n in numbers if n not in keep[g]}


@pytest.mark.slow
def test_show_of_a_pruned_version_says_retention_removed_it(pruned: Pruned) -> None:
    assert pruned.show_pruned.code == 2
    assert "no longer stored" in pruned.show_pruned.err and "retention" in pruned.show_pruned.err


@pytest.mark.slow
def test_prune_gives_the_sqlite_file_space_back_and_leaves_it_consistent(pruned: Pruned) -> None:
    if pruned.sqlite is None:
        assert pruned.report["database"] is None        # PostgreSQL: no file size to report
        return
    before, after, foreign_key_problems, integrity = pruned.sqlite
    print(f"\nSQLite file before prune {before:,} B, after {after:,} B")
    assert after < before
    assert pruned.report["database"]["before"] == before and pruned.report["database"]["after"] == after
    assert foreign_key_problems == [] and integrity == [("ok",)]


@pytest.mark.slow
def test_deliveries_pending_on_pruned_around_versions_send_once_the_target_is_back(pruned: Pruned) -> None:
    pending = sum(1 for s in manifest()["steps"][DOWN_FROM:]
                  for g in s["changed"] + s["added"] if g not in s["markup_only"])
    assert pruned.run_after["deliveries"] == {"sent": pending, "failed": 0, "pending": 0}
    assert len(pruned.sent_after) == pending and pruned.pending_after == 0
    coc = next(g for g in pruned.expected if g.endswith("/code-of-conduct/"))
    assert 30 not in pruned.expected[coc][0][-KEEP:]            # CoC v30 is step 50: beyond the five newest
    [bengali] = [b for b in pruned.sent_after if "(version 30)" in b["message"]]
    assert "{+Bengali/বাংলা+}" in bengali["message"]             # its diff, rendered from what prune kept


def replay(cfg: Path, server: FeedServer, steps: int) -> None:
    for path in corpus_steps()[:steps]:
        server.set(PATH, path.read_bytes())
        assert cli(cfg, "run", "--force").code == 0


def test_keep_changes_false_drops_the_change_records_of_pruned_versions(
        tmp_path: Path, database_url: str, server: FeedServer) -> None:
    cfg = configure(tmp_path, database_url, server.set(PATH, b""), "{versions: 2, keep_changes: false}")
    replay(cfg, server, 24)
    before = {d["document"]: len(d["versions"]) for d in cli(cfg, "history", "--json").json()["documents"]}
    report = cli(cfg, "prune", "--json").json()
    kept = kept_versions(database_url)
    assert all(len(numbers) == min(2, before[ref]) for ref, numbers in kept.items())
    history = {d["document"]: [v["version"] for v in d["versions"]]
               for d in cli(cfg, "history", "--json").json()["documents"]}
    assert history == kept                       # only the kept versions' change records remain
    assert report["changes"] == sum(before.values()) - sum(map(len, kept.values())) == report["versions"]
    assert orphan_blobs(database_url) == 0
    assert cli(cfg, "prune", "--json").json()["versions"] == 0     # idempotent


def test_age_and_count_together(tmp_path: Path, database_url: str, server: FeedServer) -> None:
    """A version goes when it is beyond the count *or* older than the age; the latest always stays."""
    cfg = configure(tmp_path, database_url, server.set(PATH, b""), "{versions: 6, age: 30d}")
    replay(cfg, server, 20)
    store = Store.open(database_url)
    with store.engine.begin() as conn:   # versions 1-3 of every document were recorded 40 days ago
        conn.execute(update(Version).where(Version.c.number <= 3).values(created_at=utcnow() - timedelta(days=40)))
    store.close()
    before = kept_versions(database_url)
    assert cli(cfg, "prune").code == 0
    for ref, numbers in kept_versions(database_url).items():
        latest = before[ref][-1]
        assert numbers == [n for n in before[ref] if n == latest or (n > 3 and n > latest - 6)], ref


def test_dry_run_reports_exactly_what_prune_does_and_changes_nothing(
        tmp_path: Path, database_url: str, server: FeedServer) -> None:
    cfg = configure(tmp_path, database_url, server.set(PATH, b""), "{versions: 1}")
    replay(cfg, server, 16)
    kept = kept_versions(database_url)
    dry = cli(cfg, "prune", "--dry-run", "--json").json()
    assert kept_versions(database_url) == kept and dry["dry_run"] is True
    assert "would remove" in cli(cfg, "prune", "--dry-run").out
    real = cli(cfg, "prune", "--json").json()
    assert {k: v for k, v in dry.items() if k not in ("dry_run", "database")} == \
        {k: v for k, v in real.items() if k not in ("dry_run", "database")}
    assert dry["versions"] > 0


def test_default_policy_keeps_everything(tmp_path: Path, server: FeedServer) -> None:
    cfg = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                       f"feeds:\n  - {{name: k8s, url: '{server.set(PATH, b'')}'}}\n")
    replay(cfg, server, 10)
    kept = kept_versions(f"sqlite:///{tmp_path / 'fw.db'}")
    result = cli(cfg, "prune")
    assert result.code == 0 and "nothing to prune" in result.out
    assert kept_versions(f"sqlite:///{tmp_path / 'fw.db'}") == kept


@pytest.mark.slow
def test_watch_prunes_by_itself(tmp_path: Path, server: FeedServer) -> None:
    database = f"sqlite:///{tmp_path / 'fw.db'}"
    cfg = configure(tmp_path, database, server.set(PATH, b""), "{versions: 1}")
    replay(cfg, server, 12)                      # the feed is now due again only in an hour
    assert max(map(len, kept_versions(database).values())) > 1
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(cfg), "watch"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NOTIFY_SOCKET": ""})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and max(map(len, kept_versions(database).values())) > 1:
            time.sleep(0.2)
        assert max(map(len, kept_versions(database).values())) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "prune versions=" in err


# ------------------------------------------------------------------------------------------ migration


def test_revisions_list_every_migration() -> None:
    files = sorted(p.name.split("_")[0] for p in (Path(__file__).parent.parent / "storage" / "migrations"
                                                   / "versions").glob("[0-9]*.py"))
    assert tuple(files) == REVISIONS


def test_upgrade_from_0001_keeps_the_data(tmp_path: Path, database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = open_engine(database_url)
    with engine.begin() as conn:   # the schema exactly as revision 0001 created it
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent.parent / "storage" / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    feed = tmp_path / "feed.xml"
    settings = config.load(write_config(tmp_path / "feedwatch.yaml",
                                        f"database: {database_url}\nfeeds:\n  - {{name: k8s, url: '{feed}'}}\n"))
    old = Store(engine)            # no upgrade: writes at revision 0001
    for path in corpus_steps()[:15]:
        feed.write_bytes(path.read_bytes())
        asyncio.run(poll_due(old, settings, force=True))
    with engine.connect() as conn:
        assert schema_revision(conn) == "0001"
    history = run_cli("--config", str(tmp_path / "feedwatch.yaml"), "history", "--json").out
    old.close()

    store = Store.open(database_url)    # upgrades
    with store.engine.connect() as conn:
        assert schema_revision(conn) == REVISIONS[-1]
        indexes = {i["name"] for t in ("versions", "changes", "blobs") for i in inspect(conn).get_indexes(t)}
        counts = conn.execute(select(func.count()).select_from(Delivery)).scalar_one()
    postgres = database_url.startswith("postgresql")
    assert ({"ix_versions_text_hash", "ix_versions_raw_hash", "ix_changes_diff_hash", "ix_blobs_base"} <= indexes
            ) is postgres
    assert counts == 0
    for path in corpus_steps()[15:25]:  # the upgraded database goes on recording, compressed the new way
        feed.write_bytes(path.read_bytes())
        asyncio.run(poll_due(store, settings, force=True))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(Blob.c.codec == "zstd-dict")).scalar_one() > 0
    store.close()
    after = run_cli("--config", str(tmp_path / "feedwatch.yaml"), "history", "--json").json()
    before = {d["document"]: d["versions"] for d in json.loads(history)["documents"]}
    for d in after["documents"]:
        assert d["versions"][:len(before.get(d["document"], []))] == before.get(d["document"], [])
    assert run_cli("--config", str(tmp_path / "feedwatch.yaml"), "diff", "2", "--from", "3", "--to", "12").code == 0
