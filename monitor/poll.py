"""The story of one feed poll: fetch -> parse -> normalize -> identity -> compare -> diff -> store.

Stages never call each other and never touch the database; this module does, in this order
(:class:`Poller`; monitor.cycle decides which feeds are polled, when, and on how many cores):

1. The feed arrives claimed under a lease (so overlapping runs and several workers never poll it twice).
2. Fetch with the stored validators. A 304, or a body byte-identical to the last one, skips parsing.
3. Parse, normalise and key the items (pure, CPU-bound; see :func:`process_body`).
4. Match them to stored documents, decide what changed, diff the changed ones against their last version.
5. Record everything in one transaction (versions, changes, validators, outbox rows), which commits only
   while the lease is still ours; polls finishing together share the transaction (group commit), each
   under its own lease. A crash anywhere before the commit leaves the previous state intact, and the
   next run simply polls again.

Failures are data: a failing feed records its error and the run goes on with the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import logging.handlers
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec.structs

from monitor import compare, identity, jsonfeed, parse
from monitor.config import JITTER, FeedSettings, Settings
from monitor.diff import Version, diff_versions
from monitor.errors import FeedError, FetchError, LeaseLost, StorageDataError, StorageError
from monitor.fetch import MAX_RETRY_AFTER, Fetcher
from monitor.models import (
    Alert,
    ChangeKind,
    Decision,
    DocumentUpdate,
    FeedOutcome,
    FeedState,
    FetchResult,
    Item,
    KnownDocument,
    PageState,
    ParsedItem,
    PollRecord,
    PollStatus,
    RecordedChange,
    utcnow,
)
from monitor.normalize import normalize_item, stored_item
from monitor.urls import server_of

if TYPE_CHECKING:
    from monitor.pages import SourceEntries
from storage.store import Store

log = logging.getLogger("feedwatch.poll")

ERROR_BACKOFF = 60.0      # first retry after a failure; doubles per failure, capped at the interval
MAX_DOUBLINGS = 20        # 60 s * 2**20 is already years: the exponent stops there (no float overflow)
_NO_STORED: Mapping[bytes, bytes] = {}


def process_body(feed: FeedSettings, fetched: FetchResult, stored: Mapping[bytes, bytes] = _NO_STORED
                 ) -> list[Item]:
    """Parse, normalise and key a fetched body: the CPU-bound part of a poll, free of I/O.

    `stored` maps the raw hash of a document's latest version to its canonical text hash, for documents
    whose stored text is what normalising that raw item now gives (see :meth:`Poller._stored_texts`). An
    item with one of those raw forms is not normalised again: its text is left to be loaded if a new
    version needs it (a new title or link). So a poll costs normalisation only for what changed."""
    items = [_item(p, feed, fetched.url, stored) for p in parsed_items(feed, fetched)]
    return identity.assign_keys(items)


def _item(parsed: ParsedItem, feed: FeedSettings, base: str, stored: Mapping[bytes, bytes]) -> Item:
    if stored and (text_hash := stored.get(hashlib.sha256(parsed.raw).digest())) is not None:
        return stored_item(parsed, text_hash, base=base)
    return normalize_item(parsed, links=feed.links, base=base, ignore=feed.ignore)


Process = Callable[[FeedSettings, FetchResult, Mapping[bytes, bytes]], Awaitable[list[Item]]]


def parsed_items(feed: FeedSettings, fetched: FetchResult) -> list[ParsedItem]:
    """The entries of a fetched source body, by the source's kind and format: a page is one entry; a feed
    is read as JSON Feed, or as RSS/Atom (feedparser)."""
    if feed.kind == "page":
        from monitor import pages

        return [pages.page_item(feed, fetched)]
    parsed = jsonfeed.parse(feed.name, fetched) if jsonfeed.looks_like(fetched) else \
        parse.parse(feed.name, fetched, lenient=feed.lenient)
    for warning in parsed.warnings:
        log.info("feed=%s warning=%s", feed.name, json.dumps(warning))
    return list(parsed.items)


def next_due(feed: FeedSettings, now: datetime, *, errors: int = 0, retry_after: float | None = None) -> datetime:
    """When the feed is due again: its interval with jitter, or a back-off after errors. Counted from the end
    of the poll (`now`), so a poll that waited for a free connection does not shorten the next interval."""
    if errors:
        delay = min(feed.interval, ERROR_BACKOFF * 2.0 ** min(errors - 1, MAX_DOUBLINGS))
    else:
        delay = feed.interval * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return now + timedelta(seconds=delay)


QUIET_BATCH = 64      # quiet polls committed together
WRITE_BATCH = 32      # polls with something to record, committed together ...
WRITE_DELAY = 0.05    # ... when that many are waiting, or this many seconds after the first one


@dataclass
class Poller:
    """Polls claimed feeds; one per run (or per `watch` loop iteration)."""

    store: Store
    settings: Settings
    fetcher: Fetcher
    owner: str
    process: Process | None = None
    quiet: list[PollRecord] = field(default_factory=list)
    writes: list[tuple[PollRecord, asyncio.Future[list[RecordedChange]]]] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None

    async def poll(self, state: FeedState) -> FeedOutcome:
        feed = self.settings.feed(state.name)
        started = time.monotonic()
        now = utcnow()
        try:
            record = await self._poll(state, feed, now)
        except FeedError as err:
            record = self._failure(state, feed, now, err)
        except StorageDataError as exc:    # a statement refused for this feed's data
            record = self._failure(state, feed, now, _unstorable(feed, exc))
        except StorageError:
            raise   # the database, not the feed: the caller backs off (watch) or fails (run)
        except Exception as exc:   # a bug on one feed's data must not abort the run
            log.exception("feed=%s internal error", feed.name)
            record = self._failure(state, feed, now, FeedError(feed.name, f"internal error: {exc!r}"))
        if _quiet(record):
            self.quiet.append(record)       # committed in batches: nothing but the feed row changes
            if len(self.quiet) >= QUIET_BATCH:
                self.flush()
            return self._outcome(state, record, (), started)
        try:
            changes = await self._record(record)
        except LeaseLost:
            log.warning("feed=%s lease lost: another process polled it; this poll was discarded", feed.name)
            return FeedOutcome(feed.name, record.status, skipped=True)
        except StorageDataError as exc:    # e.g. a guid too big for an index: this feed's error, not the run's
            record = self._failure(state, feed, now, _unstorable(feed, exc))
            changes = self.store.record_poll(record)
        return self._outcome(state, record, tuple(changes), started)

    def flush(self) -> None:
        """Commit the polls waiting in the batches."""
        batch, self.quiet = self.quiet, []
        self.store.record_quiet_polls(batch)
        self._write_batch()

    async def _record(self, record: PollRecord) -> list[RecordedChange]:
        """Write a poll that records something, in one transaction with the others that finish within
        WRITE_DELAY (group commit); each keeps its own lease check. Returns when it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[RecordedChange]] = loop.create_future()
        self.writes.append((record, future))
        if len(self.writes) >= WRITE_BATCH:
            self._write_batch()
        elif self._timer is None:
            self._timer = loop.call_later(WRITE_DELAY, self._write_batch)
        return await future

    def _write_batch(self) -> None:
        """Commit the waiting polls and settle their futures. A poll whose task was cancelled meanwhile
        is written all the same (it happened). If one poll's data is refused, the batch is rolled back and
        each poll is written on its own, so the refusal stays that feed's error."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self.writes = self.writes, []
        if not batch:
            return
        try:
            results = self.store.record_polls([record for record, _ in batch])
        except StorageDataError:
            for record, future in batch:
                try:
                    changes = self.store.record_poll(record)
                except Exception as exc:    # LeaseLost, StorageDataError: the poll's own outcome
                    _settle(future, exc)
                else:
                    _settle(future, changes)
            return
        except Exception as exc:    # the database itself: every poll of the batch fails alike
            for _, future in batch:
                _settle(future, exc)
            return
        for (record, future), written in zip(batch, results, strict=True):
            _settle(future, LeaseLost(record.feed) if written is None else written)

    def _outcome(self, state: FeedState, record: PollRecord, changes: tuple[RecordedChange, ...],
                 started: float) -> FeedOutcome:
        elapsed = int((time.monotonic() - started) * 1000)
        outcome = FeedOutcome(record.feed, record.status, documents=self._documents(state, record),
                              error=record.error, changes=changes, elapsed_ms=elapsed,
                              page_errors=record.page_errors)
        _log_poll(outcome)
        return outcome

    async def _poll(self, state: FeedState, feed: FeedSettings, now: datetime) -> PollRecord:
        if feed.follow or feed.kind == "sitemap":
            return await self._poll_pages(state, feed, now)
        same_settings = state.settings_hash == feed.settings_hash
        fetched = await self.fetcher.fetch(feed.name, feed.url, state.validators if same_settings else None,
                                           timeout=feed.timeout, max_bytes=feed.max_bytes)
        body_hash = hashlib.sha256(fetched.body).digest() if not fetched.not_modified else state.body_hash
        if fetched.not_modified or (same_settings and body_hash == state.body_hash):
            status = PollStatus.NOT_MODIFIED if fetched.not_modified else PollStatus.UNCHANGED
            absent = self.store.known_documents(state.id, absent_only=True) if state.absent else []
            decisions = compare.absences(absent, removal_grace=feed.removal_grace)
            return self._success(state, feed, now, status, fetched, body_hash, decisions)
        known = self.store.known_documents(state.id) if state.stored else []    # a first poll knows nothing
        stored = self._stored_texts(feed, same_settings, known)
        items = await self._process(feed, fetched, stored)
        decisions = compare.compare(identity.match(items, known), known, removal_grace=feed.removal_grace)
        loaded = self._with_stored_texts(decisions, frozenset(stored.values()))
        if loaded is None:      # a stored text vanished since it was looked up: normalise everything afresh
            items = await self._process(feed, fetched, {})
            loaded = compare.compare(identity.match(items, known), known, removal_grace=feed.removal_grace)
        return self._success(state, feed, now, PollStatus.OK, fetched, body_hash, loaded,
                             documents=len(items))

    async def _poll_pages(self, state: FeedState, feed: FeedSettings, now: datetime) -> PollRecord:
        """A source whose documents are the pages it lists (follow, sitemap): the source's entries, then
        every page, each as cheaply as its server allows (monitor.pages), then compare as for items."""
        from monitor import pages

        states = self.store.page_states(state.id)
        # A page that has never given a text is not a document yet: the source's own list is read again
        # (no conditional request) until it has, so it is retried even while the source does not change.
        # A sitemap is always read whole (an index's sitemaps may change while the index does not); its
        # pages are what conditional requests save.
        fresh = state.settings_hash == feed.settings_hash and feed.kind != "sitemap" and not any(
            s.error and s.text_hash is None for s in states.values())
        fetched = await self.fetcher.fetch(feed.name, feed.url, state.validators if fresh else None,
                                           timeout=feed.timeout, max_bytes=feed.max_bytes)
        body_hash = hashlib.sha256(fetched.body).digest() if not fetched.not_modified else state.body_hash
        quiet = fetched.not_modified or (fresh and body_hash == state.body_hash)
        known = self.store.known_documents(state.id)
        source, held, body_hash = await self._page_entries(feed, fetched, body_hash, known, states, quiet=quiet)
        read = await pages.read_pages(feed, source.entries, states, self.fetcher,
                                      use_validators=state.settings_hash == feed.settings_hash)
        for host, (seconds, reason) in read.backoff.items():
            self.store.back_off_host(host, now + timedelta(seconds=min(seconds, MAX_RETRY_AFTER)), reason)
        docs = pages.documents(feed, read.reads, base=fetched.url)
        wanted = [e for e in source.entries if e.page]
        if wanted and len(docs.errors) == len(wanted):
            raise FetchError(feed.name, f"every page failed ({len(wanted)}); the first: {docs.errors[0]}")
        items = identity.assign_keys(docs.items)
        keep = [d for d in known if d.id not in held and d.link not in docs.held_links]
        decisions = compare.compare(identity.match(items, known), keep, removal_grace=feed.removal_grace)
        decisions = self._load_unchanged_texts(feed, decisions, docs.unloaded)
        unchanged = quiet or (feed.kind == "sitemap" and body_hash == state.body_hash)
        status = PollStatus.OK if docs.states or decisions or not unchanged else (
            PollStatus.NOT_MODIFIED if fetched.not_modified else PollStatus.UNCHANGED)
        record = self._success(state, feed, now, status, fetched, body_hash, decisions, documents=len(items))
        return msgspec.structs.replace(record, pages=docs.states, page_errors=docs.errors,
                                   page_urls=None if quiet else frozenset(e.page for e in wanted if e.page))

    async def _page_entries(self, feed: FeedSettings, fetched: FetchResult, body_hash: bytes | None,
                            known: Sequence[KnownDocument], states: dict[str, PageState], *,
                            quiet: bool) -> tuple[SourceEntries, set[int], bytes | None]:
        """The source's entries (and the ids of documents held as they are, and the body hash): from its
        body, or, when the source did not change, from its present documents."""
        from monitor import pages

        present = [d for d in known if not d.removed and not d.absent_polls]
        if quiet:       # the source did not change: its pages still may have
            held = {d.id for d in present if not d.link or pages.page_url(d.link, feed.url) != d.link}
            return pages.stored_entries(feed, [(d.guid, d.link, d.title) for d in present], states), held, body_hash
        if feed.kind == "sitemap":
            source, body_hash = await pages.sitemap_entries(feed, fetched, self.fetcher,
                                                            known=frozenset(d.link for d in present if d.link))
        else:
            source = pages.follow_entries(parsed_items(feed, fetched), fetched.url)
        for warning in source.warnings:
            log.warning("feed=%s warning=%s", feed.name, json.dumps(warning))
        return source, set(), body_hash

    def _load_unchanged_texts(self, feed: FeedSettings, decisions: list[Decision],
                              unloaded: frozenset[bytes]) -> list[Decision]:
        """Fill in the stored text of unchanged pages whose documents get a new version anyway (a new
        title, a return): the only texts a page source's poll ever loads."""
        loaded = self._with_stored_texts(decisions, unloaded)
        if loaded is None:
            raise FeedError(feed.name, "a stored page text went missing during the poll (pruned?); the next "
                            "poll fetches those pages again")
        return loaded

    def _with_stored_texts(self, decisions: list[Decision], unloaded: frozenset[bytes]) -> list[Decision] | None:
        """The decisions with the stored text filled in for each new version whose item's text was not
        loaded (its hash is in `unloaded`); None when one of those texts is no longer stored."""
        need = [d.item.text_hash for d in decisions if d.item is not None and d.new_version
                and d.item.text_hash in unloaded and not d.item.text]
        if not need:
            return decisions
        from monitor import pages  # page sources' module (lxml.html, cssselect): not for every feed poll

        texts = self.store.texts(need)
        if len(texts) < len(set(need)):
            return None
        return [msgspec.structs.replace(d, item=pages.with_text(d.item, texts)) if d.item else d for d in decisions]

    @staticmethod
    def _stored_texts(feed: FeedSettings, same_settings: bool, known: Sequence[KnownDocument]
                      ) -> dict[bytes, bytes]:
        """Raw item hash -> canonical text hash of the documents whose latest stored text is what
        normalising their raw item again would give: documents present in the last poll, which ran under
        the same settings (so each one's text was made, or confirmed, under them). Not with ``links:
        true``: link targets in the text are resolved against the feed's final URL, which may move."""
        if not same_settings or feed.links:
            return {}
        return {d.raw_hash: d.text_hash for d in known
                if d.raw_hash is not None and d.text_hash is not None and not d.removed and not d.absent_polls}

    async def _process(self, feed: FeedSettings, fetched: FetchResult, stored: Mapping[bytes, bytes]) -> list[Item]:
        if self.process is not None:
            return await self.process(feed, fetched, stored)
        return process_body(feed, fetched, stored)

    def _success(self, state: FeedState, feed: FeedSettings, now: datetime, status: PollStatus,
                 fetched: FetchResult, body_hash: bytes | None, decisions: Sequence[Decision],
                 documents: int | None = None) -> PollRecord:
        rebaseline = state.baseline_done and state.settings_hash not in (None, feed.settings_hash)
        first = not state.baseline_done
        alerts: tuple[Alert, ...] = ()
        if state.error_alerted:
            alerts = (Alert("recovery", feed.error_notify, json.dumps({"feed": feed.name})),)
        return PollRecord(
            feed_id=state.id, feed=feed.name, owner=self.owner, now=now, status=status,
            next_due_at=next_due(feed, utcnow()), validators=fetched.validators, body_hash=body_hash,
            settings_hash=feed.settings_hash, updates=tuple(self._with_diffs(decisions)),
            baseline=rebaseline or (first and not feed.notify_baseline), rebaseline=rebaseline,
            notify=feed.notify, alerts=alerts,
            error_alerted=False,
        )

    def _with_diffs(self, decisions: Sequence[Decision]) -> list[DocumentUpdate]:
        """Changed documents, and removed ones that came back different, are diffed against their last
        version."""
        diffed = (ChangeKind.CHANGED, ChangeKind.ADDED)
        changed = [d.document_id for d in decisions if d.kind in diffed and d.document_id]
        previous = self.store.latest_versions(changed) if changed else {}
        updates = []
        for d in decisions:
            diff = None
            if d.kind in diffed and d.item is not None and d.document_id in previous:
                old = Version(previous[d.document_id].title, previous[d.document_id].link,
                              previous[d.document_id].text or "")
                new = Version(d.item.title, d.item.link, d.item.text)
                diff = diff_versions(old, new) if d.kind is ChangeKind.CHANGED or old != new else None
            updates.append(DocumentUpdate(d, diff))
        return updates

    def _failure(self, state: FeedState, feed: FeedSettings, now: datetime, err: FeedError) -> PollRecord:
        errors = state.consecutive_errors + 1
        alerts: tuple[Alert, ...] = ()
        alerted = state.error_alerted
        if errors >= feed.max_errors and not alerted:
            payload = json.dumps({"feed": feed.name, "error": str(err), "count": errors})
            alerts, alerted = (Alert("error", feed.error_notify, payload),), True
        if err.retry_after is not None and err.http_status in (429, 503):
            host = server_of(feed.url)    # err.retry_after is already capped (fetch.MAX_RETRY_AFTER)
            self.store.back_off_host(host, now + timedelta(seconds=err.retry_after), str(err))
        return PollRecord(feed_id=state.id, feed=feed.name, owner=self.owner, now=now, status=PollStatus.ERROR,
                          next_due_at=next_due(feed, utcnow(), errors=errors, retry_after=err.retry_after),
                          error=str(err), alerts=alerts, error_alerted=alerted)

    @staticmethod
    def _documents(state: FeedState, record: PollRecord) -> int:
        if record.status is PollStatus.ERROR:
            return state.documents
        added = sum(1 for u in record.updates if u.decision.kind is ChangeKind.ADDED)
        removed = sum(1 for u in record.updates if u.decision.kind is ChangeKind.REMOVED)
        return state.documents + added - removed


def _settle(future: asyncio.Future[list[RecordedChange]], result: list[RecordedChange] | BaseException) -> None:
    if future.done():       # its poll was cancelled while it waited (the write happened anyway)
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _unstorable(feed: FeedSettings, exc: StorageDataError) -> FeedError:
    return FeedError(feed.name, f"the database refused this feed's data: {exc.reason}")


def _quiet(record: PollRecord) -> bool:
    """A poll that changes nothing but the feed's row (no documents, no alerts, no state to reset)."""
    return (record.status in (PollStatus.NOT_MODIFIED, PollStatus.UNCHANGED) and not record.updates
            and not record.alerts and not record.pages)


def _log_poll(o: FeedOutcome) -> None:
    level = logging.WARNING if o.status is PollStatus.ERROR else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields = f"feed={o.name} status={o.status.value} documents={o.documents} changes={o.change_count} ms={o.elapsed_ms}"
    if o.error:
        fields += f" error={json.dumps(o.error)}"
    if o.page_errors:
        fields += f" page_errors={len(o.page_errors)}"
    log.log(level, fields)
    for error in o.page_errors:
        log.warning("%s", error)

