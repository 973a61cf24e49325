"""history, report and export over many documents: read a page at a time in a few queries a page, with
exactly the output they gave when everything was read at once (and one query, or two, per row)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import Engine, event

from monitor import commands
from storage import archive, history
from tests.helpers import rss, run_cli, write_config

DOCUMENTS = 60
OTHER = 10          # documents of the second feed


def feed(edit: int) -> str:
    items = "".join(
        f"<item><guid>g{n}</guid><title>Item {n}</title><link>https://example.org/{n}</link><description>&lt;h2&gt;"
        f"Item {n}&lt;/h2&gt;&lt;p&gt;Text of item {n}{' edited' * (n < edit)}.&lt;/p&gt;</description></item>"
        for n in range(DOCUMENTS) if n != 7 or not edit)        # item 7 leaves after the first poll
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{items}</channel></rss>"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with DOCUMENTS documents, added, some changed twice, one absent then removed."""
    tmp = tmp_path_factory.mktemp("long")
    body = tmp / "feed.xml"
    other = tmp / "other.xml"          # a second feed, so that pages of documents straddle two feeds
    other.write_text(rss(*[(f"z{n}", f"Other item {n}.") for n in range(OTHER)]))
    path = write_config(tmp / "feedwatch.yaml", f"database: sqlite:///{tmp / 'fw.db'}\nfeeds:\n"
                                                 f"  - name: f\n    url: {body}\n    removal_grace: 1\n"
                                                 f"  - name: z\n    url: {other}\n")
    for edit in (0, 5, 20):
        body.write_text(feed(edit))
        assert run_cli("--config", str(path), "run", "--force").code == 0
    return path


@pytest.fixture
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    yield seen
    event.remove(Engine, "before_cursor_execute", count)


def outputs(config: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[str, str]:
    """The command's output with pages of 7 rows and with one page for everything, both at the same
    instant (the html report labels its time axis to the second)."""
    with time_machine.travel(datetime.now(UTC), tick=False):
        small = run_cli("--config", str(config), *args)
        for module, name in ((commands, "HISTORY_PAGE"), (history, "PAGE"), (archive, "PAGE")):
            monkeypatch.setattr(module, name, 10_000)
        whole = run_cli("--config", str(config), *args)
    assert small.code == whole.code == 0, small.err + whole.err
    return small.out, whole.out


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    for module, name in ((commands, "HISTORY_PAGE"), (history, "PAGE"), (archive, "PAGE")):
        monkeypatch.setattr(module, name, 7)


@pytest.mark.parametrize("args", [["history", "--json"], ["history"], ["history", "--json", "--since", "1d"],
                                  ["report", "--format", "markdown"], ["report", "--format", "atom"],
                                  ["report", "--format", "html"]])
def test_pages_give_the_same_output(config: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    small, whole = outputs(config, monkeypatch, *args)
    timeline = re.compile(r"<svg.*?</svg>", re.S)       # drawn against the time of the run
    assert timeline.sub("", small) == timeline.sub("", whole)
    assert ("Item 59" in small and "edited" in small) if args[0] == "report" else "g59" in small


def test_history_json_is_the_document_json_prints(config: Path) -> None:
    out = run_cli("--config", str(config), "history", "--json").out
    data = json.loads(out)
    assert out == json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    assert len(data["documents"]) == DOCUMENTS + OTHER
    assert [d["feed"] for d in data["documents"]] == ["f"] * DOCUMENTS + ["z"] * OTHER
    assert [v["kind"] for v in data["documents"][7]["versions"]] == ["added", "removed"]
    assert [v["kind"] for v in data["documents"][3]["versions"]] == ["added", "changed"]
    assert [v["kind"] for v in data["documents"][5]["versions"]] == ["added", "changed"]
    empty = run_cli("--config", str(config), "history", "--json", "--since", "2999-01-01").out
    assert empty == json.dumps({"documents": []}, indent=2) + "\n"


def test_export_pages_give_the_same_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small, whole = outputs(config, monkeypatch, "export")
    drop_time = [json.loads(line) for line in small.splitlines()][1:]
    assert [json.loads(line) for line in whole.splitlines()][1:] == drop_time
    assert sum(r["type"] == "version" for r in drop_time) == DOCUMENTS + 5 + 14 + OTHER     # item 7 left


@pytest.mark.parametrize("args", [["history", "--json"], ["report", "--format", "markdown"], ["export"]])
def test_reads_take_a_few_queries_a_page_not_a_few_a_row(config: Path, statements: list[str],
                                                         args: list[str]) -> None:
    assert run_cli("--config", str(config), *args).code == 0
    pages = -(-(DOCUMENTS + OTHER) // 7) + 1
    assert len(statements) <= 6 * pages + 20, len(statements)
