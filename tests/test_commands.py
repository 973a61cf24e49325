"""What a newcomer sees from the everyday commands (issue 16): ids that can be typed back, errors that say
which versions exist, plurals, confirmations, one time-zone rule, quiet cron runs, pausing a feed."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Result, rss, run_cli, run_process, write_config


class Site:
    """A config in tmp_path whose one feed is a local file the test rewrites between runs."""

    def __init__(self, tmp_path: Path, extra: str = "") -> None:
        self.feed = tmp_path / "feed.xml"
        self.config = write_config(tmp_path / "feedwatch.yaml", "database: sqlite:///fw.db\nfeeds:\n"
                                   f"  - name: k8s\n    url: feed.xml\n{extra}")

    def publish(self, *items: tuple[str, str]) -> None:
        self.feed.write_text(rss(*items), encoding="utf-8")

    def cli(self, *args: str) -> Result:
        return run_cli("--config", str(self.config), *args)

    def run(self, *args: str) -> Result:
        result = self.cli(*args, "run", "--force")
        assert result.code == 0, result.err
        return result


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path)
    s.publish(("a", "one"), ("b", "bee"))
    s.run()
    for text in ("two", "three"):
        s.publish(("a", text), ("b", "bee"))
        s.run()
    return s


def one_line_error(result: Result) -> str:
    assert result.code == 2, result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


# ------------------------------------------------------------------------------------------ item 7: ids


def test_history_shows_document_ids_as_they_are_typed_and_hash_ids_are_accepted(site: Site) -> None:
    out = site.cli("history").out
    heading = next(line for line in out.splitlines() if line.endswith(": A"))
    assert heading == "k8s: document 1: A"
    assert "#" not in out
    typed = site.cli("diff", "1")
    assert typed.code == 0 and "v2 \u2192 v3" in typed.out
    assert site.cli("diff", "#1").out == typed.out          # as earlier versions printed it, quoted
    assert site.cli("show", "#1", "--version", "1").out == "one\n"


# ------------------------------------------------------------------------------------------ item 8: versions


@pytest.mark.parametrize(("args", "expected"), [
    (["diff", "1", "--to", "99"], "diff --to 99: document 1 has no version 99 (its versions: 1-3)"),
    (["diff", "1", "--from", "7"], "diff --from 7: document 1 has no version 7 (its versions: 1-3)"),
    (["diff", "1", "--to", "1"], "diff --to 1: v1 is the first stored version of document 1, nothing to compare "
                                 "it with (its versions: 1-3)"),
    (["diff", "1", "--from", "2", "--to", "2"], "diff: --from and --to are both version 2 (document 1 has "
                                                "versions 1-3)"),
    (["diff", "2"], "document 2 has one version so far (v1): nothing to compare yet"),
    (["show", "1", "--version", "4"], "document 1 has no version 4 (its versions: 1-3)"),
])
def test_version_errors_name_the_versions_there_are(site: Site, args: list[str], expected: str) -> None:
    assert one_line_error(site.cli(*args)) == f"feedwatch: {expected}"


def test_diff_from_alone_compares_with_the_latest(site: Site) -> None:
    result = site.cli("diff", "1", "--from", "1", "--format", "json")
    assert result.code == 0, result.err
    assert (result.json()["from"], result.json()["to"]) == (1, 3)


# ------------------------------------------------------------------------------------------ item 13


def test_one_of_a_thing_is_singular(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.publish(("a", "one"))
    check = site.cli("check")
    assert check.code == 0, check.err
    assert "(1 feed, 0 targets)" in check.out
    site.run()
    export = site.cli("export", "-o", str(tmp_path / "h.jsonl"))
    assert "exported 1 feed: 1 document, 1 version, 1 change record" in export.err


def test_report_output_says_where_it_wrote_and_takes_o(site: Site, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    result = site.cli("report", "-o", str(target))
    assert result.code == 0, result.err
    assert result.out == "" and result.err.endswith(f" INFO report: wrote the HTML page to {target}\n")
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    quiet = site.cli("-q", "report", "--format", "atom", "--output", str(tmp_path / "out" / "changes.atom"))
    assert quiet.code == 0 and quiet.out == "" and quiet.err == ""


def test_diff_format_has_help_text() -> None:
    from monitor.cli import build_parser

    diff = build_parser()._subparsers._group_actions[0].choices["diff"]   # type: ignore[union-attr]
    fmt = next(a for a in diff._actions if a.dest == "format")
    assert fmt.help and all(choice in fmt.help for choice in ("text", "markdown", "html", "json"))


@pytest.fixture
def berlin() -> Iterator[None]:
    """The local time zone is Europe/Berlin (CET in winter) for this test."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_every_command_shows_local_time_with_its_zone(site: Site, berlin: None, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "fw.db") as db:     # pin the changes to a known winter instant
        db.execute("UPDATE changes SET detected_at = '2026-01-15 12:00:00.000000'")
        db.execute("UPDATE feeds SET last_polled_at = '2026-01-15 12:00:00.000000'")
    stamp = "2026-01-15 13:00 CET"
    assert stamp in site.cli("history").out
    assert stamp in site.cli("status").out
    assert stamp in site.cli("report", "--format", "markdown").out
    page = site.cli("report").out
    assert stamp in page and "Times are in CET." in page
    assert "UTC" not in site.cli("history").out


def test_atom_and_html_reports_have_the_same_title(site: Site) -> None:
    page = site.cli("report").out
    title = re.search(r"<h1>(.*?)</h1>", page)
    assert title is not None and title.group(1) == "Changes in k8s"
    atom = site.cli("report", "--format", "atom").out
    assert "<title>feedwatch: Changes in k8s</title>" in atom


def test_history_since_shows_only_later_changes(site: Site, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "fw.db") as db:
        db.execute("UPDATE changes SET detected_at = '2025-01-01 00:00:00.000000' WHERE version < 3")
    recent = site.cli("history", "--since", "2025-06-01", "--json").json()["documents"]
    assert [(d["id"], [v["version"] for v in d["versions"]]) for d in recent] == [(1, [3])]
    everything = site.cli("history", "--since", "2024-01-01", "--json").json()["documents"]
    assert sum(len(d["versions"]) for d in everything) == 4
    assert site.cli("history", "--since", "30d").out.count("  v") == 1
    bad = one_line_error(site.cli("history", "--since", "last tuesday"))
    assert bad.startswith("feedwatch: history: --since 'last tuesday': not a date")


def test_history_marks_pruned_versions(tmp_path: Path) -> None:
    site = Site(tmp_path, "    retention: {versions: 1}\n")
    for text in ("one", "two", "three"):
        site.publish(("a", text))
        site.run()
    assert site.cli("prune").code == 0
    lines = [line for line in site.cli("history").out.splitlines() if line.startswith("  v")]
    assert [line.endswith("(pruned: no longer stored)") for line in lines] == [True, True, False]
    versions = site.cli("history", "--json").json()["documents"][0]["versions"]
    assert [v.get("pruned", False) for v in versions] == [True, True, False]


def test_prune_dry_run_does_not_pretend_the_file_shrank(tmp_path: Path) -> None:
    site = Site(tmp_path, "    retention: {versions: 1}\n")
    for text in ("one", "two"):
        site.publish(("a", text))
        site.run()
    out = site.cli("prune", "--dry-run").out
    assert "->" not in out and re.search(r"the database file is [\d.,]+ KiB", out), out


def test_no_config_message_names_xdg_and_init(tmp_path: Path) -> None:
    message = one_line_error(run_cli("run"))
    assert "$XDG_CONFIG_HOME/feedwatch/config.yaml" in message
    assert str(tmp_path / "xdg-config" / "feedwatch" / "config.yaml") in message
    assert "feedwatch init" in message and "config/feedwatch.example.yaml" not in message


def test_quiet_run_prints_only_its_changes_as_the_cron_file_says(tmp_path: Path) -> None:
    cron = (Path(__file__).resolve().parent.parent / "deploy" / "cron" / "feedwatch.cron").read_text()
    assert "a run that found nothing new mails\n#   nothing, one that did mails a line per change" in cron
    site = Site(tmp_path)
    site.publish(("a", "one"))
    assert site.run("-q").out == "k8s: first poll: 1 document recorded (not notified)\n"
    nothing = site.run("-q")
    assert (nothing.out, nothing.err) == ("", "")
    site.publish(("a", "two"), ("b", "new"))
    changes = site.run("-q")
    assert changes.err == ""
    assert changes.out == ("k8s: changed \u201cA\u201d v2: start of the document: 1 paragraph added, "
                           "1 paragraph removed\nk8s: added \u201cB\u201d v1: new document\n")


def test_a_paused_feed_keeps_its_history_and_is_not_polled(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.publish(("a", "one"))
    site.run()
    site.config.write_text(site.config.read_text() + "    paused: true\n")
    site.publish(("a", "two"))
    result = site.cli("run", "--force", "--json")
    assert result.code == 0, result.err
    assert result.json()["feeds"] == [] and result.json()["changes"] == []
    status = site.cli("status", "--json").json()["feeds"]
    assert [(f["name"], f["paused"]) for f in status] == [("k8s", True)]
    assert "paused" in site.cli("status").out
    assert len(site.cli("history", "--json").json()["documents"]) == 1
    named = site.cli("-v", "run", "--feed", "k8s", "--force")
    assert named.code == 0 and "nothing polled: the selected feeds are paused" in named.err
    assert "being polled by another feedwatch" not in named.err
    metrics = tmp_path / "m.prom"
    assert site.cli("run", "--metrics-file", str(metrics)).code == 0
    text = metrics.read_text(encoding="utf-8")       # no per-feed series: "not polled" alerts stay quiet
    assert "feedwatch_polls" in text and 'feed="k8s"' not in text
    site.config.write_text(site.config.read_text().replace("    paused: true\n", ""))
    resumed = site.cli("run", "--force", "--json")
    assert [c["kind"] for c in resumed.json()["changes"]] == ["changed"]
    assert json.loads(site.cli("check", "--json").out)["ok"]


# ------------------------------------------------------------------------------------------ item 4: init


def test_init_writes_a_starter_config_that_every_command_then_finds(tmp_path: Path) -> None:
    where = tmp_path / "xdg-config" / "feedwatch" / "config.yaml"
    first = run_cli("init", "https://www.example.org/blog/feed.xml")
    assert first.code == 0, first.err
    assert f"wrote a starter config to {where}" in first.out
    text = where.read_text(encoding="utf-8")
    assert '    url: "https://www.example.org/blog/feed.xml"' in text and "  - name: example.org " in text
    assert text.count("\n#") >= 10                      # commented for a newcomer
    check = run_cli("check")                            # found without --config, from any directory
    assert check.code == 0 and f"config {where}: OK (1 feed, 0 targets)" in check.out
    again = run_cli("init", "https://example.com/other.xml")
    assert one_line_error(again).endswith(f"init: {where} already exists; not overwriting it (edit it, or pass "
                                          "--config NEW-PATH)")
    assert where.read_text(encoding="utf-8") == text


def test_init_without_a_url_watches_the_kubernetes_feed_and_refuses_a_bad_url(tmp_path: Path) -> None:
    bad = run_cli("--config", str(tmp_path / "bad.yaml"), "init", "ftp://example.org/feed")
    assert one_line_error(bad) == "feedwatch: init: ftp://example.org/feed: unsupported URL scheme 'ftp' (http, " \
                                  "https, file or a local path)"
    assert not (tmp_path / "bad.yaml").exists()
    newline = run_cli("--config", str(tmp_path / "bad.yaml"), "init", "http://x.example/\n")
    assert one_line_error(newline) == "feedwatch: init: 'http://x.example/\\n': a URL cannot hold a control " \
                                      "character ('\\n')"
    assert not (tmp_path / "bad.yaml").exists()
    for url, reason in [("http://[::1/feed", "Invalid IPv6 URL"), ("http://[zz]/feed", "'zz' does not appear "
                        "to be an IPv4 or IPv6 address"), ("https://", "no host"),
                        ("http://example.org:99999/", "Port out of range 0-65535")]:
        malformed = run_cli("--config", str(tmp_path / "bad.yaml"), "init", url)    # once a traceback
        assert one_line_error(malformed) == f"feedwatch: init: {url}: invalid URL: {reason}", malformed.err
    assert not (tmp_path / "bad.yaml").exists()
    made = run_cli("--config", str(tmp_path / "mine.yaml"), "init")
    assert made.code == 0, made.err
    from monitor.config import load

    settings = load(tmp_path / "mine.yaml")
    assert [(f.name, f.url) for f in settings.feeds] == [("k8s-community",
                                                         "https://www.kubernetes.dev/community/index.xml")]


# ------------------------------------------------------------------------------------------ item 6: paths


def test_relative_feed_and_database_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "feedwatch"
    conf.mkdir(parents=True)
    (conf / "feeds").mkdir()
    (conf / "feeds" / "news.xml").write_text(rss(("a", "one")), encoding="utf-8")
    config = write_config(conf / "feedwatch.yaml", "database: sqlite:///state/fw.db\nfeeds:\n"
                          "  - {name: news, url: feeds/news.xml}\n  - {name: gone, url: feeds/missing.xml}\n")
    elsewhere = tmp_path / "cron-starts-here"
    elsewhere.mkdir()
    result = run_process("--config", str(config), "run", "--json", cwd=elsewhere)   # as cron or systemd would
    assert result.code == 1, result.err                                            # one feed failed
    feeds = {f["name"]: f for f in result.json()["feeds"]}
    assert feeds["news"]["status"] == "ok" and feeds["news"]["documents"] == 1
    assert feeds["gone"]["error"] == f"fetch: gone: no such file: {conf / 'feeds' / 'missing.xml'}"
    assert (conf / "state" / "fw.db").is_file() and not (elsewhere / "state").exists()
    status = run_process("--config", str(config), "status", "--json", cwd=tmp_path).json()
    assert {f["name"]: f["url"] for f in status["feeds"]}["news"] == str(conf / "feeds" / "news.xml")


# ------------------------------------------------------------------------------------------ item 4: demo


def test_demo_replays_real_history_offline_and_ends_with_the_report(tmp_path: Path) -> None:
    where = tmp_path / "demo"
    result = run_process("demo", "--dir", str(where), timeout=120)
    assert result.code == 0, result.err
    out = result.out
    assert "k8s-community: first poll: 4 documents recorded (not notified)" in out
    assert "changed \u201cCommunity: Code Of Conduct\u201d v2: Our Standards: 1 list item added" in out   # amendment
    assert "{+Using CNCF projects or community spaces for political campaigning" in out                  # its diff
    assert ("Moved \u201cSpecific topics and activities\u201d, \u201cThe 1:1 Hour\u201d from Current mentoring "
            "activities to Discontinued activities") in out
    assert "k8s-community: document 3: Community: Code Of Conduct" in out                                 # history
    report = where / "report.html"
    assert out.rstrip().splitlines()[-2] == f"The HTML report of these changes is at {report}"
    page = report.read_text(encoding="utf-8")
    assert "<h1>Changes in k8s-community</h1>" in page and "Discontinued activities" in page
    assert "http" not in (where / "feedwatch.yaml").read_text()        # a local file: nothing from the network
    again = run_process("demo", "--dir", str(where))
    assert again.code == 2 and "is not an empty directory" in again.err


def test_diff_of_a_document_pruned_to_one_version_says_the_others_were_pruned(site: Site) -> None:
    site.config.write_text(site.config.read_text() + "    retention: {versions: 1}\n")
    assert site.cli("prune").code == 0
    result = site.cli("diff", "a")
    assert result.code == 2
    assert result.err.strip() == "feedwatch: document 1 has one version still stored (v3; v1-v2 were pruned): " \
                                 "nothing to compare it with"


def test_demo_and_init_refuse_the_options_they_cannot_use(tmp_path: Path) -> None:
    """`demo --database X` once wrote its own database elsewhere, silently; `init --database` ignored it."""
    demo = run_cli("--database", str(tmp_path / "given.db"), "demo", "--dir", str(tmp_path / "d"))
    assert demo.code == 2 and "demo: --config and --database do not apply" in demo.err
    init = run_cli("--config", str(tmp_path / "c.yaml"), "--database", str(tmp_path / "given.db"), "init")
    assert init.code == 2 and "init: --database does not apply" in init.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
