"""Deliver the outbox: claim, render (monitor.messages), send (monitor.sending), record.

- Each pending delivery is claimed under a lease, rendered with its target's format and templates, and
  sent to each of the target's URLs that has not yet accepted it. The outcome of every URL is recorded;
  a row is ``sent`` once every URL accepted it and is never sent again.
- Every delivery carries a stable id derived from its outbox row (``delivery_id``): a message repeated
  after a crash carries the same id as its first copy, so a receiver can drop it.
- Failures retry with exponential back-off: after 30 s, doubling up to once an hour. With the default
  ``max_attempts`` (100) a delivery is retried for about four days, so an outage over a long weekend
  loses nothing. Then the row is ``dead``: `run` and `status` say so, and an alert goes to the feed's
  error targets other than the failing one, or, when there is no other, to the failing target itself
  (it arrives once the target works again). ``requeue`` sends dead deliveries again.
- A template error is its target's delivery error: the other targets still deliver.
- ``digest`` targets get one message listing every pending change: per ``run``, or per
  ``digest_period`` in ``watch``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor import messages, sending
from monitor.config import Settings, TargetSettings
from monitor.errors import ConfigError
from monitor.humanize import iso_z
from monitor.messages import Renderer, TemplateProblem
from monitor.models import ChangeContext, DeliveryCounts, Message, PendingDelivery, UrlOutcome, utcnow
from monitor.urls import mask as mask_url
from storage.db import owner_id
from storage.outbox import Outbox
from storage.store import Store

log = logging.getLogger("feedwatch.notify")

MIN_LEASE = 30.0             # a delivery lease never shorter than this (one send can take seconds)
BACKOFF_BASE = 30.0          # first retry after 30 s, doubling per attempt ...
BACKOFF_MAX = 3600.0         # ... up to once an hour (a target that recovers gets its messages within the hour)


@dataclass
class _Tally:
    sent: int = 0
    failed: int = 0
    dead: list[PendingDelivery] = field(default_factory=list)


def backoff(attempts: int) -> float:
    """Seconds to wait after failed attempt number `attempts` (1, 2, ...)."""
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(max(0, attempts - 1), 32)))


def retry_span(max_attempts: int) -> float:
    """How long a delivery is retried before it is dead: the sum of its waits."""
    return sum(backoff(a) for a in range(1, max_attempts))


def delivery_id(deliveries: Sequence[PendingDelivery]) -> str:
    """A stable id for the message sent on behalf of these outbox rows (one, or a digest's)."""
    key = "|".join(f"{d.id}:{d.target}:{d.kind}:{d.change_id}:{d.created_at.isoformat()}"
                   for d in sorted(deliveries, key=lambda d: d.id))
    return "feedwatch-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def check_targets(settings: Settings) -> list[str]:
    """Problems with the targets' URLs (for `check`)."""
    return sending.check_urls(settings)


def check_templates(settings: Settings) -> list[ConfigError]:
    """Every template compiled and rendered against a sample change (for `check`): file:line problems."""
    return messages.check_templates(settings)


# ------------------------------------------------------------------------------------------------ dispatch


def deliver_pending(store: Store, settings: Settings, *, owner: str | None = None, now: datetime | None = None,
                    force: bool = False, digest_due: bool = True, digests: bool = True) -> DeliveryCounts:
    """Send what the outbox holds; returns counts for this dispatch (sent, failed) and the backlog.
    Without `digests`, changes for digest targets wait (a dispatch in the middle of a `watch` cycle)."""
    outbox = store.outbox
    owner = owner or owner_id()
    now = now or utcnow()
    tally = _Tally()
    renderer = Renderer(settings)
    lease = max(MIN_LEASE, settings.polling.lease)
    last_id = 0
    handled: set[int] = set()
    try:
        while True:   # batches in id order until nothing is due; each row at most once per dispatch
            claimed, last_id = outbox.claim(owner, now=now, lease=lease, due_only=not force, after_id=last_id)
            if not claimed:
                break
            claimed = [d for d in claimed if d.id not in handled]   # a digest's row, claimed with it before
            handled.update(d.id for d in claimed)
            contexts = outbox.contexts([d.change_id for d in claimed if d.change_id is not None])
            by_target: dict[str, list[PendingDelivery]] = {}
            for d in claimed:
                by_target.setdefault(d.target, []).append(d)
            for name, deliveries in by_target.items():
                _Dispatch(outbox, settings, renderer, owner, now, tally, lease).target(name, deliveries, contexts,
                                                                                        digest_due, digests)
            _alert_dead(outbox, settings, tally.dead, now)   # sent by the next batch
            tally.dead = []
    finally:
        outbox.release(owner)
    counts = outbox.counts()
    return DeliveryCounts(sent=tally.sent, failed=tally.failed, pending=counts.pending, dead=counts.dead)


@dataclass
class _Dispatch:
    outbox: Outbox
    settings: Settings
    renderer: Renderer
    owner: str
    now: datetime
    tally: _Tally
    lease: float

    def target(self, name: str, deliveries: list[PendingDelivery], contexts: dict[int, ChangeContext],
               digest_due: bool, digests: bool) -> None:
        target = self.settings.targets.get(name)
        if target is None:
            for d in deliveries:
                self.record(d, [UrlOutcome("-", name, False, f"target '{name}' is not in the config")], ["-"], 1)
            return
        changes = [d for d in deliveries if d.kind == "change" and d.change_id in contexts]
        others = [d for d in deliveries if d not in changes]
        if target.mode == "digest" and changes:
            if digests and (digest_due or _period_over(self.outbox, target, self.now)):
                by_message: dict[str | None, list[PendingDelivery]] = {}
                for d in changes:     # a digest tried before goes again as it was; the new changes in one more
                    by_message.setdefault(d.message, []).append(d)
                for message, rows in by_message.items():
                    key = message or delivery_id(rows)
                    self.send(target, rows, lambda held, key=key: self.digest(
                        target, [contexts[d.change_id] for d in held if d.change_id is not None], key),
                        digest_id=key)
            changes = []
        for d in changes:
            assert d.change_id is not None
            ctx = contexts[d.change_id]
            self.send(target, [d], lambda _held, ctx=ctx, d=d: self.renderer.message(
                target, "change", self.renderer.change_variables(ctx, target.format, target.max_length),
                text_variables=self.renderer.change_variables(ctx, "text", target.max_length)
                if target.format == "html" else None, delivery_id=delivery_id([d])))
        for d in others:
            self.send(target, [d], lambda _held, d=d: self.alert(target, d))

    def digest(self, target: TargetSettings, contexts: list[ChangeContext], key: str) -> Message:
        budget = max(400, target.max_length // max(1, len(contexts)))

        def variables(fmt: str) -> dict[str, Any]:
            items = [self.renderer.change_variables(ctx, fmt, budget) for ctx in contexts]
            return {"changes": items, "count": len(items), "feeds": sorted({i["feed"] for i in items}),
                    "report_url": self.settings.report_url}
        return self.renderer.message(target, "digest", variables(target.format),
                                     text_variables=variables("text") if target.format == "html" else None,
                                     delivery_id=key)

    def alert(self, target: TargetSettings, d: PendingDelivery) -> Message:
        payload = {"target": d.target, "feed": d.feed, **d.payload}
        if d.feed is not None:
            with contextlib.suppress(KeyError):
                payload["feed_url"] = mask_url(self.settings.feed(d.feed).url)
            if d.kind == "error":
                due = self.outbox.feed_next_due(d.feed)
                payload["next_retry"] = iso_z(due) if due else None
        if d.kind == "dead":
            payload["dead"] = self.outbox.counts_by_target("dead").get(str(payload.get("target")), 0)
        variables = self.renderer.alert_variables(d.kind, payload)
        return self.renderer.message(target, d.kind, variables, delivery_id=delivery_id([d]))

    def send(self, target: TargetSettings, deliveries: Sequence[PendingDelivery], make: Any, *,
             digest_id: str | None = None) -> None:
        """Render and send one message on behalf of one or more deliveries; record it for each of them.

        The leases are renewed right before sending: a delivery whose lease ran out meanwhile (a slow batch,
        a stalled process) may already be another worker's, and is left to it instead of being sent twice.
        A digest's id is stored on its rows in that same commit, before it is sent."""
        held = self.outbox.renew(self.owner, [d.id for d in deliveries], self.lease, message=digest_id)
        if digest_id is not None and len(held) < len(deliveries):
            return      # part of a digest went to another worker: its id must not go out with only some rows
        deliveries = [d for d in deliveries if d.id in held]
        if not deliveries:
            return
        keys = sending.target_keys(target)
        try:
            message: Message = make(deliveries)
        except TemplateProblem as exc:    # this target's problem: recorded, retried, the others go on
            for d in deliveries:
                self.record(d, [UrlOutcome("-", "template", False, str(exc))], keys, target.max_attempts)
            return
        skip = frozenset.intersection(*(d.done_urls for d in deliveries))
        outcomes = sending.send(target, message, skip=skip)
        for d in deliveries:
            self.record(d, [o for o in outcomes if o.url_id not in d.done_urls], keys, target.max_attempts)

    def record(self, d: PendingDelivery, outcomes: Sequence[UrlOutcome], keys: Sequence[str],
               max_attempts: int) -> None:
        status = self.outbox.record(d, self.owner, now=self.now, outcomes=outcomes, urls=keys,
                                    max_attempts=max_attempts, backoff=backoff(d.attempts + 1))
        failures = [o for o in outcomes if not o.ok]
        if status == "sent":
            self.tally.sent += 1
        else:
            self.tally.failed += 1
            if status == "dead":
                self.tally.dead.append(d)
        level = logging.INFO if status == "sent" else logging.ERROR if status == "dead" else logging.WARNING
        detail = "; ".join(f"{o.masked}: {o.detail}" for o in failures)
        log.log(level, "delivery=%d target=%s kind=%s status=%s attempts=%d%s", d.id, d.target, d.kind, status,
                d.attempts + 1, f" error={json.dumps(detail)}" if detail else "")


def _period_over(outbox: Outbox, target: TargetSettings, now: datetime) -> bool:
    last = outbox.last_sent(target.name)
    return target.digest_period is None or last is None or (now - last).total_seconds() >= target.digest_period


def _alert_dead(outbox: Outbox, settings: Settings, dead: list[PendingDelivery], now: datetime) -> int:
    """Deliveries gave up: tell the feed's error targets other than the failing one, or, when there is no
    other, the failing target itself (the alert waits for it to work again). One pending alert per target;
    never an alert about an alert."""
    waiting = set(outbox.pending_alert_targets("dead"))
    alerts = 0
    for d in dead:
        if d.kind != "change" or d.feed is None:
            continue
        try:
            others = [t for t in settings.feed(d.feed).error_notify if t != d.target]
        except KeyError:
            continue
        targets = [t for t in (others or [d.target]) if (t, d.target) not in waiting]
        payload = {"feed": d.feed, "target": d.target, "attempts": d.attempts + 1}
        outbox.add_alert(kind="dead", targets=targets, payload=payload, now=now, feed_id=outbox.feed_id(d.feed))
        waiting |= {(t, d.target) for t in targets}
        alerts += len(targets)
    return alerts


def requeue(store: Store, *, targets: Sequence[str] = (), feeds: Sequence[str] = ()) -> int:
    """Dead deliveries (all, or those to `targets` / about `feeds`) pending again with fresh attempts."""
    return store.outbox.requeue(targets=targets, feeds=feeds, now=utcnow())


def test_message(settings: Settings, names: Sequence[str]) -> dict[str, list[UrlOutcome]]:
    """Send a test message to each named target; per target, what each URL answered."""
    renderer = Renderer(settings)
    out = {}
    for name in names:
        target = settings.targets[name]
        try:
            message = renderer.message(target, "test", renderer.alert_variables("test", {"target": name}))
        except TemplateProblem as exc:
            out[name] = [UrlOutcome("-", "template", False, str(exc))]
            continue
        out[name] = sending.send(target, message)
    return out
