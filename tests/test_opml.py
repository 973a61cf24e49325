"""OPML export and import (monitor/opml.py, monitor/config_edit.py) through the real command line."""

from __future__ import annotations

import difflib
import html
import resource
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import config
from monitor.config import FeedConfig
from tests.helpers import REPO, feedwatch_cmd, run_cli, write_config

READERS = yaml.safe_load((REPO / "tests" / "cases" / "opml_readers.yaml").read_text(encoding="utf-8"))
MEMORY_LIMIT = 512 << 20
DEADLINE = 60            # a hang guard, not a timing assertion: the refusals take well under a second

COMMENTED = """\
# Our team's feeds. Keep this file tidy: comments are documentation.
database: sqlite:///feedwatch.db   # next to this file

defaults:
  interval: 2h      # polite

feeds:
    # governance first
    -   name: k8s-community          # the one that started it
        url: "https://www.kubernetes.dev/community/index.xml"
        interval: 6h
    # -   name: retired
    #     url: https://old.example.org/feed

# Targets come last, on purpose.
targets:
  chat:
    urls: ["json://127.0.0.1:9/hook"]   # a test receiver
# end of file
"""


def supports(key: str) -> bool:
    return key in FeedConfig.__struct_fields__


def feeds_of(path: Path) -> list[dict[str, Any]]:
    out = []
    for f in config.load(path).feeds:
        entry: dict[str, Any] = {"name": f.name, "url": f.url}
        for key, default in (("group", None), ("kind", "feed"), ("follow", False)):
            if getattr(f, key, default) != default:
                entry[key] = getattr(f, key)
        out.append(entry)
    return out


def import_opml(cfg: Path, opml_text: str | bytes, *extra: str) -> Any:
    source = cfg.parent / "in.opml"
    if isinstance(opml_text, str):
        source.write_text(opml_text, encoding="utf-8")
    else:
        source.write_bytes(opml_text)
    return run_cli("--config", str(cfg), "opml", "import", str(source), *extra)


def test_export_then_import_into_an_empty_config_gives_the_same_feeds(tmp_path: Path) -> None:
    source_feeds = [
        {"name": "k8s-community", "url": "https://www.kubernetes.dev/community/index.xml", "group": "Kubernetes"},
        {"name": "Blog.Main", "url": "https://blog.example.org/atom.xml"},
        {"name": "lwn", "url": "https://lwn.net/headlines/rss", "group": "News/Linux"},
        {"name": "coc", "url": "https://github.com/cncf/foundation/blob/main/code-of-conduct.md"},
    ]
    if supports("kind"):      # the source kinds of issue 12, once they are configurable
        source_feeds[3].update(kind="page")
        source_feeds[1].update(follow=True)
    src = write_config(tmp_path / "src.yaml", yaml.safe_dump({"feeds": source_feeds}, sort_keys=False))
    exported = run_cli("--config", str(src), "opml", "export", "--output", str(tmp_path / "out.opml"))
    assert exported.code == 0, exported.err

    empty = write_config(tmp_path / "empty.yaml", "")
    result = run_cli("--config", str(empty), "opml", "import", str(tmp_path / "out.opml"))
    assert result.code == 0, result.err
    assert feeds_of(empty) == feeds_of(src)
    assert "4 added, 0 skipped" in result.out

    again = run_cli("--config", str(empty), "opml", "import", str(tmp_path / "out.opml"))
    assert again.code == 0 and "0 added, 4 skipped" in again.out
    assert "skipped https://lwn.net/headlines/rss: already configured as 'lwn'" in again.out


def test_export_nests_groups_as_folders_and_leaves_local_files_out(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", """\
feeds:
  - {name: a, url: "https://a.example/feed?x=1&y=2", group: News/Linux}
  - {name: b, url: ./local.xml}
""")
    result = run_cli("--config", str(cfg), "opml", "export")
    assert result.code == 0
    assert '<outline text="News" title="News">' in result.out
    assert '<outline text="Linux" title="Linux">' in result.out
    assert 'xmlUrl="https://a.example/feed?x=1&amp;y=2"' in result.out
    assert "local.xml" not in result.out
    assert "b: a local file, not an http(s) URL; left out" in result.err


def test_import_keeps_every_comment_and_line_of_a_commented_config(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "feedwatch.yaml", COMMENTED)
    result = import_opml(cfg, READERS[0]["opml"])
    assert result.code == 0, result.err
    new = cfg.read_text(encoding="utf-8")
    removed = [line for line in difflib.ndiff(COMMENTED.splitlines(), new.splitlines()) if line.startswith("- ")]
    assert removed == []                       # every original line is still there, in order, unchanged
    added = [line[2:] for line in difflib.ndiff(COMMENTED.splitlines(), new.splitlines()) if line.startswith("+ ")]
    assert added[0] == "    -   name: Miniflux"   # in the list's own indentation
    assert new.index("name: LWN.net") < new.index("# Targets come last, on purpose.")
    assert [f["name"] for f in feeds_of(cfg)] == ["k8s-community", "Miniflux", "LWN.net"]
    assert "skipped https://www.kubernetes.dev/community/index.xml: already configured as 'k8s-community'" \
        in result.out


def test_import_into_the_example_config_changes_no_line_of_it(tmp_path: Path) -> None:
    original = (REPO / "config" / "feedwatch.example.yaml").read_text(encoding="utf-8")
    cfg = write_config(tmp_path / "feedwatch.yaml", original)
    source = tmp_path / "in.opml"
    source.write_text(READERS[2]["opml"], encoding="utf-8")
    result = run_cli("--config", str(cfg), "opml", "import", str(source),
                     env={"SLACK_URL": "json://127.0.0.1:9", "SMTP_PASSWORD": "x"})
    assert result.code == 0, result.err
    diff = list(difflib.ndiff(original.splitlines(), cfg.read_text(encoding="utf-8").splitlines()))
    assert not [line for line in diff if line.startswith("- ")]
    assert len([line for line in diff if line.startswith("+ ")]) == 6     # two feeds: name, url, group


@pytest.mark.parametrize("text", ["feeds: []\n", "# nothing yet\n",
                                  "feeds: [{name: old, url: 'https://old.example/f'}]  # flow\n"])
def test_import_into_an_empty_or_flow_style_feeds_list(tmp_path: Path, text: str) -> None:
    cfg = write_config(tmp_path / "c.yaml", text)
    result = import_opml(cfg, READERS[3]["opml"])
    assert result.code == 0, result.err
    names = [f["name"] for f in feeds_of(cfg)]
    assert names[-3:] == ["daring-fireball", "six-colors", "www.macstories.net"]
    if text.startswith("#") or "# flow" in text:
        assert text.split("#", 1)[1].strip() in cfg.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", READERS, ids=[c["reader"].split(" (")[0] for c in READERS])
def test_real_reader_exports_import(tmp_path: Path, case: dict[str, Any]) -> None:
    cfg = write_config(tmp_path / "c.yaml", "feeds: []\n")
    result = import_opml(cfg, case["opml"])
    assert result.code == 0, result.err
    assert feeds_of(cfg) == case["expect"]
    for url in case.get("skipped", []):
        assert f"skipped {url}: a duplicate of line" in result.out


def test_dry_run_prints_the_yaml_it_would_add_and_changes_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", COMMENTED)
    result = import_opml(cfg, READERS[2]["opml"], "--dry-run")
    assert result.code == 0, result.err
    assert cfg.read_text(encoding="utf-8") == COMMENTED
    shown = yaml.safe_load(result.out)
    assert shown == [{"name": "ars-technica-news", "url": "http://feeds.arstechnica.com/arstechnica/index",
                      "group": "Tech"},
                     {"name": "toms-hardware", "url": "https://www.tomshardware.com/feeds/all", "group": "Tech"}]
    assert "# skipped http://feeds.arstechnica.com/arstechnica/index: a duplicate of line" in result.out


def test_names_are_unique_and_valid(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", "feeds:\n  - {name: news, url: 'https://one.example/feed'}\n")
    outlines = "".join(f'<outline type="rss" text="{t}" xmlUrl="https://{i}.example/rss"/>'
                       for i, t in enumerate(["News", "news", "Новости", "!!!", "x" * 300, "-lead"]))
    result = import_opml(cfg, f'<opml version="2.0"><body>{outlines}</body></opml>')
    assert result.code == 0, result.err
    names = [f["name"] for f in feeds_of(cfg)]
    assert names == ["news", "News", "news-2", "2.example", "3.example", "x" * 60, "lead"]
    assert all(config.FEED_NAME.match(n) for n in names)


def test_names_yaml_would_read_as_other_values_are_written_quoted(tmp_path: Path) -> None:
    """YAML 1.1, which feedwatch's loader reads, takes a plain yes, on, off, no, y or n as a boolean; the
    names are kept as they are and written quoted, so the config still loads."""
    cfg = write_config(tmp_path / "c.yaml", "feeds:\n  - name: x\n    url: 'https://x.example/f'\n")
    words = ["yes", "on", "Off", "no", "y", "N", "true", "null", "123", "0x1f", "1_000", "2024-01-01", "plain"]
    outlines = "".join(f'<outline text="{w}" xmlUrl="https://{i}.example/f"/>' for i, w in enumerate(words))
    result = import_opml(cfg, f'<opml version="2.0"><body>{outlines}</body></opml>')
    assert result.code == 0, result.err
    assert [f["name"] for f in feeds_of(cfg)] == ["x", *words]
    text = cfg.read_text(encoding="utf-8")
    assert 'name: "yes"' in text and "name: plain" in text


def test_an_imported_value_never_reads_this_machines_environment(tmp_path: Path) -> None:
    """The config fills in ${VAR}: an OPML file from elsewhere must not make a feed URL (or a folder name)
    carry this machine's secrets to its server. Its values are written with $ as $$, read back as given."""
    cfg = write_config(tmp_path / "c.yaml", "feeds:\n  - name: x\n    url: 'https://x.example/f'\n")
    url = "https://evil.example/leak.xml?k=${MYSECRET}&v=${MYSECRET:-x}&p=$$"
    opml = f'<opml version="2.0"><body><outline text="${{MYSECRET}}"><outline text="innocent" ' \
           f'xmlUrl="{html.escape(url)}"/></outline></body></opml>'
    assert import_opml(cfg, opml).code == 0
    loaded = config.load(cfg, env={"MYSECRET": "TopSecret42"})
    [feed] = [f for f in loaded.feeds if f.name != "x"]
    assert feed.url == url and feed.group == "${MYSECRET}"
    assert "TopSecret42" not in repr(loaded)


def test_a_flow_style_list_rewritten_keeps_its_own_variables(tmp_path: Path) -> None:
    """Its entries are written again as a block list: their ${VAR}s must stay variables (only the new,
    imported values have their $ written $$)."""
    cfg = write_config(tmp_path / "c.yaml", 'feeds: [{name: a, url: "https://a.example/f?k=${TOKEN}"}]\n')
    source = tmp_path / "in.opml"
    source.write_text('<opml version="2.0"><body><outline text="b" xmlUrl="https://b.example/f?x=$1"/></body>'
                      '</opml>', encoding="utf-8")
    assert run_cli("--config", str(cfg), "opml", "import", str(source), env={"TOKEN": "t0k"}).code == 0
    loaded = config.load(cfg, env={"TOKEN": "t0k"})
    assert [f.url for f in loaded.feeds] == ["https://a.example/f?k=t0k", "https://b.example/f?x=$1"]


def test_import_says_what_it_added_and_skipped_without_the_urls_secrets(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", "feeds:\n  - name: x\n    url: 'https://x.example/f'\n")
    secret = "https://user:s3cretPW@private.example/f.xml?token=TOKEN123"
    opml = f'<opml version="2.0"><body><outline text="p" xmlUrl="{html.escape(secret)}"/>' \
           f'<outline text="again" xmlUrl="{html.escape(secret)}"/></body></opml>'
    result = import_opml(cfg, opml)
    assert result.code == 0, result.err
    assert "added p: https://****@private.example/f.xml?token=****" in result.out
    assert "skipped https://****@private.example/f.xml?token=****: a duplicate of line" in result.out
    assert "s3cretPW" not in result.out + result.err and "TOKEN123" not in result.out + result.err
    assert [f["url"] for f in feeds_of(cfg)][-1] == secret                   # the config has the real one


# ------------------------------------------------------------------------------------------ hostile files


def billion_laughs() -> str:
    ents = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return f'<?xml version="1.0"?><!DOCTYPE opml [{ents}]><opml version="2.0"><body>' \
           '<outline type="rss" text="&lol9;" xmlUrl="https://x.example/rss"/></body></opml>'


def quadratic() -> str:
    return f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "{"A" * 50_000}">]><opml version="2.0"><body>' \
           f'<outline type="rss" text="{"&a;" * 50_000}" xmlUrl="https://x.example/rss"/></body></opml>'


def external() -> str:
    return '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>' \
           '<opml version="2.0"><body><outline type="rss" text="&x;" xmlUrl="https://x.example/rss"/></body></opml>'


def many_outlines() -> str:
    body = "\n".join(f'<outline type="rss" text="f{i}" xmlUrl="https://h{i}.example/rss"/>' for i in range(100_000))
    return f'<?xml version="1.0"?>\n<opml version="2.0"><body>\n{body}\n</body></opml>'


def scheme(url: str) -> str:
    return f'<opml version="2.0"><body>\n<outline type="rss" text="ok" xmlUrl="https://ok.example/rss"/>\n' \
           f'<outline type="rss" text="bad" xmlUrl="{url}"/>\n</body></opml>'


HOSTILE = {
    "billion-laughs": (billion_laughs(), "refused: the file declares XML entities (an entity bomb?)"),
    "quadratic-blowup": (quadratic(), "refused: the file declares XML entities (an entity bomb?)"),
    "external-entity": (external(), "refused: the file declares XML entities (an entity bomb?)"),
    "100k-outlines": (many_outlines(), ":10003: more than 10000 outlines: not a subscription list; refused"),
    "javascript-url": (scheme("javascript:alert(1)"), ":3: 'javascript:alert(1)' is not an http(s) URL"),
    "file-url": (scheme("file:///etc/passwd"), ":3: 'file:///etc/passwd' is not an http(s) URL"),
    "data-url": (scheme("data:text/xml,&lt;rss/&gt;"), ":3: 'data:text/xml,<rss/>' is not an http(s) URL"),
    "relative-path": (scheme("/etc/passwd"), ":3: '/etc/passwd' is not an http(s) URL"),
    "unclosed-ipv6-host": (scheme("http://[::1/rss"),        # once a traceback
                           ":3: 'http://[::1/rss' is not a usable URL (Invalid IPv6 URL)"),
    "port-out-of-range": (scheme("https://ok.example:70000/rss"),
                          ":3: 'https://ok.example:70000/rss' is not a usable URL (Port out of range 0-65535)"),
    "not-opml": ("<rss><channel/></rss>", ":1: not an OPML file (the root element is <rss>)"),
    "truncated": ('<opml version="2.0"><body><outline text="a"', "not well-formed XML"),
    "huge-file": ("<opml>" + " " * (11 << 20) + "</opml>", "larger than 10 MiB: not a subscription list; refused"),
}


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_opml_is_refused_with_a_clear_error_in_bounded_time(tmp_path: Path, name: str) -> None:
    text, message = HOSTILE[name]
    cfg = write_config(tmp_path / "c.yaml", COMMENTED)
    source = tmp_path / f"{name}.opml"
    source.write_text(text, encoding="utf-8")
    proc = subprocess.run([*feedwatch_cmd(), "--config", str(cfg), "opml", "import", str(source)],
                          capture_output=True, text=True, timeout=DEADLINE, preexec_fn=limited)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"feedwatch: opml: {source}")
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert cfg.read_text(encoding="utf-8") == COMMENTED      # nothing imported, not even the good outline


def test_follow_on_what_has_no_items_or_not_true_or_false_is_refused_at_its_opml_line(tmp_path: Path) -> None:
    """Once passed on to the config, whose check then named line 11 of a 7-line file."""
    cfg = write_config(tmp_path / "c.yaml", COMMENTED)
    for value, kind, said in [("true", "sitemap", "feedwatch:follow is for feeds; this outline is a sitemap"),
                              ("maybe", "feed", "feedwatch:follow 'maybe' is not true or false")]:
        opml_text = f'<opml version="2.0" xmlns:fw="urn:feedwatch:opml:1"><body>\n<outline type="link" ' \
                    f'url="https://x.example/s.xml" fw:kind="{kind}" fw:follow="{value}"/></body></opml>'
        result = import_opml(cfg, opml_text)
        assert result.code == 2 and result.err.startswith(f"feedwatch: opml: {cfg.parent / 'in.opml'}:2: {said}")
        assert cfg.read_text(encoding="utf-8") == COMMENTED


def test_new_entries_that_would_make_the_config_invalid_name_no_line_the_file_does_not_have(
        tmp_path: Path) -> None:
    from monitor import config_edit
    from monitor.errors import ConfigError

    cfg = write_config(tmp_path / "c.yaml", COMMENTED)
    with pytest.raises(ConfigError) as raised:
        config_edit.append_to_file(cfg, [{"name": "x", "url": "https://x.example/f", "interval": "soon"}])
    assert str(raised.value).startswith(f"config: {cfg}: the new feeds would make it invalid, so nothing was "
                                        "added (feeds[")
    assert "interval" in str(raised.value) and raised.value.line is None
    assert cfg.read_text(encoding="utf-8") == COMMENTED


def test_an_import_that_would_make_the_config_invalid_changes_nothing(tmp_path: Path) -> None:
    text = "feeds:\n  - name: a\n    url: https://a.example/feed\n    interval: 1h\n"
    cfg = write_config(tmp_path / "c.yaml", text)
    opml_text = '<opml version="2.0"><body><outline type="link" url="https://x.example/" ' \
                'xmlns:fw="urn:feedwatch:opml:1" fw:kind="sitemap"/></body></opml>'
    result = import_opml(cfg, opml_text)
    if supports("kind"):
        assert result.code == 0, result.err
    else:
        assert result.code == 2 and "unknown key" in result.err and "kind" in result.err
        assert cfg.read_text(encoding="utf-8") == text
