"""Prometheus metrics, the same for every mode (the one prometheus_client importer).

`watch --metrics-port` serves them over HTTP; `run --metrics-file PATH` writes them, atomically, as a
node-exporter textfile (a temporary file renamed over PATH), so cron users get the same dashboard and
alerts (deploy/monitoring/). Counters in a textfile continue from the values the previous run wrote, so
`rate()` and `increase()` work across runs.

| metric | type | source |
|---|---|---|
| ``feedwatch_polls_total{status}`` | counter | polls by result: ok, not_modified, unchanged, error |
| ``feedwatch_changes_total{kind}`` | counter | recorded changes: added, changed, removed |
| ``feedwatch_deliveries_total{result}`` | counter | delivery attempts: sent, failed |
| ``feedwatch_poll_duration_seconds`` | histogram | one poll, fetch to commit |
| ``feedwatch_deliveries_pending``, ``_failing``, ``_dead`` | gauge | the outbox, from the database |
| ``feedwatch_feeds`` | gauge | feeds in the config |
| ``feedwatch_feed_consecutive_errors{feed}`` | gauge | from the database: failed polls in a row |
| ``feedwatch_feed_last_success_timestamp_seconds{feed}`` | gauge | last successful poll (when added, if none) |
| ``feedwatch_feed_interval_seconds{feed}`` | gauge | the feed's configured interval |
| ``feedwatch_last_cycle_timestamp_seconds`` | gauge | end of the last `watch` cycle or `run` |

Per-feed gauges and the outbox come from the shared database, so every worker reports the same values:
aggregate them with ``max by (feed)``.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from monitor.errors import UsageError
from monitor.files import write_atomically
from monitor.models import ChangeKind, DeliveryCounts, FeedOutcome

if TYPE_CHECKING:
    from monitor.config import Settings
    from storage.store import Store

log = logging.getLogger("feedwatch.metrics")

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf)


@dataclass
class Metrics:
    """What the metrics say, kept by feedwatch and rendered by prometheus_client on each scrape or write."""

    port: int | None = None
    polls: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    changes: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    deliveries: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))   # per bucket, not cumulative
    latency_sum: float = 0.0
    gauges: dict[str, float] = field(default_factory=dict)
    feeds: list[tuple[str, float, float, float]] = field(default_factory=list)   # name, errors, last ok, interval
    _started: bool = False

    # ---------------------------------------------------------------------------------------------- input

    def start(self) -> None:
        """Serve /metrics on `port` (`watch`); without a port, nothing."""
        if self.port is None:
            return
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        registry.register(_Collector(self))
        try:
            start_http_server(self.port, addr="0.0.0.0", registry=registry)
        except OSError as exc:      # the port is taken, or not ours to use
            raise UsageError(f"watch: --metrics-port {self.port}: cannot listen: {exc.strerror or exc}") from None
        self._started = True
        log.info("metrics on :%d/metrics", self.port)

    def record(self, outcomes: Sequence[FeedOutcome], counts: DeliveryCounts, store: Store, settings: Settings) -> None:
        """One cycle's polls and deliveries, and the state of the feeds and the outbox in the database."""
        if not self._started:
            return
        self.add(outcomes, counts)
        try:
            self.observe(store, settings)
        except Exception as exc:    # the metrics never take a worker down; the watch loop handles the database
            log.warning("metrics: the database state was not read (%s); the gauges keep their last values", exc)

    def add(self, outcomes: Iterable[FeedOutcome], counts: DeliveryCounts) -> None:
        for o in outcomes:
            self.polls[o.status.value] += 1
            for c in o.changes:
                self.changes[c.kind.value] += 1
            if o.baselines:
                self.changes[ChangeKind.ADDED.value] += o.baselines
            seconds = o.elapsed_ms / 1000
            self.latency[next(i for i, b in enumerate(BUCKETS) if seconds <= b)] += 1
            self.latency_sum += seconds
        self.deliveries["sent"] += counts.sent
        self.deliveries["failed"] += counts.failed
        self.gauges["last_cycle"] = time.time()

    def observe(self, store: Store, settings: Settings) -> None:
        counts = store.outbox.counts()
        self.gauges.update(pending=counts.pending, failing=counts.failing, dead=counts.dead,
                           feeds=len(settings.feeds))
        health = {h.name: h for h in store.feed_health([f.name for f in settings.feeds])}
        # A paused feed has no per-feed series: it is not polled, so "not polled in twice its interval" (the
        # shipped alert rule) would fire for it.
        self.feeds = [(f.name, float(health[f.name].consecutive_errors), health[f.name].last_ok.timestamp(),
                       f.interval) for f in settings.polled() if f.name in health]

    # ---------------------------------------------------------------------------------------------- textfile

    @classmethod
    def continuing(cls, path: Path) -> Metrics:
        """Metrics whose counters start where the textfile at `path` left them (zero if it has none)."""
        metrics = cls()
        if path.exists() and not path.is_file():    # a device or a pipe (written into, never read: a pipe blocks)
            return metrics
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return metrics
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("metrics file %s unreadable (%s); counters start from zero", path, exc)
            return metrics
        try:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    metrics._resume(sample.name, sample.labels, sample.value)
        except ValueError as exc:
            log.warning("metrics file %s is not in the text format (%s); counters start from zero", path, exc)
            return cls()
        metrics._uncumulate()
        return metrics

    def _resume(self, name: str, labels: dict[str, str], value: float) -> None:
        if name == "feedwatch_polls_total":
            self.polls[labels.get("status", "")] += value
        elif name == "feedwatch_changes_total":
            self.changes[labels.get("kind", "")] += value
        elif name == "feedwatch_deliveries_total":
            self.deliveries[labels.get("result", "")] += value
        elif name == "feedwatch_poll_duration_seconds_bucket":
            le = float(labels.get("le", "+Inf"))
            if le in BUCKETS:
                self.latency[BUCKETS.index(le)] = value
        elif name == "feedwatch_poll_duration_seconds_sum":
            self.latency_sum = value

    def _uncumulate(self) -> None:
        cumulative = list(self.latency)
        self.latency = [cumulative[0]] + [max(0.0, b - a) for a, b in itertools.pairwise(cumulative)]

    def write_textfile(self, path: Path) -> None:
        """Write node-exporter textfile metrics to `path` atomically (monitor.files: a temporary file renamed
        over it, as prometheus_client's write_to_textfile does, but a link stays a link and a device a device)."""
        registry = CollectorRegistry()
        registry.register(_Collector(self))
        write_atomically(path, [generate_latest(registry)])

    # ---------------------------------------------------------------------------------------------- output

    def families(self) -> Iterator[Metric]:
        yield _counter("feedwatch_polls", "Feed polls by result", "status", self.polls)
        yield _counter("feedwatch_changes", "Recorded changes by kind", "kind", self.changes)
        yield _counter("feedwatch_deliveries", "Delivery attempts by result", "result", self.deliveries)
        buckets, total = [], 0.0
        for bound, n in zip(BUCKETS, self.latency, strict=True):
            total += n
            buckets.append(("+Inf" if bound == math.inf else repr(bound), total))
        yield HistogramMetricFamily("feedwatch_poll_duration_seconds", "Duration of one feed poll, fetch to commit",
                                    buckets=buckets, sum_value=self.latency_sum)
        for key, name, doc in _GAUGES:
            if key in self.gauges:
                yield GaugeMetricFamily(name, doc, value=self.gauges[key])
        per_feed = [GaugeMetricFamily(name, doc, labels=["feed"]) for name, doc in _FEED_GAUGES]
        for feed, *values in self.feeds:
            for family, value in zip(per_feed, values, strict=True):
                family.add_metric([feed], value)
        yield from per_feed


_GAUGES = (
    ("pending", "feedwatch_deliveries_pending", "Deliveries waiting to be sent"),
    ("failing", "feedwatch_deliveries_failing", "Pending deliveries that have failed at least once"),
    ("dead", "feedwatch_deliveries_dead", "Deliveries given up after max_attempts"),
    ("feeds", "feedwatch_feeds", "Feeds in the config"),
    ("last_cycle", "feedwatch_last_cycle_timestamp_seconds", "End of the last watch cycle or run (Unix time)"),
)
_FEED_GAUGES = (
    ("feedwatch_feed_consecutive_errors", "Failed polls of the feed in a row"),
    ("feedwatch_feed_last_success_timestamp_seconds", "Last successful poll of the feed (when it was added, if none)"),
    ("feedwatch_feed_interval_seconds", "The feed's configured polling interval"),
)


def _counter(name: str, doc: str, label: str, values: dict[str, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class _Collector:
    """A prometheus_client collector rendering one Metrics object."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics.families()
