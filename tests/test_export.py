"""`export` / `import`: a feed's full history survives a move between databases, exactly.

The source is the 60-step corpus replayed into SQLite; it is exported once and imported into fresh SQLite
and PostgreSQL databases, which must answer `history --json` and `diff` byte for byte as the source does.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from storage.schema import Blob, Change, Document, Feed, Version
from storage.store import Store
from tests.helpers import FeedServer, corpus_steps, run_cli, write_config

PATH = "/community/index.xml"
CASES = Path(__file__).parent / "cases" / "history_files.yaml"
ZERO = "0" * 64
VALID = {
    "header": '{"format": "feedwatch-history", "version": 1}',
    "feed": '{"type": "feed", "name": "k8s", "url": "https://x.test/f", "created_at": "2025-01-01T00:00:00Z"}',
    "document": '{"type": "document", "feed": "k8s", "key": "a", "title": "A", "first_seen_at": '
                f'"2025-01-01T00:00:00Z", "latest_version": 1, "state_hash": "{ZERO}"}}',
    "document2": '{"type": "document", "feed": "k8s", "key": "a", "title": "A", "first_seen_at": '
                 f'"2025-01-01T00:00:00Z", "latest_version": 2, "state_hash": "{ZERO}"}}',
    "version1": '{"type": "version", "feed": "k8s", "document": "a", "number": 1, "created_at": '
                f'"2025-01-01T00:00:00Z", "title": "A", "state_hash": "{ZERO}", "text": "A"}}',
    "change1": '{"type": "change", "feed": "k8s", "document": "a", "kind": "added", "version": 1, '
               '"detected_at": "2025-01-01T00:00:00Z", "title": "A", "summary": "new document"}',
    "header2": '{"format": "feedwatch-history", "version": 2}',
    "end": '{"type": "end", "feeds": 1, "documents": 1, "versions": 1, "changes": 0}',
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The corpus replayed into SQLite: the database every test exports from."""
    tmp = tmp_path_factory.mktemp("source")
    database = f"sqlite:///{tmp / 'source.db'}"
    server = FeedServer()
    try:
        cfg = write_config(tmp / "feedwatch.yaml", f"database: {database}\nfeeds:\n"
                           f"  - {{name: k8s, url: '{server.url(PATH)}'}}\n")
        for step in corpus_steps():
            server.set(PATH, step.read_bytes())
            assert run_cli("--config", str(cfg), "run", "--force").code == 0
    finally:
        server.close()
    return database


def cli(database: str, *args: str) -> Any:
    return run_cli("--database", database, *args)


def export(database: str, path: Path, *args: str) -> Path:
    result = cli(database, "export", "--output", str(path), *args)
    assert result.code == 0, result.err
    return path


def views(database: str) -> dict[str, str]:
    """What a user reads: `history --json`, and `diff` of every pair of consecutive stored versions (text,
    json) plus the default diff in every format."""
    def read(*args: str) -> str:
        result = cli(database, *args)
        assert result.code == 0 and result.out, (args, result.err)
        return str(result.out)

    out = {"history": read("history", "--json")}
    store = Store.open(database, readonly=True)
    stored = {d.id: store.version_numbers(d.id) for d in store.documents()}
    store.close()
    for doc, numbers in stored.items():
        for a, b in itertools.pairwise(numbers):
            for fmt in ("text", "json"):
                out[f"diff {doc} {a} {b} {fmt}"] = read("diff", str(doc), "--from", str(a), "--to", str(b),
                                                        "--format", fmt)
        for fmt in ("markdown", "html"):
            out[f"diff {doc} {fmt}"] = read("diff", str(doc), "--format", fmt)
    return out


def counts(database: str) -> dict[str, int]:
    store = Store.open(database)
    try:
        with store.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in (Feed, Document, Version, Change, Blob)}
    finally:
        store.close()


def test_export_then_import_gives_identical_history_and_diff(
        tmp_path: Path, source: str, database_url: str) -> None:
    history_file = export(source, tmp_path / "k8s.jsonl")
    result = cli(database_url, "import", str(history_file))
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["imported k8s", "4 documents, 56 versions, 56 change records imported"]
    expected = views(source)
    assert len(expected) > 100
    assert views(database_url) == expected
    last_change = [f["last_change"] for f in cli(database_url, "status", "--json").json()["feeds"]]
    assert last_change == [f["last_change"] for f in cli(source, "status", "--json").json()["feeds"]] != [None]
    # The file holds the whole history: exporting the copy writes the same records again.
    again = export(database_url, tmp_path / "again.jsonl")
    assert history_file.read_text().splitlines()[1:] == again.read_text().splitlines()[1:]


def test_importing_twice_changes_nothing(tmp_path: Path, source: str, database_url: str) -> None:
    history_file = export(source, tmp_path / "k8s.jsonl")
    assert cli(database_url, "import", str(history_file)).code == 0
    before = counts(database_url)
    again = cli(database_url, "import", str(history_file))
    assert again.code == 0, again.err
    assert "k8s: already here with the same history; left unchanged" in again.out
    assert counts(database_url) == before


def test_a_different_history_of_the_same_feed_is_refused(
        tmp_path: Path, source: str, database_url: str, server: FeedServer) -> None:
    cfg = write_config(tmp_path / "feedwatch.yaml", f"database: {database_url}\nfeeds:\n"
                       f"  - {{name: k8s, url: '{server.url(PATH)}'}}\n")
    for step in corpus_steps()[30:33]:          # another k8s history: starts at step 30
        server.set(PATH, step.read_bytes())
        assert run_cli("--config", str(cfg), "run", "--force").code == 0
    before = counts(database_url)
    result = cli(database_url, "import", str(export(source, tmp_path / "k8s.jsonl")))
    assert result.code == 2
    [line] = result.err.splitlines()
    assert line.startswith(f"feedwatch: import: {tmp_path / 'k8s.jsonl'}:")
    assert "feed 'k8s' is already in the database with a different history" in line
    assert counts(database_url) == before        # nothing of the file was stored


def test_a_pruned_history_moves_too(tmp_path: Path, source: str) -> None:
    pruned = tmp_path / "pruned.db"
    pruned.write_bytes(Path(source.removeprefix("sqlite:///")).read_bytes())
    cfg = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{pruned}\n"
                       "defaults: {retention: {versions: 3}}\nfeeds: [{name: k8s, url: 'https://x.test/f'}]\n")
    assert run_cli("--config", str(cfg), "prune").code == 0
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    assert cli(copy, "import", str(export(f"sqlite:///{pruned}", tmp_path / "h.jsonl"))).code == 0
    assert views(copy) == views(f"sqlite:///{pruned}")
    assert counts(copy)["versions"] == counts(f"sqlite:///{pruned}")["versions"] < 56


def test_export_of_chosen_feeds(tmp_path: Path, source: str) -> None:
    lines = export(source, tmp_path / "k8s.jsonl", "--feed", "k8s").read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "feedwatch-history" and header["version"] == 2
    kinds = [json.loads(line)["type"] for line in lines[1:]]
    assert kinds[0] == "feed" and kinds.count("feed") == 1
    assert kinds.count("document") == 4 and kinds.count("version") == 56 and kinds.count("change") == 56
    assert json.loads(lines[-1]) == {"type": "end", "feeds": 1, "documents": 4, "versions": 56, "changes": 56}
    unknown = cli(source, "export", "--feed", "nope", "--output", str(tmp_path / "nope.jsonl"))
    assert unknown.code == 2 and "no feed named 'nope'" in unknown.err
    assert [p.name for p in tmp_path.iterdir() if "nope.jsonl" in p.name] == []
    assert cli(source, "export").out.splitlines()[1:] == lines[1:]          # stdout by default


def test_import_from_stdin_and_a_missing_file(tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    data = export(source, tmp_path / "k8s.jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    target = f"sqlite:///{tmp_path / 'new.db'}"
    assert cli(target, "import", "-").code == 0
    assert counts(target)["versions"] == 56
    missing = cli(target, "import", str(tmp_path / "missing.jsonl"))
    assert missing.code == 2 and "No such file or directory" in missing.err


@pytest.mark.parametrize("case", yaml.safe_load(CASES.read_text(encoding="utf-8")), ids=lambda c: c["name"])
def test_a_bad_history_file_is_refused_with_its_line_number(tmp_path: Path, case: dict[str, Any]) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text("".join(VALID.get(line, line) + "\n" for line in case["lines"]), encoding="utf-8")
    database = f"sqlite:///{tmp_path / 'fw.db'}"
    result = cli(database, "import", str(path))
    assert result.code == 2
    [line] = result.err.splitlines()
    assert line.startswith(f"feedwatch: import: {path}:{case['line']}: "), line
    assert case["error"] in line, line
    assert counts(database) == {"feeds": 0, "documents": 0, "versions": 0, "changes": 0, "blobs": 0}
