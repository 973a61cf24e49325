"""Feed text is data in every output: terminal control characters are shown, not obeyed; chat markdown gets
no live link, image or mention from a feed; an item link cannot leave its markdown link (issue 13)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import lxml.html
import markdown
import pytest
import yaml
from markdown_it import MarkdownIt

from monitor import render
from monitor.diff import Version, diff_versions
from tests.helpers import FeedServer, run_cli, write_config
from tests.receivers import SMTPServer, Webhook

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "injection.yaml").read_text(encoding="utf-8"))
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
LIVE_MENTION = re.compile(r"(?<![\w.])@(everyone|here|channel)\b|<[!@]")


@pytest.mark.parametrize("case", CASES["terminal"], ids=lambda c: repr(c["text"])[:40])
def test_terminal_text_shows_control_characters(case: dict[str, str]) -> None:
    shown = render.inert(case["text"])
    assert shown == case["shown"]
    assert not CONTROL.search(shown)


@pytest.mark.parametrize("case", CASES["markdown"], ids=lambda c: repr(c["text"])[:40])
def test_markdown_feed_text_is_text(case: dict[str, Any]) -> None:
    escaped = render.md_escape(case["text"])
    page = lxml.html.fragment_fromstring(markdown.markdown(escaped), create_parent="div")
    assert not {el.tag for el in page.iter()} & {"a", "img", "script", "h1", "ul", "li"}
    text = page.text_content().replace(render.ZWSP, "")
    assert " ".join(text.split()) == " ".join(case["visible"].split())
    assert not LIVE_MENTION.search(escaped) and not CONTROL.search(escaped)
    if case.get("mention"):
        assert render.ZWSP in escaped
    assert render.plain(case["text"]).replace(render.ZWSP, "") == render.inert(case["text"])


@pytest.mark.parametrize("case", CASES["safe_url"], ids=lambda c: repr(c["url"])[:50])
def test_safe_url_is_a_real_url_check(case: dict[str, str]) -> None:
    assert render.safe_url(case["url"]) == case["safe"]
    if case["safe"]:   # inside [title](URL), the URL is the link and nothing else
        page = lxml.html.fragment_fromstring(markdown.markdown(f"[title]({case['safe']})"), create_parent="div")
        [link] = [el for el in page.iter() if el.tag in ("a", "img")]
        assert link.tag == "a" and link.get("href") == case["safe"].replace("&amp;", "&")


# ------------------------------------------------------------------------------------------ end to end

HOSTILE_TEXT = ("Plain &#27;[2J&#27;]0;pwned&#7; &#27;]8;;http://evil.example/&#27;\\click&#27;]8;;&#27;\\ "
                "back&#8;&#8;x \u009b31m c1 @here @everyone &lt;!channel&gt; [click](http://evil.example/) "
                "![x](http://tracker.example/px) text here.")
HOSTILE_TITLE = "Notes \u009b2J @everyone [click](http://evil.example/) ![t](http://tracker.example/t)"
HOSTILE_LINK = "http://h.example/a)![t](http://tracker.example/px)"


def _feed(title: str, link: str, text: str) -> bytes:
    description = html.escape(f"<h2>Safety</h2><p>{text}</p>", quote=False)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>t</title>'
            f"<link>http://h.example/</link><description>d</description><item><guid>g1</guid>"
            f"<title>{html.escape(title, quote=False)}</title><link>{html.escape(link, quote=False)}</link>"
            f"<description>{description}</description></item></channel></rss>").encode()


def test_hostile_feed_text_is_inert_in_every_output(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    smtp = SMTPServer()
    text_hook = Webhook()
    mattermost = Webhook()           # a service without a title field: feedwatch merges the title, escaped
    try:
        url = server.set("/feed.xml", _feed("Notes", "http://h.example/a", "Plain text here."))
        config = write_config(tmp_path / "feedwatch.yaml", f"""\
database: sqlite:///{tmp_path / 'fw.db'}
report_url: https://status.example.org/report.html
targets:
  chat: {{urls: ['{hook.url()}'], format: markdown}}
  plain: {{urls: ['{text_hook.url()}'], format: text}}
  mail: {{urls: ['{smtp.url()}'], format: html}}
  mm: {{urls: ['mmost://127.0.0.1:{mattermost.port}/tok3n'], format: markdown}}
feeds:
  - {{name: hostile, url: '{url}', notify: [chat, plain, mail, mm]}}
""")

        def run(*args: str, **env: str) -> Any:
            return run_cli("--config", str(config), *args, env=env)

        assert run("run").code == 0
        server.set("/feed.xml", _feed(HOSTILE_TITLE, HOSTILE_LINK, HOSTILE_TEXT))
        outputs = {"run": run("run", "--force")}
        assert outputs["run"].code == 0, outputs["run"].err
        outputs.update({
            "show": run("show", "g1"), "diff": run("diff", "g1", NO_COLOR="1"), "history": run("history"),
            "diff-md": run("diff", "g1", "--format", "markdown"), "status": run("status"),
            "report-md": run("report", "--format", "markdown"), "report-html": run("report"),
            "report-atom": run("report", "--format", "atom")})
        for name, result in outputs.items():
            assert result.code == 0, (name, result.err)
            assert not CONTROL.search(result.out + result.err), (name, result.out + result.err)
        assert "\u241b[2J" in outputs["show"].out                   # shown, as a symbol
        assert "\u241b]0;pwned\u2407" in outputs["diff"].out

        [chat] = hook.bodies
        for part in (chat["title"], chat["message"]):
            assert not CONTROL.search(part) and not LIVE_MENTION.search(part), part
        page = lxml.html.fragment_fromstring(markdown.markdown(chat["message"]), create_parent="div")
        assert [el.tag for el in page.iter() if el.tag in ("img", "script")] == []
        hrefs = [el.get("href") for el in page.iter() if el.tag == "a"]
        # Only feedwatch's links are live: the item's own link (percent-encoded, whole) and the report.
        assert hrefs == ["http://h.example/a%29!%5Bt%5D%28http://tracker.example/px%29",
                         "https://status.example.org/report.html#change-2"]
        assert "[click](http://evil.example/)" in page.text_content()    # feed text, readable

        [plain] = text_hook.bodies
        for part in (plain["title"], plain["message"]):
            assert not CONTROL.search(part) and not LIVE_MENTION.search(part), part

        [merged] = mattermost.bodies
        assert not CONTROL.search(merged["text"]) and not LIVE_MENTION.search(merged["text"])
        page = lxml.html.fragment_fromstring(markdown.markdown(merged["text"]), create_parent="div")
        assert [el.get("href") for el in page.iter() if el.tag in ("a", "img")] == hrefs
        assert page.text_content().startswith("feedwatch: Notes")      # the title, first, as text

        [mail] = smtp.messages
        assert not CONTROL.search(str(mail["Subject"]))
        text_part = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")   # SMTP line ends
        assert not CONTROL.search(text_part) and "\u241b[2J" in text_part
    finally:
        smtp.close()
        text_hook.down()
        mattermost.down()


def _gfm(text: str) -> lxml.html.HtmlElement:
    """Markdown as GitHub, Mattermost and Discord read it: CommonMark with tables and strikethrough."""
    reader = MarkdownIt("commonmark").enable("table").enable("strikethrough")
    return lxml.html.fragment_fromstring(reader.render(text), create_parent="div")


def test_feed_text_strikes_nothing_and_splits_no_table_cell(tmp_path: Path, server: FeedServer) -> None:
    """A feed's "~~" would fake one of feedwatch's own deletions (the markdown diffs strike deleted words);
    its "|" would split the report's overview table. Both are shown as written."""
    url = server.set("/feed.xml", _feed("A | B ~~old~~", "http://h.example/a", "Text ~~struck~~ | here."))
    config = write_config(tmp_path / "feedwatch.yaml",
                          f"database: sqlite:///{tmp_path / 'fw.db'}\nfeeds:\n  - {{name: f, url: '{url}'}}\n")
    assert run_cli("--config", str(config), "run").code == 0
    server.set("/feed.xml", _feed("A | B ~~old~~", "http://h.example/a", "Text ~~struck~~ | here, more."))
    assert run_cli("--config", str(config), "run", "--force").code == 0
    diff = _gfm(run_cli("--config", str(config), "diff", "g1", "--format", "markdown").out)
    assert [el.text_content() for el in diff.iter("s", "del")] == []      # the word added is bold, nothing struck
    assert "Text ~~struck~~ | here" in diff.text_content().replace(render.ZWSP, "")
    report = _gfm(run_cli("--config", str(config), "report", "--format", "markdown").out)
    assert [el.text_content() for el in report.iter("s", "del")] == []
    rows = [[cell.text_content().replace(render.ZWSP, "") for cell in row] for row in report.iter("tr")]
    assert rows[0] == ["Feed", "Document", "Changes", "Last change"]
    assert [row[:3] for row in rows[1:]] == [["f", "A | B ~~old~~", "2"]]


@pytest.mark.parametrize("old, new", [("here.", "here, more."), ("a (b) c", "a c"), ("x", "x!"), ("1", "-1")])
def test_markdown_diff_marks_work_next_to_punctuation(old: str, new: str) -> None:
    """CommonMark opens "**" or "~~" before punctuation only after a space or punctuation: "here**, more**"
    would show its asterisks in GFM, Discord and Mattermost. Every inserted and deleted word is marked up."""
    diff = diff_versions(Version("t", None, f"Lead {old}"), Version("t", None, f"Lead {new}"))
    page = _gfm(render.render_markdown(diff, max_length=10_000))
    marked = "".join(el.text_content() for el in page.iter("strong", "s")).replace(render.ZWSP, "")
    shown = page.text_content().replace(render.ZWSP, "")
    assert "**" not in shown and "~~" not in shown, shown
    changed = [op.text.strip() for s in diff.sections for op in s.ops if op.op != "equal"]
    assert changed and all(text in marked for text in changed), (changed, marked)


def test_a_template_cannot_mark_feed_text_safe_or_make_its_links_live(tmp_path: Path, server: FeedServer) -> None:
    """`safe`, `urlize` and `tojson` once passed feed text out as it was: control characters, live
    mentions and links. Whatever a template does, every {{ … }} is escaped for the target's format."""
    hooks = {fmt: Webhook() for fmt in ("markdown", "html", "text")}
    try:
        url = server.set("/feed.xml", _feed("Notes", "http://h.example/a", "Plain text here."))
        body = "{{ title | safe }} | {{ title | urlize }} | {{ title | tojson }} | {{ title | safe | urlize }}"
        targets = "".join(f"  {fmt}: {{urls: ['{hook.url()}'], format: {fmt}, title: '{{{{ title | safe }}}}', "
                          f"body: '{body}'}}\n" for fmt, hook in hooks.items())
        config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                              f"targets:\n{targets}feeds:\n  - {{name: h, url: '{url}', "
                              f"notify: [{', '.join(hooks)}]}}\n")
        assert run_cli("--config", str(config), "run").code == 0
        title = "Notes \u009b2J @everyone <b>bold</b> <@U123> [click](http://evil.example/) http://evil.example/x"
        server.set("/feed.xml", _feed(title, "http://h.example/a", "Plain text here."))
        result = run_cli("--config", str(config), "run", "--force", "--json")
        assert result.json()["deliveries"]["sent"] == 3, result.err
        for fmt, hook in hooks.items():
            [message] = hook.bodies
            for part in (message["title"], message["message"]):
                assert not CONTROL.search(part) and "<b>" not in part and "<a " not in part, (fmt, part)
                assert fmt == "html" or not LIVE_MENTION.search(part), (fmt, part)    # chat formats
            if fmt == "markdown":
                page = lxml.html.fragment_fromstring(markdown.markdown(message["message"]), create_parent="div")
                assert [el.tag for el in page.iter() if el.tag in ("a", "b", "img")] == [], message["message"]
    finally:
        for hook in hooks.values():
            hook.down()
