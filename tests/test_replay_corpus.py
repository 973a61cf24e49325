"""The 60-step Kubernetes community replay: every step reports exactly the manifest's changes.

One URL on a local HTTP server serves the feed; its body is switched per step and the server honours
ETag/If-None-Match. After each step `feedwatch run --force --json` must report exactly the manifest's
changed and added documents (markup-only steps report nothing), and the words that the manifest's visible
text diff adds or removes must appear in the change's `inserted` / `deleted` fragments.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import lxml.etree
import lxml.html
import pytest

from tests.helpers import FeedServer, corpus_steps, empty_postgres, manifest, run_cli, write_config

WORD = re.compile(r"\w+")


CAP = 60   # the manifest caps each visible_text_diff at 60 lines


def expected_words(lines: list[str], sign: str, other: str, other_text: str) -> set[str]:
    """Words of the manifest's `sign` lines that the other side does not have.

    Normally the other side is the `other` lines (a multiset difference). A capped diff is incomplete,
    so then the other side is the whole other version's visible text (read here with lxml, independently
    of feedwatch's normaliser): only words that are entirely new (or entirely gone) are expected.
    """
    def words(prefix: str) -> Counter[str]:
        return Counter(w for line in lines if line.startswith(prefix)
                       for w in WORD.findall(line[2:].replace("[title]", "")))
    if len(lines) >= CAP:
        return set(words(sign + " ")) - set(WORD.findall(other_text))
    return set(words(sign + " ") - words(other + " "))


def visible_text(step: int, guid: str) -> str:
    """Title and visible text of one item of one corpus step."""
    tree = lxml.etree.parse(str(corpus_steps()[step]))
    for item in tree.iter("item"):
        if item.findtext("guid") == guid:
            html = item.findtext("description") or ""
            body = lxml.html.fromstring(html).text_content() if html.strip() else ""
            return (item.findtext("title") or "") + " " + body
    return ""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replay(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Run all 60 steps once per database; yield (manifest step, run --json output) pairs."""
    tmp = tmp_path_factory.mktemp("replay")
    database = f"sqlite:///{tmp / 'feedwatch.db'}"
    if request.param == "postgresql":
        database = request.getfixturevalue("postgres_server")
        empty_postgres(database)
    server = FeedServer()
    try:
        url = server.set("/community/index.xml", corpus_steps()[0].read_bytes())
        config = write_config(tmp / "feedwatch.yaml", f"""
database: {database}
feeds:
  - name: k8s-community
    url: {url}
""")
        results = []
        for step, path in zip(manifest()["steps"], corpus_steps(), strict=True):
            server.set("/community/index.xml", path.read_bytes())
            result = run_cli("--config", str(config), "run", "--force", "--json")
            assert result.code == 0, result.err
            results.append((step, result.json()))
        # The server really saw conditional requests: the same body polled twice answers 304.
        result = run_cli("--config", str(config), "run", "--force", "--json")
        assert result.json()["feeds"][0]["status"] == "not_modified"
        assert server.count("/community/index.xml", status=304) == 1
        return results
    finally:
        server.close()


def test_replay_has_sixty_steps(replay: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    assert len(replay) == 60


@pytest.mark.parametrize("index", range(60))
def test_step_reports_exactly_the_manifest_changes(
        replay: list[tuple[dict[str, Any], dict[str, Any]]], index: int) -> None:
    step, out = replay[index]
    reported = {(c["document"], c["kind"]) for c in out["changes"]}
    markup_only = set(step["markup_only"])
    expected = {(g, "changed") for g in step["changed"] if g not in markup_only}
    expected |= {(g, "added") for g in step["added"]}
    expected |= {(g, "removed") for g in step["removed"]}
    assert reported == expected, step["summary"]
    assert len(out["changes"]) == len(expected), "a document was reported twice"
    assert out["feeds"] == [{"name": "k8s-community", "status": "ok", "error": None,
                             "documents": out["feeds"][0]["documents"]}]


@pytest.mark.parametrize("index", range(60))
def test_step_words_appear_in_inserted_and_deleted(
        replay: list[tuple[dict[str, Any], dict[str, Any]]], index: int) -> None:
    step, out = replay[index]
    by_doc = {c["document"]: c for c in out["changes"]}
    for guid, lines in step["visible_text_diff"].items():
        if guid in step["markup_only"] or guid not in step["changed"]:
            continue
        change = by_doc[guid]
        inserted = Counter(w for f in change["inserted"] for w in WORD.findall(f))
        deleted = Counter(w for f in change["deleted"] for w in WORD.findall(f))
        old, new = visible_text(index - 1, guid), visible_text(index, guid)
        missing_ins = expected_words(lines, "+", "-", old) - set(inserted)
        missing_del = expected_words(lines, "-", "+", new) - set(deleted)
        assert not missing_ins, f"step {index}: inserted lacks {sorted(missing_ins)}"
        assert not missing_del, f"step {index}: deleted lacks {sorted(missing_del)}"


def test_first_step_is_a_silent_baseline(replay: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    _, out = replay[0]
    assert {c["kind"] for c in out["changes"]} == {"added"}
    assert all(c.get("baseline") for c in out["changes"])
    assert out["deliveries"] == {"sent": 0, "failed": 0, "pending": 0}
