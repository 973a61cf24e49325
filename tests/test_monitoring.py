"""The monitoring kit (deploy/monitoring/): every metric the dashboard and the alert rules name is served
by a live `watch` and written by `run --metrics-file`; the rules validate with promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import require
from tests.helpers import REPO, FeedServer, feedwatch_cmd, run_cli, write_config
from tests.receivers import free_port

KIT = REPO / "deploy" / "monitoring"
DASHBOARD = KIT / "grafana-dashboard.json"
ALERTS = KIT / "alerts.yml"
BUILTIN = {"up"}                 # Prometheus' own series the kit may use
FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
<item><guid>a</guid><title>A</title><description>one</description></item></channel></rss>"""

# PromQL words that are not metric names: functions, aggregations, keywords.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_NAMES = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, strings and ranges left out)."""
    text = _NOT_NAMES.sub(" ", _STRINGS.sub('""', expr))
    return {m.group(1) for m in _IDENT.finditer(text)
            if not m.group(2) and m.group(1).lower() not in _KEYWORDS}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"].split("(", 1)[1].split(",")[0]
              for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def served_names(text: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_metric_names_are_found_in_expressions() -> None:     # the extractor itself
    expr = 'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="b c",instance=~"$i"}[$__rate_interval]))) ' \
           "/ on (feed) max by (feed) (time() - b_seconds) > 2 * c and up == 0 or vector(0)"
    assert metric_names(expr) == {"a_bucket", "b_seconds", "c", "up"}


@pytest.fixture
def live_watch(tmp_path: Path, server: FeedServer) -> Iterator[str]:
    """A `watch` with a working and a failing feed; yields its /metrics once both have been polled."""
    server.set("/ok.xml", FEED)
    server.set("/broken.xml", "no", status=500)
    cfg = write_config(tmp_path / "w.yaml", f"""\
database: sqlite:///w.db
feeds:
  - {{name: ok, url: "{server.url('/ok.xml')}"}}
  - {{name: broken, url: "{server.url('/broken.xml')}"}}
""")
    port = free_port()
    log = tmp_path / "watch.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*feedwatch_cmd(), "--config", str(cfg), "watch", "--metrics-port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and 'feedwatch_polls_total{status="error"}' not in text:
            time.sleep(0.3)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
            except OSError:
                assert proc.poll() is None, log.read_text()
        assert 'feedwatch_polls_total{status="error"}' in text, text
        yield text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_and_alerts_name_only_metrics_a_live_watch_serves(live_watch: str) -> None:
    served = served_names(live_watch)
    for expr in dashboard_exprs() + alert_exprs():
        missing = metric_names(expr) - served - BUILTIN
        assert not missing, f"{expr!r} names {missing}, which watch does not serve"
    assert len(dashboard_exprs()) >= 15
    # what the issue asks the dashboard to show
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    for wanted in ("feedwatch_polls_total", "feedwatch_changes_total", "feedwatch_deliveries_pending",
                   "feedwatch_deliveries_failing", "feedwatch_deliveries_dead",
                   "feedwatch_poll_duration_seconds_bucket", "feedwatch_feed_consecutive_errors"):
        assert wanted in used
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(live_watch) for s in f.samples}
    assert values[("feedwatch_feed_consecutive_errors", (("feed", "broken"),))] >= 1
    assert values[("feedwatch_feed_consecutive_errors", (("feed", "ok"),))] == 0
    assert values[("feedwatch_changes_total", (("kind", "added"),))] == 1
    assert values[("feedwatch_feeds", ())] == 2


def test_alert_rules_validate_with_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        require("promtool", "Debian's 'prometheus' package is not installed (apt-get install prometheus)")
    proc = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 6 rules found" in proc.stdout


def test_alert_rules_fire_when_they_should_in_promtool_unit_tests() -> None:
    """deploy/monitoring/alerts.test.yml: a feed failing 6 h, one not polled in 2x its interval, dead and
    failing deliveries, a worker gone and one stalled, each firing when and only when it should."""
    promtool = shutil.which("promtool")
    if promtool is None:
        require("promtool", "Debian's 'prometheus' package is not installed (apt-get install prometheus)")
    proc = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], capture_output=True, text=True,
                          timeout=60, cwd=KIT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_alert_rules_have_the_alerts_and_the_fields_receivers_need() -> None:
    rules = {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for r in g["rules"]}
    assert set(rules) == {"FeedwatchFeedFailing", "FeedwatchFeedNotPolled", "FeedwatchDeliveriesDead",
                          "FeedwatchDeliveriesFailing", "FeedwatchWorkerDown", "FeedwatchWorkerStalled"}
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
    assert "2 * max by (feed) (feedwatch_feed_interval_seconds)" in rules["FeedwatchFeedNotPolled"]["expr"]


def one_feed(tmp_path: Path, server: FeedServer) -> Path:
    server.set("/ok.xml", FEED)
    url = server.url("/ok.xml")
    return write_config(tmp_path / "c.yaml", f'database: sqlite:///c.db\nfeeds: [{{name: ok, url: "{url}"}}]\n')


def test_run_writes_the_same_metrics_to_a_textfile_and_counts_on(tmp_path: Path, server: FeedServer) -> None:
    cfg = one_feed(tmp_path, server)
    textfile = tmp_path / "textfile" / "feedwatch.prom"
    textfile.parent.mkdir()
    for _ in range(3):
        result = run_cli("--config", str(cfg), "run", "--force", "--metrics-file", str(textfile))
        assert result.code == 0, result.err
    text = textfile.read_text(encoding="utf-8")
    assert [p.name for p in textfile.parent.iterdir()] == ["feedwatch.prom"]     # no temporary file left
    served = served_names(text)
    for expr in dashboard_exprs() + alert_exprs():
        assert not metric_names(expr) - served - BUILTIN, expr
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(text) for s in f.samples}
    polls = sum(v for (name, _), v in values.items() if name == "feedwatch_polls_total")
    assert polls == 3                                           # counters continue from run to run
    assert values[("feedwatch_poll_duration_seconds_count", ())] == 3
    assert values[("feedwatch_changes_total", (("kind", "added"),))] == 1


def test_an_unwritable_metrics_file_is_a_clear_error_after_a_full_run(tmp_path: Path, server: FeedServer) -> None:
    cfg = one_feed(tmp_path, server)
    missing = tmp_path / "no" / "such" / "m.prom"
    result = run_cli("--config", str(cfg), "run", "--json", "--metrics-file", str(missing))
    assert result.code == 1
    assert result.json()["feeds"][0]["status"] == "ok"
    assert "--metrics-file" in result.err and "cannot write" in result.err and "Traceback" not in result.err


def test_metrics_survive_a_database_that_fails_while_watch_runs(tmp_path: Path) -> None:
    """The watch loop handles a lost database; reading the gauges must not crash it first."""
    import sqlite3

    from monitor import config
    from monitor.metrics import Metrics
    from monitor.models import DeliveryCounts
    from storage.store import Store

    settings = config.loads("feeds: [{name: a, url: 'https://a.example/feed'}]\n")
    db = tmp_path / "m.db"
    store = Store.open(f"sqlite:///{db}")
    try:
        store.sync_feeds([("a", "https://a.example/feed")])
        metrics = Metrics(port=0)
        metrics._started = True                  # as after start(), without opening a port
        metrics.record([], DeliveryCounts(), store, settings)
        assert metrics.gauges["pending"] == 0 and [f[0] for f in metrics.feeds] == ["a"]
        with sqlite3.connect(db) as con:
            con.execute("DROP TABLE delivery_attempts")
            con.execute("DROP TABLE deliveries")
        metrics.record([], DeliveryCounts(sent=2), store, settings)      # no exception
        assert metrics.deliveries["sent"] == 2 and metrics.gauges["pending"] == 0
    finally:
        store.close()
