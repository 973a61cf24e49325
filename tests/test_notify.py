"""Notifications through the outbox, against a real SMTP server and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CORPUS, FeedServer, feedwatch_cmd, run_cli, run_process, write_config
from tests.helpers import corpus_step as step
from tests.receivers import SMTPServer, Webhook

PATH = "/community/index.xml"
SECRET_PASSWORD = "Pa55w0rd-do-not-print"
SECRET_TOKEN = "tok3n-do-not-print-7f3a9c"


def configure(tmp_path: Path, feeds: str, targets: str, defaults: str = "") -> Callable[..., Any]:
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"defaults:\n  interval: 1h\n{defaults}targets:\n{targets}feeds:\n{feeds}")

    def run(*args: str) -> Any:
        return run_cli("--config", str(config), *args)
    run.config = config  # type: ignore[attr-defined]
    return run


def test_coc_change_reaches_smtp_as_html_and_webhook_as_markdown(
        tmp_path: Path, server: FeedServer, smtp: SMTPServer, hook: Webhook) -> None:
    url = server.set(PATH, step(43))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [mail, chat]\n",
                    f"  mail:\n    urls: ['{smtp.url()}']\n    format: html\n"
                    f"  chat:\n    urls: ['{hook.url()}']\n    format: markdown\n")
    assert run("run").code == 0
    assert smtp.messages == [] and hook.bodies == []          # the baseline is not news
    # CoC v1.2 -> v1.3, plus hostile markup in the visible text of the page.
    body = step(44).replace(b"harassment-free experience",
                            b"harassment-free &amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt; experience")
    server.set(PATH, body)
    result = run("run", "--force", "--json")
    assert result.code == 0, result.err
    assert result.json()["deliveries"] == {"sent": 2, "failed": 0, "pending": 0}

    [mail] = smtp.messages
    assert mail["Subject"] == "feedwatch: Community: Code Of Conduct changed"
    html = mail.get_body(("html",)).get_content()
    assert "<del style=" in html and "<ins style=" in html
    assert "v1.2</del>" in html and "v1.3</ins>" in html           # the version bump, highlighted
    assert "caste" in html                                          # words added by v1.3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert "Our Pledge" in html or "Community Code of Conduct" in html   # section headings give context

    [chat] = hook.bodies
    assert chat["title"] == "feedwatch: Community: Code Of Conduct changed"
    assert "**v1.3**" in chat["message"] and "~~v1.2~~" in chat["message"]
    assert "&lt;script&gt;" in chat["message"] and "<script>" not in chat["message"]   # inert in markdown


def test_target_down_then_back_delivers_exactly_once(tmp_path: Path, server: FeedServer) -> None:
    hook = Webhook()
    hook.down()                                                     # connection refused
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [chat]\n",
                    f"  chat:\n    urls: ['{hook.url()}']\n")
    run("run")
    server.set(PATH, step(55))
    down = run("run", "--force", "--json")
    assert down.code == 1                                           # a delivery failed
    assert [c["kind"] for c in down.json()["changes"]] == ["changed"]   # ... but the change is recorded
    assert down.json()["deliveries"] == {"sent": 0, "failed": 1, "pending": 1}
    status = run("status", "--json").json()["deliveries"]
    assert status["pending"] == 1 and status["failing"] == 1
    assert "Connection" in status["problems"][0]["last_error"]

    hook.status = 500                                               # up, but broken
    hook.up()
    failing = run("run", "--force", "--json")
    assert failing.json()["deliveries"] == {"sent": 0, "failed": 1, "pending": 1}
    assert len(hook.bodies) == 1

    hook.status = 200                                               # healed
    healed = run("run", "--force", "--json")
    assert healed.code == 0
    assert healed.json()["deliveries"] == {"sent": 1, "failed": 0, "pending": 0}
    assert len(hook.bodies) == 2 and "Discontinued activities" in hook.bodies[-1]["message"]
    for _ in range(2):
        assert run("run", "--force", "--json").json()["deliveries"]["sent"] == 0
    assert len(hook.bodies) == 2
    hook.down()


def test_retry_waits_for_its_backoff(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    hook.status = 500
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [chat]\n",
                    f"  chat:\n    urls: ['{hook.url()}']\n")
    run("run")
    server.set(PATH, step(55))
    run("run", "--force")
    assert len(hook.bodies) == 1
    hook.status = 200
    assert run("run", "--json").json()["deliveries"]["sent"] == 0      # not due yet
    assert len(hook.bodies) == 1


def _wait_for(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_kill_9_between_poll_and_delivery_loses_nothing(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [chat]\n",
                    f"  chat:\n    urls: ['{hook.url()}']\n")
    run("run")
    db = tmp_path / "fw.db"
    server.set(PATH, step(55))
    hook.delay = 1.0
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(run.config), "run", "--force"],  # type: ignore
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed as soon as the poll has committed its change (and its outbox row), before the send ends.
    assert _wait_for(lambda: _count(db, "SELECT count(*) FROM changes WHERE kind = 'changed'") == 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    hook.delay = 0.0
    assert _count(db, "SELECT count(*) FROM deliveries WHERE status = 'pending'") == 1
    received_before = len(hook.bodies)                              # 0, or 1 if the send began
    result = run_process("--config", str(run.config), "run", "--json")  # type: ignore[attr-defined]
    assert result.code == 0, result.err
    assert result.json()["deliveries"]["sent"] == 1
    assert len(hook.bodies) == received_before + 1                  # delivered; at most one repeat
    assert len(hook.bodies) in (1, 2)
    # A repeat carries the same delivery id as its first copy: the receiver can drop it.
    ids = {h["X-Feedwatch-Delivery"] for h in hook.headers}
    assert len(ids) == 1 and ids.pop().startswith("feedwatch-")
    assert _count(db, "SELECT count(*) FROM deliveries WHERE status = 'sent'") == 1


def test_digest_sends_one_message_for_several_changes(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    urls = [server.set(f"/f{i}.xml", step(35)) for i in range(3)]
    feeds = "".join(f"  - name: f{i}\n    url: {u}\n    notify: [digest]\n" for i, u in enumerate(urls))
    run = configure(tmp_path, feeds, f"  digest:\n    urls: ['{hook.url()}']\n    mode: digest\n")
    run("run")
    for i in range(3):
        server.set(f"/f{i}.xml", step(36 + i))    # three different CoC revisions
    result = run("run", "--force", "--json")
    assert len(result.json()["changes"]) == 3
    assert result.json()["deliveries"] == {"sent": 3, "failed": 0, "pending": 0}
    [message] = hook.bodies
    assert message["title"] == "feedwatch: 3 changes in f0, f1, f2"
    for name in ("f0", "f1", "f2"):
        assert f"**{name}**" in message["message"]


def test_a_digest_tried_again_is_the_same_message_and_news_gets_its_own(tmp_path: Path, server: FeedServer,
                                                                        hook: Webhook) -> None:
    """A digest one URL failed goes again to that URL as it was, under the same delivery id, even though a
    newer change joined the outbox meanwhile; the newer change goes out in a digest of its own, so the URL
    that took the first digest never gets its change twice."""
    other = Webhook()
    try:
        urls = [server.set(f"/f{i}.xml", step(35)) for i in range(2)]
        feeds = "".join(f"  - name: f{i}\n    url: {u}\n    notify: [digest]\n" for i, u in enumerate(urls))
        run = configure(tmp_path, feeds, f"  digest:\n    urls: ['{hook.url()}', '{other.url()}']\n"
                        "    mode: digest\n    format: text\n")
        run("run")
        hook.status = 500
        server.set("/f0.xml", step(36))
        assert run("run", "--force").code == 1                            # a delivery failed
        assert len(hook.bodies) == len(other.bodies) == 1
        first = other.headers[0]["X-Feedwatch-Delivery"]
        assert hook.headers[0]["X-Feedwatch-Delivery"] == first
        hook.status = 200
        server.set("/f1.xml", step(37))
        result = run("run", "--force", "--json")
        assert result.json()["deliveries"] == {"sent": 2, "failed": 0, "pending": 0}
        retry, news = hook.bodies[1:]
        assert retry == hook.bodies[0]                                     # the same digest ...
        assert hook.headers[1]["X-Feedwatch-Delivery"] == first            # ... under the same id
        assert "f1" in news["title"] and "f0" not in news["title"] + news["message"]
        assert hook.headers[2]["X-Feedwatch-Delivery"] != first
        assert other.bodies[1:] == [news]                                  # the f0 change reached it once
        assert other.headers[1]["X-Feedwatch-Delivery"] == hook.headers[2]["X-Feedwatch-Delivery"]
    finally:
        other.down()


def test_a_dispatch_in_the_middle_of_a_watch_cycle_leaves_digests_for_its_end(
        tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    """A cycle held up by a slow feed delivers every 5 s; a digest target must still get one digest for
    the cycle, not one per early dispatch."""
    from monitor import config, notify
    from storage.store import Store

    url = server.set("/f.xml", step(35))
    run = configure(tmp_path, f"  - name: f\n    url: {url}\n    notify: [digest]\n",
                    f"  digest:\n    urls: ['{hook.url()}']\n    mode: digest\n")
    run("run")
    server.set("/f.xml", step(36))
    assert run("run", "--force", "--no-notify").code == 0
    settings = config.load(run.config)  # type: ignore[attr-defined]
    with Store.open(settings.database_url) as store:
        early = notify.deliver_pending(store, settings, digest_due=False, digests=False)
        assert (early.sent, early.pending, hook.bodies) == (0, 1, [])
        last = notify.deliver_pending(store, settings, digest_due=False)
        assert (last.sent, last.pending, len(hook.bodies)) == (1, 0, 1)


def test_a_digest_says_a_revert_is_a_revert(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    """DESIGN §4: a flapping document is reported as a revert, not as fresh news, in a digest too."""
    url = server.set("/f.xml", step(35))
    run = configure(tmp_path, f"  - name: f\n    url: {url}\n    notify: [digest]\n",
                    f"  digest:\n    urls: ['{hook.url()}']\n    mode: digest\n    format: text\n")
    run("run")
    for n in (36, 35):      # changed, then back to the first version
        server.set("/f.xml", step(n))
        assert run("run", "--force").code == 0
    changed, reverted = hook.bodies
    assert "(changed, version 2)" in changed["message"] and "reverted" not in changed["message"]
    assert "(reverted to version 1, version 3)" in reverted["message"], reverted["message"]


def test_three_failures_one_alert_then_one_recovery(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [chat]\n    max_errors: 3\n",
                    f"  chat:\n    urls: ['{hook.url()}']\n")
    run("run")
    server.set(PATH, b"broken", status=500)
    for _ in range(5):
        assert run("run", "--force").code == 1
    alerts = [b for b in hook.bodies if "failing" in b["title"]]
    assert len(alerts) == 1
    assert alerts[0]["title"] == "feedwatch: feed k8s is failing"
    assert "failed 3 polls in a row" in alerts[0]["message"] and "HTTP 500" in alerts[0]["message"]
    server.set(PATH, step(54))
    for _ in range(3):
        assert run("run", "--force").code == 0
    recoveries = [b for b in hook.bodies if "works again" in b["title"]]
    assert len(recoveries) == 1 and len(hook.bodies) == 2


def test_dead_delivery_is_reported(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    broken = Webhook(status=500)
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [broken]\n    error_notify: [ops]\n",
                    f"  broken:\n    urls: ['{broken.url()}']\n    max_attempts: 2\n"
                    f"  ops:\n    urls: ['{hook.url()}']\n")
    run("run")
    server.set(PATH, step(55))
    run("run", "--force")
    run("run", "--force")
    assert len(broken.bodies) == 2
    deliveries = run("status", "--json").json()["deliveries"]
    assert deliveries["dead"] == 1
    assert [(p["status"], p["next_attempt_at"]) for p in deliveries["problems"]] == [("dead", None)]  # never again
    [alert] = hook.bodies
    assert alert["title"] == "feedwatch: notifications to broken are failing"
    run("run", "--force")
    assert len(broken.bodies) == 2                                  # dead rows are not retried
    broken.down()


def test_no_secret_in_any_output(tmp_path: Path, server: FeedServer, hook: Webhook, smtp: SMTPServer) -> None:
    secret_hook = hook.url(user=f"bot:{SECRET_PASSWORD}") + f"?token={SECRET_TOKEN}"
    dead_hook = f"json://bot:{SECRET_PASSWORD}@127.0.0.1:9/{SECRET_TOKEN}"
    mail = smtp.url(user=f"bot:{SECRET_PASSWORD}")
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [chat, down, mail]\n",
                    f"  chat:\n    urls: ['{secret_hook}']\n  down:\n    urls: ['{dead_hook}']\n"
                    f"  mail:\n    urls: ['{mail}']\n    format: html\n")
    outputs = [run("-v", "run"), run("check"), run("check", "--json")]
    server.set(PATH, step(55))
    outputs += [run("-v", "run", "--force", "--json"), run("status"), run("status", "--json"),
                run("-v", "notify-test"), run("history"), run("-v", "run", "--force")]
    outputs.append(run_process("--config", str(run.config), "-v", "run", "--force"))  # type: ignore[attr-defined]
    for r in outputs:
        for secret in (SECRET_PASSWORD, SECRET_TOKEN):
            assert secret not in r.out and secret not in r.err, (r.out + r.err)
    assert any("bot:****@" in r.out + r.err for r in outputs)       # masked URLs are shown
    with sqlite3.connect(tmp_path / "fw.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert SECRET_PASSWORD not in dump and SECRET_TOKEN not in dump
    assert len(hook.bodies) >= 2                                     # the change and the test message


def test_notify_test_reports_each_url(tmp_path: Path, hook: Webhook, server: FeedServer) -> None:
    run = configure(tmp_path, f"  - name: k8s\n    url: {server.url(PATH)}\n",
                    f"  chat:\n    urls: ['{hook.url()}', 'json://127.0.0.1:9/refused']\n")
    result = run("notify-test", "chat")
    assert result.code == 1
    lines = result.out.strip().splitlines()
    assert lines[0] == f"chat: json://127.0.0.1:{hook.port}/hook: OK"
    assert lines[1].startswith("chat: json://127.0.0.1:9/refused: FAILED: ")
    assert hook.bodies[0]["title"] == "feedwatch: test message"
    assert run("notify-test", "nope").code == 2


def test_example_config_is_valid(tmp_path: Path) -> None:
    env = {"SLACK_URL": "json://127.0.0.1:9/x", "SMTP_PASSWORD": "x"}
    example = Path(__file__).resolve().parent.parent / "config" / "feedwatch.example.yaml"
    result = run_cli("--config", str(example), "--database", str(tmp_path / "x.db"), "check", "--json", env=env)
    assert result.code == 0, result.err + result.out
    assert result.json()["feeds"] == 5 and result.json()["targets"] == 2   # two feeds, three page sources
    k8s = Path(__file__).resolve().parent.parent / "config" / "kubernetes-community.yaml"
    assert run_cli("--config", str(k8s), "--database", str(tmp_path / "y.db"), "check").code == 0
    assert CORPUS.exists()
