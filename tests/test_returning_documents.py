"""A document that comes back after it was reported removed continues its history (issue 16 item 9):
a new version number, kind `added` with `"returned": true`, and history, messages and reports that say
it came back — not "v1: new document" a second time."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Result, rss, run_cli, write_config
from tests.receivers import Webhook


class Site:
    def __init__(self, tmp_path: Path, hook: Webhook) -> None:
        self.feed = tmp_path / "feed.xml"
        self.config = write_config(tmp_path / "feedwatch.yaml", f"""database: sqlite:///fw.db
targets:
  chat: {{urls: ['{hook.url()}'], format: markdown}}
feeds:
  - {{name: k8s, url: feed.xml, removal_grace: 1, notify: [chat]}}
""")

    def poll(self, *items: tuple[str, str]) -> Result:
        self.feed.write_text(rss(*items), encoding="utf-8")
        result = run_cli("--config", str(self.config), "run", "--force", "--json")
        assert result.code == 0, result.err
        return result

    def cli(self, *args: str) -> Result:
        result = run_cli("--config", str(self.config), *args)
        assert result.code == 0, result.err
        return result


def test_a_document_back_unchanged_continues_its_history(tmp_path: Path, hook: Webhook) -> None:
    site = Site(tmp_path, hook)
    site.poll(("a", "alpha"), ("b", "bee"))
    gone = site.poll(("a", "alpha"))
    assert [(c["kind"], c["version"]) for c in gone.json()["changes"]] == [("removed", 1)]
    back = site.poll(("a", "alpha"), ("b", "bee"))
    [change] = back.json()["changes"]
    assert {k: change[k] for k in ("kind", "version", "returned", "summary")} == {
        "kind": "added", "version": 2, "returned": True,
        "summary": "back in the feed after its removal, as it was in v1"}
    [doc] = [d for d in site.cli("history", "--json").json()["documents"] if d["title"] == "B"]
    assert [(v["version"], v["kind"]) for v in doc["versions"]] == [(1, "added"), (1, "removed"), (2, "added")]
    assert not doc["removed"]
    assert "v2   " in site.cli("history", "--document", "b").out
    message = hook.bodies[-1]["message"]
    assert "Back in the feed after its removal" in message and "New document" not in message


def test_a_document_back_with_new_text_is_diffed_against_its_last_version(tmp_path: Path, hook: Webhook) -> None:
    site = Site(tmp_path, hook)
    site.poll(("a", "alpha"), ("b", "the old words"))
    site.poll(("a", "alpha"))
    back = site.poll(("a", "alpha"), ("b", "the new words"))
    [change] = back.json()["changes"]
    assert (change["kind"], change["version"], change["returned"]) == ("added", 2, True)
    assert change["summary"].startswith("back in the feed after its removal, changed since v1: ")
    assert change["inserted"] == ["new"] and change["deleted"] == ["old"]
    diff = site.cli("diff", "b", "--format", "json").json()
    assert (diff["from"], diff["to"]) == (1, 2)
    report = site.cli("report", "--format", "markdown").out
    assert "Back in the feed after its removal" in report
    first_time = [c for c in site.poll(("a", "alpha"), ("b", "the new words"), ("c", "sea")).json()["changes"]]
    assert [(c["kind"], c.get("returned")) for c in first_time] == [("added", None)]   # new: no flag at all
