"""One cycle over many feeds: which feed is polled when, by whom, on how many cores.

monitor.poll tells the story of one poll; this module runs many of them:

- :func:`poll_due`: claim due feeds under leases, in batches, and poll them as asyncio tasks (the fetches
  overlap; the CPU work runs between them), renewing the leases of the polls in flight. Several
  processes (workers, overlapping runs) share the feeds through those leases, never polling one twice.
- :func:`due_work`: how many due feeds are likely to read a whole body, which sizes the rest.
- :class:`ParsePool`: when many feeds are to be read in one process, parsing and normalising move to
  forked worker processes.
- :func:`run_cycle` (``feedwatch run``): one poller process per extra core, forked from this one, each
  running :func:`poll_due`; their outcomes and log records come back over pipes as they happen.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import logging.handlers
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monitor.config import FeedSettings, Settings
from monitor.fetch import Fetcher
from monitor.models import DueFeed, FeedOutcome, FetchResult, Item, PollStatus
from monitor.poll import Poller, Process, process_body
from storage.db import owner_id
from storage.store import Store

log = logging.getLogger("feedwatch.poll")


class ParsePool:
    """Parsing and normalising in worker processes, so a cold cycle uses every core.

    feedparser and the block walker are pure Python and hold the GIL; a cycle that parses many bodies
    (the first poll of many feeds) runs them in a process pool. Small cycles parse inline: starting the
    pool would cost more than it saves. Workers are forked from this process, so they start warm.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    async def __call__(self, feed: FeedSettings, fetched: FetchResult, stored: Mapping[bytes, bytes]) -> list[Item]:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("fork"))
        return await asyncio.get_running_loop().run_in_executor(self._pool, process_body, feed, fetched, stored)


POOL_THRESHOLD = 16   # feeds to read in a cycle from which parsing moves to other processes


def due_work(store: Store, settings: Settings, ids: Mapping[str, int],
             due: Sequence[DueFeed] | None = None) -> tuple[int, int]:
    """(due, to read): how many of these feeds are due, and how many of those are likely to read and
    normalise a whole body: first polls (unless the last attempt failed: it most likely fails again),
    polls under changed settings (a silent re-baseline), and feeds polled more than once whose last poll
    read a changed body (a change, or the re-baseline before it).

    The others most likely answer 304 or send the same bytes again, and such a poll costs next to no
    CPU: one process polls them as fast as two (bench/cycle.py's warm cycle, old and new code run in
    turns 15 times: 0.75 s over two pollers, 0.76 s in one; at N=5000, 2.80 and 2.66 s) with half the
    processes and database connections, and without forking a parse pool for a handful of changed
    bodies. A feed that changes after all is still parsed, in the process that polls it. `due`: the due
    feeds' states when the caller has just read them (Store.due_feed_states)."""
    current = {ids[f.name]: f.settings_hash for f in settings.feeds if f.name in ids}
    if due is None:
        due = store.due_feed_states(list(ids.values()))
    reading = sum(1 for f in due if (f.last_status != PollStatus.ERROR if not f.baseline_done else
                                     f.settings_hash != current.get(f.id)
                                     or (f.polls > 1 and f.last_status == PollStatus.OK)))
    return len(due), reading


async def poll_due(store: Store, settings: Settings, *, names: Sequence[str] | None = None,
                   force: bool = False, owner: str | None = None,
                   process: Process | None = None,
                   stop: asyncio.Event | None = None, parse_pool: bool | None = None,
                   ignore_backoff: bool | None = None, ids: dict[str, int] | None = None,
                   on_outcome: Callable[[FeedOutcome], None] | None = None,
                   list_baselines: bool = False, shared: bool = True) -> list[FeedOutcome]:
    """One cycle: poll every due feed (all selected feeds with `force`), each exactly once.

    `force` also polls the feeds of hosts that asked to be left alone (Retry-After): the user asked for
    now (`ignore_backoff` alone does that without making feeds due again, for run's poller processes).
    With `parse_pool`, parsing moves to a pool of worker processes; by default it does when many feeds are
    to be read (:func:`due_work`).
    `on_outcome` is called with each feed's outcome as it is recorded (progress display, poller processes),
    with its silent baseline additions listed if `list_baselines` (`run --json` shows them), else counted
    (FeedOutcome.counted); the outcomes returned always count them. `ids` are the selected feeds' ids when
    the caller has synced them already (Store.sync_feeds). Without `shared`, no other poller process of
    the same run shares these feeds, and feeds are claimed in larger batches."""
    ignore_backoff = force if ignore_backoff is None else ignore_backoff
    owner = owner or owner_id()
    if ids is None:
        ids = settings.sync(store, names)
    if force:
        store.make_due(list(ids.values()))
    workers = settings.polling.processes or os.cpu_count() or 1
    if parse_pool is None:
        parse_pool = process is None and workers > 1 and due_work(store, settings, ids)[1] >= POOL_THRESHOLD
    if parse_pool and process is None and workers > 1:
        with ParsePool(workers) as pool:
            return await _poll_cycle(store, settings, ids, owner, pool, stop, ignore_backoff, on_outcome,
                                     list_baselines, shared)
    return await _poll_cycle(store, settings, ids, owner, process, stop, ignore_backoff, on_outcome, list_baselines,
                             shared)


def run_cycle(store: Store, settings: Settings, ids: dict[str, int], *, force: bool = False,
              due: Sequence[DueFeed] | None = None, on_outcome: Callable[[FeedOutcome], None] | None = None,
              list_baselines: bool = False) -> list[FeedOutcome]:
    """`feedwatch run`: one cycle, spread over every core when many feeds are to be read.

    Each extra core gets a poller process forked from this one. The pollers share the work through the
    feeds' leases exactly as separate `run`/`watch` processes would (so no feed is polled twice), and
    each does everything for the feeds it claims: fetch, parse, normalise, compare, store. Their
    outcomes come back over a pipe, one by one as they are recorded (`on_outcome` sees every poller's,
    baselines listed or counted as in :func:`poll_due`; a first run over thousands of feeds records every
    document, and neither the pipes nor the outcomes returned carry them unless asked).
    With few feeds to read (:func:`due_work`), one process does it all. `due`: the due feeds' states, if
    the caller has read them (not with `force`, which makes every feed due).
    """
    if force:
        store.make_due(list(ids.values()))
        due = None
    count, reading = due_work(store, settings, ids, due)
    pollers = min(settings.polling.processes or os.cpu_count() or 1, reading // POOL_THRESHOLD)
    if pollers <= 1:
        log.debug("run due=%d to read=%d pollers=1", count, reading)
        return asyncio.run(poll_due(store, settings, ids=ids, ignore_backoff=force, on_outcome=on_outcome,
                                    list_baselines=list_baselines, parse_pool=reading >= POOL_THRESHOLD,
                                    shared=False))
    ctx = multiprocessing.get_context("fork")      # before any event loop or thread exists in this process
    children = []
    for _ in range(pollers - 1):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_poller_process, args=(store, settings, ids, send, force, list_baselines))
        child.start()
        send.close()
        children.append((child, receive))
    theirs: list[FeedOutcome] = []
    reader = threading.Thread(target=_receive, args=(children, theirs, on_outcome), daemon=True)
    reader.start()
    outcomes = asyncio.run(poll_due(store, settings, ids=ids, parse_pool=False, ignore_backoff=force,
                                    on_outcome=on_outcome, list_baselines=list_baselines))
    reader.join()
    log.debug("run due=%d to read=%d pollers=%d polled=%d here, %d by the others", count, reading, pollers,
              len(outcomes), len(theirs))
    return sorted(outcomes + theirs, key=lambda o: o.name)


class _ToParent:
    """A forked poller's pipe to its parent: outcomes as they are recorded, log records (the parent writes
    them, so lines from several processes never interleave, even with a progress bar on screen), then None."""

    def __init__(self, send: Any) -> None:
        self._send = send
        self._lock = threading.Lock()

    def put_nowait(self, message: Any) -> None:     # logging.handlers.QueueHandler's queue interface
        with self._lock:
            self._send.send(message)


def _poller_process(store: Store, settings: Settings, ids: dict[str, int], send: Any,
                    force: bool, list_baselines: bool) -> None:
    """A forked poller: its own database connections, the same poll cycle, its outcomes and logs to the
    parent."""
    store.forget_inherited_connections()     # the parent's pooled connections stay the parent's
    pipe = _ToParent(send)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__    # not a wrapper the parent may have installed
    logging.getLogger().handlers = [logging.handlers.QueueHandler(pipe)]   # type: ignore[arg-type]
    asyncio.run(poll_due(store, settings, ids=ids, parse_pool=False, ignore_backoff=force,
                         on_outcome=pipe.put_nowait, list_baselines=list_baselines))
    pipe.put_nowait(None)
    send.close()


def _receive(children: list[tuple[Any, Any]], into: list[FeedOutcome],
             on_outcome: Callable[[FeedOutcome], None] | None) -> None:
    """Collect the poller processes' outcomes (a thread of the parent, while it polls too)."""
    pending: dict[Any, Any] = {receive: child for child, receive in children}
    while pending:
        ready = multiprocessing.connection.wait(list(pending))
        for conn in [c for c in list(pending) if c in ready]:
            try:
                outcome = conn.recv()
            except EOFError:
                child = pending.pop(conn)
                child.join()
                log.error("a poller process ended early (exit code %s); its unfinished feeds are polled next time",
                          child.exitcode)
                continue
            if outcome is None:
                pending.pop(conn).join()
                continue
            if isinstance(outcome, logging.LogRecord):
                logging.getLogger(outcome.name).handle(outcome)
                continue
            into.append(outcome.counted())
            if on_outcome is not None:
                on_outcome(outcome)


async def _poll_cycle(store: Store, settings: Settings, ids: dict[str, int], owner: str,
                      process: Process | None,
                      stop: asyncio.Event | None, ignore_backoff: bool = False,
                      on_outcome: Callable[[FeedOutcome], None] | None = None,
                      list_baselines: bool = False, shared: bool = True) -> list[FeedOutcome]:
    # Feeds claimed and queued at most. Small batches balance poller processes sharing a cycle; a process
    # polling alone claims larger ones (each claim is a write transaction: 40 of them were 90 ms of a
    # 0.8 s warm cycle over 1,000 feeds).
    capacity = max(32, settings.polling.concurrency * (8 if shared else 32))
    outcomes: list[FeedOutcome] = []
    polled: set[int] = set()
    async with Fetcher(concurrency=settings.polling.concurrency, per_host=settings.polling.per_host,
                       user_agent=settings.polling.user_agent) as fetcher:
        poller = Poller(store, settings, fetcher, owner, process)
        tasks: dict[asyncio.Task[FeedOutcome], int] = {}
        finished: asyncio.Queue[asyncio.Task[FeedOutcome]] = asyncio.Queue()
        lease = settings.polling.lease
        renewed = time.monotonic()
        exhausted = False   # the last claim found fewer due feeds than it asked for
        try:
            while True:
                # Claim to refill the queue, but once a claim came back short only when the queue has run
                # dry: then one more claim takes what became free meanwhile (a dead poller's feeds).
                if not (stop and stop.is_set()) and (not tasks or (not exhausted and len(tasks) <= capacity // 2)):
                    limit = capacity - len(tasks)
                    claimed = store.claim_due_feeds(list(ids.values()), owner, limit=limit, lease=lease,
                                                    exclude=polled, ignore_backoff=ignore_backoff)
                    exhausted = len(claimed) < limit
                    polled.update(s.id for s in claimed)
                    for s in claimed:
                        task = asyncio.create_task(poller.poll(s))
                        task.add_done_callback(finished.put_nowait)
                        tasks[task] = s.id
                if not tasks:
                    break
                # One finished poll at a time from a queue: asyncio.wait() would scan every task on each call.
                with contextlib.suppress(TimeoutError):
                    done = await asyncio.wait_for(finished.get(), timeout=lease / 3)
                    while True:
                        del tasks[done]
                        if not (outcome := done.result()).skipped:   # a discarded poll: its new owner reports it
                            counted = outcome.counted()
                            outcomes.append(counted)
                            if on_outcome is not None:
                                on_outcome(outcome if list_baselines else counted)
                        if finished.empty():
                            break
                        done = finished.get_nowait()
                if time.monotonic() - renewed >= lease / 3:   # the polls in flight keep their leases
                    store.renew_leases(owner, list(tasks.values()), lease)
                    renewed = time.monotonic()
        finally:
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            poller.flush()
            store.release_feeds(owner)
    return sorted(outcomes, key=lambda o: o.name)
