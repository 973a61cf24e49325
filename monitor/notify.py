"""Deliver the outbox through Apprise: the only module that imports apprise.

- Each pending delivery is claimed under a lease, rendered with its target's format and templates, and
  sent to each of the target's URLs that has not yet accepted it. The outcome of every URL is recorded;
  a row is ``sent`` once every URL accepted it and is never sent again.
- Failures retry with exponential back-off; after ``max_attempts`` the row is ``dead`` and an alert goes
  to the feed's error targets (other than the failing one).
- ``digest`` targets get one message listing every pending change: per ``run``, or per
  ``digest_period`` in ``watch``.
- URLs hold secrets: only Apprise's privacy form (``json://user:****@host``) is ever printed, logged or
  stored, and failure details are scrubbed of every part of the URL that the privacy form hides.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import apprise
import jinja2
import jinja2.sandbox
from markupsafe import Markup

from monitor import render
from monitor.config import Settings, TargetSettings
from monitor.models import ChangeContext, DeliveryCounts
from monitor.urls import mask as mask_url
from monitor.urls import mask_tokens
from storage.db import owner_id
from storage.outbox import Outbox, PendingDelivery, UrlOutcome
from storage.store import Store, utcnow

log = logging.getLogger("feedwatch.notify")

MIN_LEASE = 30.0             # a delivery lease never shorter than this (one send can take seconds)
BACKOFF_BASE = 30.0          # first retry after 30 s, doubling per attempt ...
BACKOFF_MAX = 6 * 3600.0     # ... up to 6 h
HTML_MARKUP = 4               # an html diff may take this many characters per character of max_length
FORMATS = {"text": apprise.NotifyFormat.TEXT, "markdown": apprise.NotifyFormat.MARKDOWN,
           "html": apprise.NotifyFormat.HTML}
EXTENSIONS = {"text": "txt", "markdown": "md", "html": "html"}
TEMPLATE_DIRS = (Path(__file__).parent / "templates", Path(__file__).parent.parent / "config" / "templates")
DEFAULT_TITLES = {
    "change": "feedwatch: {{ title }} {{ 'was added' if kind == 'added' else 'was removed' if kind == 'removed' "
              "else 'reverted to version ' ~ revert_of if revert_of else 'changed' }}",
    "digest": "feedwatch: {{ count }} change{{ 's' if count != 1 else '' }} in {{ feeds | join(', ') }}",
    "error": "feedwatch: feed {{ feed }} is failing",
    "recovery": "feedwatch: feed {{ feed }} works again",
    "dead": "feedwatch: notifications to {{ target }} are failing",
    "test": "feedwatch: test message",
}


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    format: str


@dataclass
class _Tally:
    sent: int = 0
    failed: int = 0
    dead: list[PendingDelivery] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ URLs


def url_id(url: str) -> str:
    """A stable name for a URL that does not reveal it (the outbox records which URLs accepted a row)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def privacy_url(url: str) -> str:
    """The URL as Apprise prints it with secrets masked (our own masking if Apprise does not know it)."""
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:
        plugin = None
    if not plugin:
        return mask_url(url)
    masked: str = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
    # Apprise hides what each service calls secret; a token in a generic webhook path is not among them.
    return mask_tokens(masked.split("?", 1)[0])


def scrub(text: str, url: str, masked: str) -> str:
    """Remove from `text` every piece of `url` that its privacy form hides (passwords, tokens)."""
    split = re.compile(r"[/:@?&=#,.]+")
    visible = set(split.split(masked))
    for piece in sorted(set(split.split(url)) - visible, key=len, reverse=True):
        if len(piece) >= 4:
            text = text.replace(piece, "****")
    return text.replace(url, masked)


def check_targets(settings: Settings) -> list[str]:
    """Problems with the configured targets (URLs Apprise does not understand, missing config files)."""
    problems = []
    for name, target in settings.targets.items():
        for i, url in enumerate(target.urls):
            if not apprise.Apprise.instantiate(url, suppress_exceptions=True):
                problems.append(f"targets.{name}.urls[{i}]: Apprise does not understand {mask_url(url)}")
        if target.config_file and not target.config_file.is_file():
            problems.append(f"targets.{name}.config: no such file {target.config_file}")
    return problems


# ------------------------------------------------------------------------------------------------ sending


@contextmanager
def _apprise_log() -> Iterator[list[str]]:
    """Collect Apprise's warnings during one send (its only account of why a send failed)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def send(target: TargetSettings, message: Message, *, skip: frozenset[str] = frozenset()) -> list[UrlOutcome]:
    """Send `message` to every URL of `target` not in `skip`; one outcome per URL tried."""
    outcomes = []
    units: list[tuple[str, str, Any]] = [(url, privacy_url(url), url) for url in target.urls]
    if target.config_file:
        units.append((f"config:{target.config_file}", f"config file {target.config_file}", target.config_file))
    for key, masked, source in units:
        uid = url_id(key)
        if uid in skip:
            continue
        outcomes.append(_send_one(uid, masked, source, key, message))
    return outcomes


def _send_one(uid: str, masked: str, source: Any, key: str, message: Message) -> UrlOutcome:
    ap = apprise.Apprise()
    if isinstance(source, Path):
        config = apprise.AppriseConfig()
        added = config.add(str(source)) and ap.add(config)
    else:
        added = ap.add(source)
    if not added or len(ap) == 0:
        return UrlOutcome(uid, masked, False, "Apprise does not understand this URL")
    with _apprise_log() as logs:
        try:
            ok = bool(ap.notify(title=message.title, body=message.body, body_format=FORMATS[message.format]))
        except Exception as exc:
            ok, logs[:] = False, [f"{type(exc).__name__}: {exc}"]
    detail = None if ok else scrub("; ".join(logs[-2:]) or "failed", key, masked)
    return UrlOutcome(uid, masked, ok, detail)


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1)))


# ------------------------------------------------------------------------------------------------ rendering


class Renderer:
    """Messages from Jinja2 templates (sandboxed; autoescaped for html targets)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        loader = jinja2.FileSystemLoader([str(d) for d in TEMPLATE_DIRS if d.is_dir()])
        self.envs = {fmt: jinja2.sandbox.SandboxedEnvironment(
            loader=loader, autoescape=fmt == "html", trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=False) for fmt in FORMATS}
        for env in self.envs.values():
            env.filters["md"] = lambda v: render.md_escape(str(v)) if v is not None else ""
            env.filters["safe_url"] = safe_url

    def message(self, target: TargetSettings, kind: str, variables: dict[str, Any]) -> Message:
        env = self.envs[target.format]
        title_src = target.title or DEFAULT_TITLES[kind]
        title = self.envs["text"].from_string(title_src).render(**variables).strip()
        if target.body:
            body = env.from_string(target.body).render(**variables)
        else:
            template = "alert" if kind in ("error", "recovery", "dead", "test") else kind
            body = env.get_template(f"{template}.{EXTENSIONS[target.format]}.j2").render(**variables)
        return Message(title=" ".join(title.split())[:250], body=body.strip() + "\n", format=target.format)

    def change_variables(self, ctx: ChangeContext, target: TargetSettings, budget: int) -> dict[str, Any]:
        c = ctx.change
        diff_text: Any = ""
        if c.diff is not None:
            hint = self._more_hint(c)
            if target.format == "html":   # inline styles: the same text takes about twice the characters
                diff_text = Markup(render.render_html(c.diff, max_chars=HTML_MARKUP * budget, more_hint=hint))
            elif target.format == "markdown":
                diff_text = render.render_markdown(c.diff, max_length=budget, more_hint=hint)
            else:
                diff_text = render.render_text(c.diff, max_chars=budget, more_hint=hint)
        return {
            "feed": c.feed, "title": c.title, "url": c.link, "document": c.guid or c.link or str(c.document_id),
            "document_id": c.document_id, "version": c.version, "from_version": c.from_version,
            "kind": c.kind.value, "summary": c.summary, "sections": render.sections_of(c.diff),
            "diff": diff_text, "excerpt": _truncate(ctx.excerpt or "", budget, None) if ctx.excerpt else None,
            "revert_of": c.revert_of, "detected_at": c.detected_at.isoformat(timespec="seconds"),
            "report_url": self.settings.report_url,
        }

    def _more_hint(self, c: Any) -> str:
        if self.settings.report_url:
            return f"full report: {self.settings.report_url}"
        return f"see: feedwatch diff {c.document_id} --to {c.version}"


def safe_url(url: Any) -> str:
    """The URL if it is http(s) or mailto, else "" (feed links could be javascript:)."""
    text = str(url or "").strip()
    return text if re.match(r"^(https?://|mailto:)", text, re.I) else ""


def _truncate(text: str, limit: int, hint: str | None) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit("\n", 1)[0]
    return cut + "\n\u2026" + (f" ({hint})" if hint else "")


# ------------------------------------------------------------------------------------------------ dispatch


def deliver_pending(store: Store, settings: Settings, *, owner: str | None = None, now: datetime | None = None,
                    force: bool = False, digest_due: bool = True) -> DeliveryCounts:
    """Send what the outbox holds; returns counts for this dispatch (sent, failed) and the backlog."""
    outbox = store.outbox
    owner = owner or owner_id()
    now = now or utcnow()
    tally = _Tally()
    renderer = Renderer(settings)
    lease = max(MIN_LEASE, settings.polling.lease)
    last_id = 0
    try:
        while True:   # batches in id order until nothing is due; each row at most once per dispatch
            claimed = outbox.claim(owner, now=now, lease=lease, due_only=not force, after_id=last_id)
            if not claimed:
                break
            last_id = max(d.id for d in claimed)
            contexts = outbox.contexts([d.change_id for d in claimed if d.change_id is not None])
            by_target: dict[str, list[PendingDelivery]] = {}
            for d in claimed:
                by_target.setdefault(d.target, []).append(d)
            for name, deliveries in by_target.items():
                outbox.renew(owner, [d.id for d in deliveries], lease)
                _deliver_target(outbox, settings, renderer, owner, now, name, deliveries, contexts, tally,
                                digest_due)
            _alert_dead(outbox, settings, tally.dead, now)   # sent by the next batch
            tally.dead = []
    finally:
        outbox.release(owner)
    counts = outbox.counts()
    return DeliveryCounts(sent=tally.sent, failed=tally.failed, pending=counts["pending"], dead=counts["dead"])


def _deliver_target(outbox: Outbox, settings: Settings, renderer: Renderer, owner: str, now: datetime,
                    name: str, deliveries: list[PendingDelivery], contexts: dict[int, ChangeContext],
                    tally: _Tally, digest_due: bool) -> None:
    target = settings.targets.get(name)
    if target is None:
        for d in deliveries:
            _record(outbox, d, owner, now, [UrlOutcome("-", name, False, f"target '{name}' is not in the config")],
                    ["-"], 1, tally)
        return
    changes = [d for d in deliveries if d.kind == "change" and d.change_id in contexts]
    others = [d for d in deliveries if d not in changes]
    if target.mode == "digest" and changes:
        if digest_due or _period_over(outbox, target, now):
            message = _digest_message(renderer, target, [contexts[d.change_id] for d in changes
                                                         if d.change_id is not None])
            _send_group(outbox, target, message, changes, owner, now, tally)
        changes = []
    for d in changes:
        assert d.change_id is not None
        variables = renderer.change_variables(contexts[d.change_id], target, target.max_length)
        _send_group(outbox, target, renderer.message(target, "change", variables), [d], owner, now, tally)
    for d in others:
        variables = {"target": d.target, "feed": d.feed, "kind": d.kind, **d.payload}
        _send_group(outbox, target, renderer.message(target, d.kind, variables), [d], owner, now, tally)


def _period_over(outbox: Outbox, target: TargetSettings, now: datetime) -> bool:
    last = outbox.last_sent(target.name)
    return target.digest_period is None or last is None or (now - last).total_seconds() >= target.digest_period


def _digest_message(renderer: Renderer, target: TargetSettings, contexts: list[ChangeContext]) -> Message:
    budget = max(400, target.max_length // max(1, len(contexts)))
    items = [renderer.change_variables(ctx, target, budget) for ctx in contexts]
    feeds = sorted({i["feed"] for i in items})
    return renderer.message(target, "digest", {"changes": items, "count": len(items), "feeds": feeds,
                                               "report_url": renderer.settings.report_url})


def _send_group(outbox: Outbox, target: TargetSettings, message: Message, deliveries: Sequence[PendingDelivery],
                owner: str, now: datetime, tally: _Tally) -> None:
    """Send one message on behalf of one or more deliveries (a digest) and record it for each of them."""
    skip = frozenset.intersection(*(d.done_urls for d in deliveries))
    outcomes = send(target, message, skip=skip)
    keys = [url_id(u) for u in target.urls] + ([url_id(f"config:{target.config_file}")] if target.config_file else [])
    for d in deliveries:
        mine = [o for o in outcomes if o.url_id not in d.done_urls]
        _record(outbox, d, owner, now, mine, keys, target.max_attempts, tally)


def _record(outbox: Outbox, d: PendingDelivery, owner: str, now: datetime, outcomes: Sequence[UrlOutcome],
            keys: Sequence[str], max_attempts: int, tally: _Tally) -> None:
    status = outbox.record(d, owner, now=now, outcomes=outcomes, urls=keys, max_attempts=max_attempts,
                           backoff=backoff(d.attempts + 1))
    failures = [o for o in outcomes if not o.ok]
    if status == "sent":
        tally.sent += 1
    else:
        tally.failed += 1
        if status == "dead":
            tally.dead.append(d)
    level = logging.INFO if status == "sent" else logging.WARNING
    detail = "; ".join(f"{o.masked}: {o.detail}" for o in failures)
    log.log(level, "delivery=%d target=%s kind=%s status=%s attempts=%d%s", d.id, d.target, d.kind, status,
            d.attempts + 1, f" error={json.dumps(detail)}" if detail else "")


def _alert_dead(outbox: Outbox, settings: Settings, dead: list[PendingDelivery], now: datetime) -> int:
    """A delivery gave up: tell the feed's error targets (not the failing one; never about an alert)."""
    alerts = 0
    for d in dead:
        if d.kind != "change" or d.feed is None:
            continue
        try:
            targets = [t for t in settings.feed(d.feed).error_notify if t != d.target]
        except KeyError:
            continue
        payload = {"feed": d.feed, "target": d.target, "attempts": d.attempts + 1}
        outbox.add_alert(kind="dead", targets=targets, payload=payload, now=now, feed_id=outbox.feed_id(d.feed))
        alerts += len(targets)
    return alerts


def test_message(settings: Settings, names: Sequence[str]) -> dict[str, list[UrlOutcome]]:
    """Send a test message to each named target; per target, what each URL answered."""
    renderer = Renderer(settings)
    out = {}
    for name in names:
        target = settings.targets[name]
        message = renderer.message(target, "test", {"target": name, "feed": None, "kind": "test"})
        out[name] = send(target, message)
    return out
