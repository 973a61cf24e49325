"""`db copy`: a SQLite history moved to PostgreSQL reads back identically (issue 7)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FeedServer, corpus_steps, run_cli, write_config


def replay_into_sqlite(tmp_path: Path, server: FeedServer, steps: int = 60) -> Path:
    url = server.set("/feed.xml", corpus_steps()[0].read_bytes())
    config = write_config(tmp_path / "feedwatch.yaml", f"""database: sqlite:///{tmp_path / 'fw.db'}
targets:
  chat: {{urls: ["json://127.0.0.1:9/down"]}}
feeds:
  - {{name: k8s, url: "{url}", notify: [chat]}}
""")
    for path in corpus_steps()[:steps]:
        server.set("/feed.xml", path.read_bytes())
        assert run_cli("--config", str(config), "run", "--force", "--no-notify").code == 0
    return config


def outputs(config: Path, database: str) -> dict[str, Any]:
    """Everything a user reads back: history, status, every diff and every version's text."""
    def cli(*args: str) -> Any:
        result = run_cli("--config", str(config), "--database", database, *args)
        assert result.code == 0, result.err
        return result.out
    history = json.loads(cli("history", "--json"))
    out: dict[str, Any] = {"history": history}
    status = json.loads(cli("status", "--json"))
    out["status"] = [{k: v for k, v in f.items()} for f in status["feeds"]]
    out["deliveries"] = {k: v for k, v in status["deliveries"].items() if k != "problems"}
    for doc in history["documents"]:
        versions = [v["version"] for v in doc["versions"] if v["kind"] != "removed"]
        for a, b in itertools.pairwise(versions):
            out[f"diff {doc['id']} {a} {b}"] = cli("diff", str(doc["id"]), "--from", str(a), "--to", str(b),
                                                   "--format", "json")
        out[f"diff {doc['id']} text"] = cli("diff", str(doc["id"]), "--from", "1", "--format", "text") \
            if len(versions) > 1 else None
        for v in versions:
            out[f"show {doc['id']} {v}"] = cli("show", str(doc["id"]), "--version", str(v))
    return out


@pytest.mark.slow
def test_db_copy_sqlite_to_postgresql_reads_back_identically(tmp_path: Path, server: FeedServer,
                                                            postgres_url: str) -> None:
    config = replay_into_sqlite(tmp_path, server)
    before = outputs(config, str(tmp_path / "fw.db"))
    assert len(before["history"]["documents"]) == 4 and before["deliveries"]["pending"] > 0
    result = run_cli("--config", str(config), "db", "copy", "--to", postgres_url)
    assert result.code == 0, result.err
    assert result.out.startswith("copied sqlite:///") and "postgres" in result.out
    after = outputs(config, postgres_url)
    assert after == before
    # The copy is a working database: the next poll continues from the copied validators and history.
    server.set("/feed.xml", corpus_steps()[59].read_bytes())
    again = run_cli("--config", str(config), "--database", postgres_url, "run", "--force", "--no-notify", "--json")
    assert again.json()["feeds"][0]["status"] == "not_modified" and again.json()["changes"] == []


def test_db_copy_refuses_a_non_empty_target(tmp_path: Path, server: FeedServer) -> None:
    config = replay_into_sqlite(tmp_path, server, steps=2)
    assert run_cli("--config", str(config), "db", "copy", "--to", str(tmp_path / "copy.db")).code == 0
    second = run_cli("--config", str(config), "db", "copy", "--to", str(tmp_path / "copy.db"))
    assert second.code == 2 and "is not empty" in second.err
    assert outputs(config, str(tmp_path / "copy.db")) == outputs(config, str(tmp_path / "fw.db"))
