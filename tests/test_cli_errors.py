"""Bad config and bad command-line input: one clear line naming file/line/key or argument, exit 2, no writes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_process, write_config

GOOD_FEED = "feeds:\n  - name: k8s\n    url: feed.xml\n"

CONFIG_ERRORS = {
    "unknown-key": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: feed.xml\n    intreval: 6h\n",
        "config: {path}:5: feeds[0].intreval: unknown key (did you mean 'interval'?)"),
    "unknown-top-level-key": (
        "database: sqlite:///fw.db\nfeed:\n  - name: k8s\n",
        "config: {path}:2: feed: unknown key (did you mean 'feeds'?)"),
    "bad-yaml": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n   url: [unclosed\n",
        "config: {path}:4: invalid YAML"),
    "missing-url": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n",
        "config: {path}:3: feeds[0]: missing required key 'url'"),
    "bad-interval": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: feed.xml\n    interval: 1x\n",
        "config: {path}:5: feeds[0].interval: '1x' is not a duration (e.g. 90s, 30m, 6h, 1d)"),
    "wrong-type": (
        "database: sqlite:///fw.db\ndefaults:\n  removal_grace: three\nfeeds:\n  - name: k8s\n    url: f.xml\n",
        "config: {path}:3: defaults.removal_grace: expected a whole number, got the string 'three'"),
    "unknown-target": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: feed.xml\n    notify: [chat]\n",
        "config: {path}:5: feeds[0].notify: unknown target 'chat' (targets: none are defined)"),
    "unset-env-var": (
        "database: sqlite:///fw.db\ntargets:\n  chat:\n    urls: [\"json://${FW_TEST_UNSET_TOKEN}@x\"]\n"
        + GOOD_FEED,
        "config: {path}:4: targets.chat.urls[0]: environment variable FW_TEST_UNSET_TOKEN is not set"),
    "duplicate-feed": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: a.xml\n  - name: k8s\n    url: b.xml\n",
        "config: {path}:5: feeds[1].name: duplicate feed name 'k8s' (first used in feeds[0])"),
    "duplicate-key": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: a.xml\n    url: b.xml\n",
        "config: {path}:5: feeds[0].url: duplicate key"),
    "bad-regex": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: a.xml\n    ignore: ['(unclosed']\n",
        "config: {path}:5: feeds[0].ignore[0]: invalid regex"),
    "bad-format": (
        "database: sqlite:///fw.db\ntargets:\n  chat:\n    urls: [json://localhost]\n    format: pdf\n"
        + GOOD_FEED,
        "config: {path}:5: targets.chat.format: 'pdf' is not one of: text, markdown, html"),
    "bad-scheme": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: ftp://example.org/feed\n",
        "config: {path}:4: feeds[0].url: unsupported URL scheme 'ftp'"),
    "unclosed-ipv6-host": (    # once accepted by check, then every poll failed (and init, opml crashed)
        'database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: "http://[::1/feed"\n',
        "config: {path}:4: feeds[0].url: invalid URL: Invalid IPv6 URL"),
    "port-out-of-range": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: http://example.org:99999/feed\n",
        "config: {path}:4: feeds[0].url: invalid URL: Port out of range 0-65535"),
    "no-host": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: https:///feed.xml\n",
        "config: {path}:4: feeds[0].url: invalid URL: no host"),
    "target-listed-twice": (    # passed check; then every poll with a change failed (UNIQUE constraint)
        "database: sqlite:///fw.db\ntargets:\n  h:\n    urls: [json://localhost]\nfeeds:\n  - name: k8s\n"
        "    url: feed.xml\n    notify: [h, h]\n",
        "config: {path}:8: feeds[0].notify: target 'h' is listed twice"),
    "zero-interval": (
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: feed.xml\n    interval: 0s\n",
        "config: {path}:5: feeds[0].interval: '0s' must be longer than nothing (e.g. 90s, 30m, 6h, 1d)"),
    "not-a-mapping": ("- just\n- a list\n", "config: {path}:1: the top level must be a mapping of keys"),
    "interval-past-any-date": (    # next_due would overflow datetime on every poll
        "database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: feed.xml\n    interval: 999999999d\n",
        "config: {path}:5: feeds[0].interval: '999999999d' is longer than 36500d (100 years)"),
    "newline-in-url": (
        'database: sqlite:///fw.db\nfeeds:\n  - name: k8s\n    url: "http://x.example/\\n"\n',
        "config: {path}:4: feeds[0].url: a URL cannot hold a control character ('\\n')"),
    "header-injection": (
        'database: sqlite:///fw.db\npolling: {user_agent: "bot\\r\\nX-Injected: 1"}\n' + GOOD_FEED,
        "config: {path}:2: polling.user_agent: a User-Agent cannot hold a control character ('\\r')"),
    "script-report-url": (
        'database: sqlite:///fw.db\nreport_url: "javascript:alert(1)"\n' + GOOD_FEED,
        "config: {path}:2: report_url: must be an http(s) URL"),
    "recursive-alias": (
        "database: sqlite:///fw.db\nx: &a [*a]\n" + GOOD_FEED,
        "config: {path}:2: x[0]: a YAML alias refers to a value that contains it (an endless value)"),
    "alias-bomb": (     # nine levels of nine aliases: 387 million values from ten lines
        "database: sqlite:///fw.db\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"{c}: &{c} [{', '.join(['*' + chr(ord(c) - 1)] * 9)}]\n" for c in "bcdefghij") + GOOD_FEED,
        "config: {path}:2: f[0][2][0][5][8]: YAML aliases repeat values more than 10,000 times"),
}


@pytest.mark.parametrize("name", CONFIG_ERRORS)
@pytest.mark.parametrize("command", ["run", "check"])
def test_bad_config_is_one_line_exit_2_and_writes_nothing(name: str, command: str, tmp_path: Path) -> None:
    text, expected = CONFIG_ERRORS[name]
    path = write_config(tmp_path / "feedwatch.yaml", text)
    result = run_cli("--config", str(path), command)
    assert result.code == 2
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("feedwatch: " + expected.format(path=path)), lines[0]
    assert not (tmp_path / "fw.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("xdg")) == ["feedwatch.yaml"]


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.yaml"), "run")
    assert result.code == 2
    assert result.err.strip() == f"feedwatch: config: {tmp_path / 'nope.yaml'}: file not found"


def test_no_config_anywhere(tmp_path: Path) -> None:
    result = run_cli("run")
    assert result.code == 2
    assert "no configuration file found" in result.err and len(result.err.strip().splitlines()) == 1


CLI_ERRORS = {
    "unknown-command": (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    "bad-format": (["diff", "1", "--format", "pdf"], "argument --format: invalid choice: 'pdf'"),
    "bad-version": (["show", "1", "--version", "abc"], "argument --version: 'abc' is not a version number"),
    "missing-doc": (["diff"], "the following arguments are required: DOC"),
    "unknown-option": (["run", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    "unknown-feed": (["run", "--feed", "nope"], "--feed nope: no such feed"),
    "bad-port": (["watch", "--metrics-port", "99999"], "argument --metrics-port: '99999' is not a TCP port (1-65535)"),
    "huge-version": (["show", "1", "--version", "99999999999999999999"], "argument --version: '99999999999999999999' "
                     "is not a version number"),
    "until-year-10000": (["report", "--until", "9999-12-31"], "report: --until '9999-12-31': out of range"),
    "ancient-since": (["history", "--since", "0001-01-01T00:00:00+05:00"], "history: --since "
                      "'0001-01-01T00:00:00+05:00': out of range"),
}


@pytest.mark.parametrize("name", CLI_ERRORS)
def test_bad_cli_input_is_one_line_exit_2(name: str, tmp_path: Path) -> None:
    args, expected = CLI_ERRORS[name]
    config = write_config(tmp_path / "feedwatch.yaml", "database: sqlite:///fw.db\n" + GOOD_FEED)
    result = run_cli("--config", str(config), *args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err
    assert not (tmp_path / "fw.db").exists()


def test_unknown_document_after_a_run(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text("<rss version='2.0'><channel><title>t</title><item><guid>a</guid><title>A</title>"
                    "<description>hello</description></item></channel></rss>")
    config = write_config(tmp_path / "feedwatch.yaml", "database: sqlite:///fw.db\n" + GOOD_FEED)
    assert run_cli("--config", str(config), "run").code == 0
    huge = "99999999999999999999999"      # past the database's integers: no id, so no document (no OverflowError)
    for args in (["show", "99"], ["diff", "nope"], ["history", "--document", "zzz"], ["show", huge], ["diff", huge],
                 ["history", "--document", huge], ["report", "--document", huge], ["show", "\u00b2"]):
        result = run_cli("--config", str(config), *args)
        assert result.code == 2 and "no document matches" in result.err
        assert len(result.err.strip().splitlines()) == 1
    one_version = run_cli("--config", str(config), "diff", "a")
    assert one_version.code == 2 and "has one version so far (v1): nothing to compare yet" in one_version.err


def test_help_lists_the_commands() -> None:
    result = run_process("--help")
    assert result.code == 0
    for command in ("run", "watch", "check", "status", "history", "show", "diff", "report", "notify-test"):
        assert command in result.out
    assert "Exit codes" in result.out


# ------------------------------------------------------------------------------------------ check: everything


EVERYTHING_WRONG = """\
database: sqlite:///fw.db
defaults:
  interval: often
  removal_grace: 0
targets:
  chat:
    urls: ["json://127.0.0.1:9/hook"]
    format: pdf
feeds:
  - name: k8s
    url: feed.xml
    intreval: 6h
    notify: [mail]
  - name: other
    url: ftp://example.org/feed
    ignore: {pattern: x}
"""


@pytest.mark.parametrize("command", ["check", "run"])
def test_check_reports_every_problem_at_once_in_yaml_terms(command: str, tmp_path: Path) -> None:
    path = write_config(tmp_path / "feedwatch.yaml", EVERYTHING_WRONG)
    result = run_cli("--config", str(path), command)
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines() == [f"feedwatch: config: {path}:{line}: {what}" for line, what in [
        (3, "defaults.interval: 'often' is not a duration (e.g. 90s, 30m, 6h, 1d)"),
        (4, "defaults.removal_grace: must be 1 or more, got 0"),
        (8, "targets.chat.format: 'pdf' is not one of: text, markdown, html"),
        (12, "feeds[0].intreval: unknown key (did you mean 'interval'?)"),
        (13, "feeds[0].notify: unknown target 'mail' (targets: chat)"),
        (15, "feeds[1].url: unsupported URL scheme 'ftp' (http, https, file or a local path)"),
        (16, "feeds[1].ignore: expected a list, got a mapping"),
    ]]
    assert not (tmp_path / "fw.db").exists()


def test_a_config_with_only_reference_errors_lists_them_all(tmp_path: Path) -> None:
    path = write_config(tmp_path / "feedwatch.yaml", "database: sqlite:///fw.db\nfeeds:\n"
                        "  - {name: a, url: a.xml, notify: [mail]}\n  - {name: a, url: b.xml}\n"
                        "  - {name: 'bad name', url: c.xml, interval: 5x}\n")
    lines = run_cli("--config", str(path), "check").err.splitlines()
    assert [line.split(": ", 4)[3:] for line in lines] == [
        ["feeds[0].notify", "unknown target 'mail' (targets: none are defined)"],
        ["feeds[1].name", "duplicate feed name 'a' (first used in feeds[0])"],
        ["feeds[2].name", "'bad name' is not a valid name (letters, digits, '.', '_' and '-'; at most 100)"],
        ["feeds[2].interval", "'5x' is not a duration (e.g. 90s, 30m, 6h, 1d)"],
    ]
    assert [line.split(":")[3] for line in lines] == ["3", "4", "5", "5"]


def test_a_bad_apprise_url_fails_check_with_its_line_and_nothing_else(tmp_path: Path) -> None:
    path = write_config(tmp_path / "feedwatch.yaml", "database: sqlite:///fw.db\ntargets:\n  chat:\n"
                        "    urls:\n      - json://127.0.0.1:9/ok\n      - nonsense://what\n" + GOOD_FEED)
    result = run_cli("--config", str(path), "check")
    assert (result.code, result.out) == (2, "")                         # no "OK" first
    assert result.err.splitlines() == [f"feedwatch: config: {path}:6: targets.chat.urls[1]: Apprise does not "
                                       "understand nonsense://what"]       # and no Apprise ERROR line
    as_json = run_cli("--config", str(path), "check", "--json")
    assert as_json.code == 2 and as_json.json()["ok"] is False and len(as_json.json()["problems"]) == 1


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "feeds: []\n", "database: sqlite:///fw.db\n"])
def test_an_empty_config_fails_check(text: str, tmp_path: Path) -> None:
    path = write_config(tmp_path / "feedwatch.yaml", text)
    result = run_cli("--config", str(path), "check")
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith(f"feedwatch: config: {path}") and "feeds: no feeds configured" in result.err


def test_every_problem_at_once_still_hides_values_from_the_environment(tmp_path: Path) -> None:
    secret = "json://bot:hunter2-secret@127.0.0.1:9/hook"
    path = write_config(tmp_path / "feedwatch.yaml", "database: sqlite:///fw.db\ndefaults:\n  interval: ${HOOK}\n"
                        "  removal_grace: 0\nfeeds:\n  - name: a\n    url: a.xml\n    timeout: ${HOOK}\n")
    result = run_cli("--config", str(path), "check", env={"HOOK": secret})
    assert result.code == 2 and "hunter2" not in result.out + result.err
    assert [line.split(": ", 4)[3] for line in result.err.splitlines()] == [
        "defaults.interval", "defaults.removal_grace", "feeds[0].timeout"]
    assert "'${HOOK}' is not a duration" in result.err
    as_json = run_cli("--config", str(path), "check", "--json", env={"HOOK": secret})
    assert as_json.code == 2 and "hunter2" not in as_json.out + as_json.err and len(as_json.json()["problems"]) == 3


@pytest.mark.parametrize("name", ["unknown-key", "duplicate-feed", "bad-yaml", "not-a-mapping"])
def test_check_json_lists_the_problems_of_a_config_that_does_not_load(name: str, tmp_path: Path) -> None:
    """`check --json | jq .ok` gets a document for a config that does not even load, not an empty stdout."""
    text, expected = CONFIG_ERRORS[name]
    path = write_config(tmp_path / "feedwatch.yaml", text)
    result = run_cli("--config", str(path), "check", "--json")
    assert result.code == 2 and result.err == ""
    document = result.json()
    [problem] = document.pop("problems")
    assert problem.startswith(expected.format(path=path)), problem
    assert document == {"config": str(path), "feeds": None, "targets": None, "database": None, "schema": None,
                        "ok": False}
    missing = run_cli("--config", str(tmp_path / "none.yaml"), "check", "--json")
    assert missing.code == 2 and missing.json()["problems"] == [f"config: {tmp_path / 'none.yaml'}: file not found"]


def test_watch_on_a_taken_metrics_port_is_one_line_exit_2(tmp_path: Path) -> None:
    """Another process listens on the port: watch says so and stops before it polls anything."""
    config = write_config(tmp_path / "feedwatch.yaml", "database: sqlite:///fw.db\n" + GOOD_FEED)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_process("--config", str(config), "watch", "--metrics-port", str(port), timeout=60)
    assert result.code == 2, result.err
    assert result.err.strip() == f"feedwatch: watch: --metrics-port {port}: cannot listen: Address already in use"


def test_an_error_shows_the_control_characters_of_a_config_key_never_sends_them(tmp_path: Path) -> None:
    """A key (or name, or a server's words) with ESC once reached the terminal raw in the error line."""
    path = write_config(tmp_path / "feedwatch.yaml", 'feeds:\n  - name: a\n    url: a.xml\n    "\\e[31mred\\a": 1\n')
    result = run_cli("--config", str(path), "check")
    assert result.code == 2
    assert result.err == f"feedwatch: config: {path}:4: feeds[0].\u241b[31mred\u2407: unknown key\n"


def test_a_config_that_is_not_utf8_is_named_by_its_line(tmp_path: Path) -> None:
    """It was "cannot read: 'utf-8' codec can't decode byte 0xe9 in position 20"."""
    path = tmp_path / "feedwatch.yaml"
    path.write_bytes(b"feeds:\n  - name: caf\xe9\n    url: a.xml\n")
    result = run_cli("--config", str(path), "check")
    assert result.code == 2
    assert result.err == f"feedwatch: config: {path}:2: not UTF-8 (byte 0xe9): save the file as UTF-8\n"
