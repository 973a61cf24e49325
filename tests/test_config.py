"""config: interpolation, inheritance, path resolution, durations and sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import find_config, load, loads, parse_duration, parse_size
from monitor.errors import ConfigError


def test_minimal_config_gets_the_defaults(tmp_path: Path) -> None:
    s = loads("feeds: [{name: blog, url: https://example.org/feed.xml}]", base_dir=tmp_path,
              env={"XDG_STATE_HOME": str(tmp_path / "state")})
    [feed] = s.feeds
    assert (feed.interval, feed.removal_grace, feed.max_errors, feed.links) == (3600, 3, 3, False)
    assert s.database_url == f"sqlite:///{tmp_path / 'state' / 'feedwatch' / 'feedwatch.db'}"


def test_systemd_state_directory(tmp_path: Path) -> None:
    s = loads("feeds: []", env={"STATE_DIRECTORY": "/var/lib/feedwatch"})
    assert s.database_url == "sqlite:////var/lib/feedwatch/feedwatch.db"


def test_env_interpolation_with_defaults_and_escapes() -> None:
    s = loads("""
targets:
  chat: {urls: ["json://${HOOK_HOST}/x", "json://${MISSING:-fallback}/y", "json://$${LITERAL}/z"]}
feeds: []
""", env={"HOOK_HOST": "h.example"})
    assert s.targets["chat"].urls == ("json://h.example/x", "json://fallback/y", "json://${LITERAL}/z")


def test_a_variable_set_to_nothing_takes_the_default_and_an_empty_database_is_refused() -> None:
    """As in the shell, ${VAR:-default} is the default when VAR is empty; and `database: ${FEEDWATCH_DATABASE}`
    with the variable set to nothing once used the default SQLite file instead, silently."""
    s = loads("database: ${FW_DB:-sqlite:////srv/fw.db}\nfeeds: [{name: a, url: u, interval: '${IV:-2h}'}]\n",
              env={"FW_DB": "", "IV": ""})
    assert s.database_url == "sqlite:////srv/fw.db" and s.feeds[0].interval == 7200
    with pytest.raises(ConfigError) as raised:
        loads("database: ${FEEDWATCH_DATABASE}\nfeeds: []\n", env={"FEEDWATCH_DATABASE": ""})
    assert str(raised.value) == ("config: <config>:1: database: empty (an environment variable set to nothing?); "
                                 "remove the key for the default database")


def test_yaml_merge_keys_reuse_an_anchored_feed() -> None:
    """`<<: *anchor` (YAML 1.1) was an unknown key, and the keys it stood for were missing."""
    s = loads("feeds:\n  - &first {name: a, url: a.xml, interval: 2h, removal_grace: 5}\n"
              "  - <<: *first\n    name: b\n    url: b.xml\n    interval: 30m\n"
              "  - <<: [*first]\n    name: c\n    url: c.xml\n")
    assert [(f.name, f.url.rsplit("/", 1)[-1], f.interval, f.removal_grace) for f in s.feeds] == [
        ("a", "a.xml", 7200, 5), ("b", "b.xml", 1800, 5), ("c", "c.xml", 7200, 5)]
    with pytest.raises(ConfigError) as raised:     # a key given before the merge keeps its own line
        loads("feeds:\n  - &first {name: a, url: a.xml, interval: 2h}\n  - name: b\n    interval: 1x\n"
              "    <<: *first\n    url: b.xml\n")
    assert str(raised.value).startswith("config: <config>:4: feeds[1].interval: '1x' is not a duration")
    with pytest.raises(ConfigError) as raised:
        loads("feeds:\n  - <<: just-text\n    name: a\n    url: a.xml\n")
    assert str(raised.value) == "config: <config>:2: feeds[0].<<: '<<' merges mappings only (<<: *anchor, or a " \
                                "list of them)"


def test_feeds_inherit_defaults_and_may_override() -> None:
    s = loads("""
defaults: {interval: 30m, notify: [a], ignore: ["x+"], removal_grace: 5}
targets: {a: {urls: ["json://h/a"]}, b: {urls: ["json://h/b"]}}
feeds:
  - {name: one, url: u1}
  - {name: two, url: u2, interval: 1d, notify: [b], ignore: ["y+"], error_notify: [a]}
""")
    one, two = s.feeds
    assert (one.interval, one.notify, one.error_notify, one.removal_grace) == (1800, ("a",), ("a",), 5)
    assert (two.interval, two.notify, two.error_notify) == (86400, ("b",), ("a",))
    assert [p.pattern for p in two.ignore] == ["x+", "y+"]
    assert one.settings_hash != two.settings_hash


def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "fw.yaml"
    path.write_text("database: sqlite:///data/fw.db\nfeeds: []\n")
    assert load(path).database_url == f"sqlite:///{tmp_path / 'etc' / 'data' / 'fw.db'}"


def test_find_config_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg" / "feedwatch"
    xdg.mkdir(parents=True)
    (xdg / "config.yaml").write_text("feeds: []")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert find_config(None, env) == xdg / "config.yaml"
    (tmp_path / "feedwatch.yaml").write_text("feeds: []")
    assert find_config(None, env) == Path("feedwatch.yaml")
    assert find_config(None, {**env, "FEEDWATCH_CONFIG": "/x.yaml"}) == Path("/x.yaml")
    assert find_config("/y.yaml", env) == Path("/y.yaml")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400),
                                               ("1h30m", 5400), ("2w", 1209600), (45, 45), ("1.5h", 5400)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "h", "1h 2", True, None])
def test_bad_durations(text: object) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(("text", "size"), [("10MiB", 10 << 20), ("500KB", 500 << 10), ("2M", 2 << 20), (1000, 1000)])
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_feed_name_must_be_usable_on_the_command_line() -> None:
    with pytest.raises(ConfigError, match=r"feeds\[0\].name: 'has space' is not a valid name"):
        loads("feeds: [{name: has space, url: u}]")
