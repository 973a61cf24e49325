"""Secrets never reach a terminal or a log (issue 13): webhook paths and passwords are credentials, and
every logger that can see a URL — feedwatch's own, urllib3's request lines under -v, Apprise's warnings,
config errors — goes through the masking. Real webhook receiver, `feedwatch` as a subprocess."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import FeedServer, corpus_steps, run_process, write_config
from tests.receivers import Webhook

TOKEN = "Xk29fjQ0pLm3Zt7w"                       # a webhook path token
PASSWORD = "PaSsW0rd-99"                           # user info of a webhook URL
SLACK = "slack://T1JJ3T3L2/A1B!RTD4JD/TIiajkdnlazkcOXrIdevi7FQ"   # Apprise warns about its second token
SLACK_SECRETS = ("T1JJ3T3L2", "A1B!RTD4JD", "TIiajkdnlazkcOXrIdevi7FQ")


def test_verbose_run_and_notify_test_print_no_token(tmp_path: Path, server: FeedServer, hook: Webhook) -> None:
    url = server.set("/f.xml", corpus_steps()[54].read_bytes())
    hook_url = f"json://bot:{PASSWORD}@127.0.0.1:{hook.port}/hooks/{TOKEN}"
    config = write_config(tmp_path / "feedwatch.yaml", f"""database: sqlite:///{tmp_path / 'fw.db'}
targets:
  chat: {{urls: ["{hook_url}"]}}
  slack: {{urls: ["{SLACK}"]}}
feeds:
  - {{name: k8s, url: "{url}", notify: [chat, slack], notify_baseline: true}}
""")
    results = [run_process("-v", "--config", str(config), "run"),
               run_process("-v", "--config", str(config), "notify-test"),
               run_process("-v", "--config", str(config), "status"),
               run_process("-v", "--config", str(config), "check")]
    assert len(hook.bodies) >= 4                        # the webhook really was called (and logged by urllib3)
    everything = "\n".join(r.out + r.err for r in results)
    assert "POST /hooks/****" in everything             # urllib3's request line is there, masked
    assert "An invalid Slack (second) Token (****) was specified" in everything
    for secret in (TOKEN, PASSWORD, *SLACK_SECRETS):
        assert secret not in everything, secret


def test_a_config_error_does_not_echo_an_environment_value(tmp_path: Path) -> None:
    secret = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
    config = write_config(tmp_path / "feedwatch.yaml", "defaults:\n  interval: ${FW_TEST_HOOK}\n"
                          "feeds:\n  - {name: k8s, url: feed.xml}\n")
    for command in ("run", "check"):
        result = run_process("--config", str(config), command, env={"FW_TEST_HOOK": secret})
        assert result.code == 2
        [line] = result.err.strip().splitlines()
        assert line.startswith(f"feedwatch: config: {config}:")
        assert line.endswith("interval: '${FW_TEST_HOOK}' is not a duration (e.g. 90s, 30m, 6h, 1d)"), line
        assert "XXXXsecretXXXX" not in result.err + result.out


def test_a_database_password_is_masked_in_a_connection_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "feedwatch.yaml", "database: postgresql+psycopg://fw:Sup3rSecretPw@"
                          "127.0.0.1:1/feeds\nfeeds:\n  - {name: k8s, url: feed.xml}\n")
    for command in ("run", "status", "check"):
        result = run_process("-v", "--config", str(config), command)
        assert result.code == 2, result.err
        assert "Sup3rSecretPw" not in result.err + result.out
        assert "Traceback" not in result.err
