"""Alerts that reach somebody: a retry schedule that outlasts a weekend, dead deliveries said loudly and sent
again on request, a dead-delivery alert through the failing target itself when there is no other; and a
stable delivery id on every copy of a message (issue 13). Real webhook receiver and SMTP server."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor import notify
from monitor.config import TargetSettings
from tests.helpers import FeedServer, feedwatch_cmd, run_cli, run_process, write_config
from tests.helpers import corpus_step as step
from tests.receivers import SMTPServer, Webhook, free_port

PATH = "/community/index.xml"
WEEKEND = 64 * 3600          # Friday 17:00 to Monday 09:00


def configure(tmp_path: Path, feeds: str, targets: str) -> Callable[..., Any]:
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                          f"targets:\n{targets}feeds:\n{feeds}")

    def run(*args: str) -> Any:
        return run_cli("--config", str(config), *args)
    return run


def test_default_retry_schedule_outlasts_a_weekend() -> None:
    attempts = TargetSettings(name="t", urls=()).max_attempts
    waits = [notify.backoff(a) for a in range(1, attempts)]
    assert notify.retry_span(attempts) >= WEEKEND
    assert max(waits) <= 3600                     # a target that recovers hears from us within the hour
    assert waits[:3] == [30.0, 60.0, 120.0]
    assert notify.backoff(10_000) == 3600         # no overflow, however many attempts


def test_dead_delivery_is_loud_and_can_be_sent_again(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    broken = Webhook(status=500)
    try:
        url = server.set(PATH, step(54))
        run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [broken]\n    error_notify: [ops]\n",
                        f"  broken:\n    urls: ['{broken.url()}']\n    max_attempts: 2\n"
                        f"  ops:\n    urls: ['{hook.url()}']\n")
        run("run")
        server.set(PATH, step(55))
        run("run", "--force")
        given_up = run("run", "--force")
        assert "1 delivery was given up" in given_up.err and "feedwatch deliveries retry" in given_up.err
        quiet = run("-q", "run")                                    # cron's run says it too, every time
        assert "given up" in quiet.err
        status = run("status")
        assert "WARNING: 1 delivery was given up (1 to broken)" in status.out
        assert run("status", "--json").json()["deliveries"]["dead_by_target"] == {"broken": 1}
        [alert] = hook.bodies
        assert alert["type"] == "warning" and "deliveries retry --target broken" in alert["message"]

        assert run("deliveries", "retry", "--target", "nope").code == 2
        assert run("deliveries", "retry", "--feed", "other").out.startswith("no dead deliveries")
        broken.status = 200
        retry = run("deliveries", "retry", "--target", "broken")
        assert retry.code == 0 and retry.out.startswith("1 dead delivery queued again")
        assert run("status", "--json").json()["deliveries"]["dead"] == 0
        assert run("run", "--json").json()["deliveries"]["sent"] == 1
        assert len(broken.bodies) == 3 and "Discontinued activities" in broken.bodies[-1]["message"]
        assert run("deliveries", "retry", "--json").json() == {"requeued": 0}
    finally:
        broken.down()


def test_the_only_target_hears_about_its_dead_deliveries_once_it_recovers(
        tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    hook.status = 500
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [chat]\n",
                    f"  chat:\n    urls: ['{hook.url()}']\n    max_attempts: 2\n")
    run("run")
    server.set(PATH, step(55))
    run("run", "--force")
    run("run", "--force")                     # the change is dead now; its alert is tried at once, and fails
    assert len(hook.bodies) == 3
    hook.status = 200
    run("run", "--force")
    alerts = [b for b in hook.bodies[3:] if b["title"] == "feedwatch: notifications to chat are failing"]
    assert len(alerts) == 1 and alerts[0]["type"] == "warning"
    assert "failed 2 times" in alerts[0]["message"]
    run("run", "--force")
    assert len(hook.bodies) == 4                                   # once


def test_every_copy_of_a_delivery_carries_its_stable_id(tmp_path: Path, server: FeedServer, hook: Webhook,
                                                        smtp: SMTPServer) -> None:
    hook.status = 500
    url = server.set(PATH, step(54))
    run = configure(tmp_path, f"  - name: k8s\n    url: {url}\n    notify: [chat, mail]\n",
                    f"  chat:\n    urls: ['{hook.url()}']\n  mail:\n    urls: ['{smtp.url()}']\n    format: html\n")
    run("run")
    server.set(PATH, step(55))
    run("run", "--force")
    hook.status = 200
    run("run", "--force")
    ids = [h["X-Feedwatch-Delivery"] for h in hook.headers]
    assert len(ids) == 2 and ids[0] == ids[1] and ids[0].startswith("feedwatch-")   # a retry: the same id
    [mail] = smtp.messages
    mail_id = mail["Message-ID"]
    assert mail_id.startswith("<feedwatch-") and mail_id.endswith("@example.org>")
    assert mail["X-Feedwatch-Delivery"] != ids[0]                  # one id per outbox row (per target)
    server.set(PATH, step(56))
    run("run", "--force")
    assert len({m["Message-ID"] for m in smtp.messages}) == len(smtp.messages)   # new rows, new ids


@pytest.mark.slow
def test_kill_9_mid_send_repeats_once_with_the_same_id(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    """The one repeat a crash may cause: `run` is killed after the receiver got the message but before its
    answer was recorded. The next run sends it again, once, with the id of the first copy."""
    url = server.set(PATH, step(54))
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\ntargets:\n"
                          f"  chat:\n    urls: ['{hook.url()}']\nfeeds:\n  - name: k8s\n    url: {url}\n"
                          "    notify: [chat]\n")
    assert run_cli("--config", str(config), "run").code == 0
    server.set(PATH, step(55))
    hook.delay = 30.0                                   # the receiver has the body; its answer never comes
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "run", "--force"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not hook.bodies and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(hook.bodies) == 1
    hook.delay = 0.0
    again = run_process("--config", str(config), "run", "--json")
    assert again.code == 0, again.err
    assert again.json()["deliveries"]["sent"] == 1
    assert len(hook.bodies) == 2                        # one repeat ...
    first, repeat = (h["X-Feedwatch-Delivery"] for h in hook.headers)
    assert first == repeat                              # ... that says it is one
    assert hook.bodies[0] == hook.bodies[1]


@pytest.mark.slow
def test_watch_exports_dead_deliveries_as_a_metric(tmp_path: Path, server: FeedServer) -> None:
    broken = Webhook(status=500)
    port = free_port()
    url = server.set(PATH, step(54))
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\ntargets:\n"
                          f"  chat:\n    urls: ['{broken.url()}']\n    max_attempts: 1\nfeeds:\n  - name: k8s\n"
                          f"    url: {url}\n    notify: [chat]\n    notify_baseline: true\n")
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "watch", "--metrics-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, dead = time.monotonic() + 60, 0.0
        while time.monotonic() < deadline and not dead:
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                    page = answer.read().decode()
            except OSError:
                continue
            found = re.search(r"^feedwatch_deliveries_dead ([0-9.]+)$", page, re.M)
            dead = float(found.group(1)) if found else 0.0
        assert dead >= 4                                    # the baseline's four documents, given up
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        broken.down()
    assert "status=dead" in err


@pytest.mark.slow
def test_kill_9_mid_mail_repeats_once_with_the_same_message_id(tmp_path: Path, server: FeedServer,
                                                               smtp: SMTPServer) -> None:
    """The same for e-mail: the repeated mail has the Message-ID of the first, so a mail reader shows one."""
    received = smtp.sink.handle_DATA
    slow = True

    async def handle_data(*args: Any) -> str:      # keeps the mail, then answers too late for the killed run
        answer: str = await received(*args)
        if slow:
            await asyncio.sleep(30)
        return answer
    smtp.sink.handle_DATA = handle_data  # type: ignore[method-assign]
    url = server.set(PATH, step(54))
    config = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\ntargets:\n"
                          f"  mail:\n    urls: ['{smtp.url()}']\n    format: html\nfeeds:\n  - name: k8s\n"
                          f"    url: {url}\n    notify: [mail]\n")
    assert run_cli("--config", str(config), "run").code == 0
    server.set(PATH, step(55))
    proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(config), "run", "--force"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(smtp.messages) == 1
    slow = False
    again = run_process("--config", str(config), "run", "--json")
    assert again.code == 0, again.err
    assert len(smtp.messages) == 2
    first, repeat = smtp.messages
    assert first["Message-ID"] == repeat["Message-ID"] and first["Message-ID"].startswith("<feedwatch-")
