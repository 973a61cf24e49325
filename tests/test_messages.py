"""Message templates and what arrives (issue 16 items 1, 2, 3, 12, 13): `check` renders every template; a
template error is its target's delivery error; alerts and test messages have their own templates and
Apprise types; an html mail's text part is feedwatch's rendering of the diff; links point at the change."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from tests.helpers import FeedServer, run_cli, write_config
from tests.helpers import corpus_step as step
from tests.receivers import SMTPServer, Webhook

PATH = "/community/index.xml"
REPORT = "https://status.example.org/feedwatch/report.html"


def configure(tmp_path: Path, text: str) -> Callable[..., Any]:
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n{text}")

    def run(*args: str) -> Any:
        return run_cli("--config", str(config), *args)
    return run


@pytest.mark.parametrize(("template", "line", "message"), [
    ('body: "{{ summary "', 6, "targets.chat.body: template error (template line 1): unexpected end of template"),
    ("body: \"{{ summry }}\"", 6, "targets.chat.body: template error: 'summry' is undefined"),
    ("title: \"{{ feed }} {% if %}\"", 6, "targets.chat.title: template error (template line 1):"),
    ("alert_body: |\n      {{ kind }}\n      {{ eror }}", 6, "targets.chat.alert_body: template error: 'eror' is "
     "undefined"),
    ("digest_title: \"{{ title }}\"", 6, "targets.chat.digest_title: template error: 'title' is undefined"),
    ("body: \"{{ version + 'x' }}\"", 6, "targets.chat.body: template error: TypeError: unsupported operand"),
])
def test_broken_templates_fail_check_with_file_and_line(tmp_path: Path, template: str, line: int,
                                                        message: str) -> None:
    run = configure(tmp_path, f"targets:\n  chat:\n    urls: ['json://127.0.0.1:9/hook']\n    format: markdown\n"
                              f"    {template}\nfeeds:\n  - {{name: k8s, url: 'http://127.0.0.1:9/feed.xml'}}\n")
    result = run("check")
    assert result.code == 2, result.out + result.err
    assert f"feedwatch.yaml:{line}: {message}" in result.err and result.out == ""   # every problem: stderr
    assert "Traceback" not in result.out + result.err
    as_json = run("check", "--json")
    assert as_json.code == 2 and not as_json.json()["ok"]
    assert any(message in p for p in as_json.json()["problems"])


def test_the_built_in_templates_pass_check(tmp_path: Path) -> None:
    targets = "".join(f"  {fmt}:\n    urls: ['json://127.0.0.1:9/{fmt}']\n    format: {fmt}\n"
                      for fmt in ("text", "markdown", "html"))
    run = configure(tmp_path, f"targets:\n{targets}feeds:\n  - {{name: k8s, url: 'http://127.0.0.1:9/f.xml'}}\n")
    result = run("check")
    assert result.code == 0, result.out
    assert "OK (1 feed, 3 targets)" in result.out


def test_a_template_error_at_send_time_is_its_targets_error(tmp_path: Path, server: FeedServer,
                                                            hook: Webhook) -> None:
    broken = Webhook()
    try:
        url = server.set(PATH, step(54))
        run = configure(tmp_path, f"targets:\n  good:\n    urls: ['{hook.url()}']\n"
                                  f"  broken:\n    urls: ['{broken.url()}']\n    body: \"{{{{ summry }}}}\"\n"
                                  "    test_body: \"{{ nope }}\"\n"
                                  f"feeds:\n  - {{name: k8s, url: '{url}', notify: [broken, good]}}\n")
        run("run")
        server.set(PATH, step(55))
        result = run("run", "--force", "--json")
        assert result.code == 1                                    # a delivery failed, nothing crashed
        assert "Traceback" not in result.err
        assert result.json()["deliveries"] == {"sent": 1, "failed": 1, "pending": 1}
        assert len(hook.bodies) == 1 and broken.bodies == []
        [problem] = run("status", "--json").json()["deliveries"]["problems"]
        assert problem["target"] == "broken" and "'summry' is undefined" in problem["last_error"]
        test = run("notify-test")
        assert test.code == 1 and "broken: template: FAILED: targets.broken: template error" in test.out
        assert "good: json://" in test.out and ": OK" in test.out
    finally:
        broken.down()


def test_alerts_and_test_messages_have_their_own_templates(tmp_path: Path, server: FeedServer,
                                                           hook: Webhook) -> None:
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"targets:\n  chat:\n    urls: ['{hook.url()}']\n"
                              "    title: \"{{ feed }}: {{ title }} changed\"\n"
                              "    body: \"{{ summary }}\\n\\n{{ diff }}\"\n"
                              f"feeds:\n  - {{name: k8s, url: '{url}', notify: [chat], max_errors: 1}}\n")
    assert run("check").code == 0
    assert run("notify-test").code == 0
    [test] = hook.bodies
    assert test["title"] == "feedwatch: test message" and test["type"] == "info"
    assert "test message from feedwatch to target chat" in test["message"]
    run("run")
    server.set(PATH, b"gone", status=500)
    run("run", "--force")
    [error] = hook.bodies[1:]
    assert error["title"] == "feedwatch: feed k8s is failing" and error["type"] == "failure"
    assert "HTTP 500" in error["message"] and f"127.0.0.1:{server.url('/').split(':')[2]}" in error["message"]
    assert re.search(r"Next try: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", error["message"])
    server.set(PATH, step(54))
    run("run", "--force")
    [recovery] = hook.bodies[2:]
    assert recovery["title"] == "feedwatch: feed k8s works again" and recovery["type"] == "success"
    server.set(PATH, step(55))
    run("run", "--force")
    [change] = hook.bodies[3:]
    assert change["title"] == "k8s: Community: Mentoring Programs and Resources changed"   # the custom one


def test_html_mail_has_feedwatchs_own_text_part(tmp_path: Path, server: FeedServer, smtp: SMTPServer) -> None:
    url = server.set(PATH, step(43))
    run = configure(tmp_path, f"report_url: {REPORT}\ntargets:\n  mail:\n    urls: ['{smtp.url()}']\n"
                              f"    format: html\nfeeds:\n  - {{name: k8s, url: '{url}', notify: [mail]}}\n")
    run("run")
    server.set(PATH, step(44))                                     # CoC v1.2 -> v1.3
    assert run("run", "--force").code == 0
    [mail] = smtp.messages
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "[-v1.2-]{+v1.3+}" in text or ("[-v1.2-]" in text and "{+v1.3+}" in text)   # not "v1.2v1.3"
    assert "v1.2v1.3" not in text
    assert re.search(r"^https://\S+/community/code-of-conduct/$", text, re.M)            # the item's link
    change_link = re.search(rf"Full report: ({re.escape(REPORT)}#change-\d+)", text)
    assert change_link, text
    html = mail.get_body(("html",)).get_content()
    page = lxml.html.fromstring(html)
    assert change_link.group(1) in [a.get("href") for a in page.iter("a")]
    # The anchor exists in the report feedwatch writes.
    report = run("report").out
    assert f'id="{change_link.group(1).split("#")[1]}"' in report


def test_html_alert_lines_do_not_run_together(tmp_path: Path, server: FeedServer, smtp: SMTPServer) -> None:
    server.set(PATH, b"nope", status=404)
    run = configure(tmp_path, f"targets:\n  mail:\n    urls: ['{smtp.url()}']\n    format: html\n"
                              f"feeds:\n  - {{name: k8s, url: '{server.url(PATH)}', notify: [mail], max_errors: 1}}\n")
    run("run")
    [mail] = smtp.messages
    page = lxml.html.fromstring(mail.get_body(("html",)).get_content())
    lines = [p.text_content() for p in page.iter("p")]
    assert lines[0] == "Feed k8s failed 1 polls in a row." or lines[0].startswith("Feed k8s failed")
    assert any(line.startswith("Last error: ") and "404" in line for line in lines)
    assert any(line.startswith("Next try: ") for line in lines)
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n").splitlines()
    assert any(line.startswith("Last error: ") for line in text) and any(line.startswith("URL: ") for line in text)


def test_a_truncated_chat_message_links_the_report_once(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    url = server.set(PATH, step(43))
    run = configure(tmp_path, f"report_url: {REPORT}\ntargets:\n  chat:\n    urls: ['{hook.url()}']\n"
                              f"    max_length: 300\nfeeds:\n  - {{name: k8s, url: '{url}', notify: [chat]}}\n")
    run("run")
    server.set(PATH, step(44))                                     # several sections change at once
    run("run", "--force")
    messages = [b["message"] for b in hook.bodies]
    cut = [m for m in messages if "more change" in m]
    assert cut, messages
    for m in cut:
        assert m.count(REPORT) == 1, m
        assert re.search(rf"\[Full report\]\({re.escape(REPORT)}#change-\d+\)", m)
