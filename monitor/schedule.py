"""`watch`: the long-running scheduler. The database is the scheduler; this is its loop.

Each feed's ``next_due_at`` lives in the database (with jitter, set after every poll), so `run` from cron
and any number of `watch` processes share one schedule; leases make sure each due feed is polled by one
of them. The loop:

1. poll what is due (monitor.cycle), 2. deliver the outbox, 3. once an hour, apply the feeds' retention
policies (monitor.retention; only when a feed has one), 4. sleep until the next feed or delivery is due
(at most a minute, and at most half the systemd watchdog interval), waking at once on a signal.

SIGTERM/SIGINT: stop claiming, let the polls in flight finish (cancelled after a grace period; a cancelled
poll commits nothing and is simply due again), release leases, exit 0. SIGHUP re-reads the config; nothing
is reloaded behind the user's back. Under systemd (``Type=notify``) it reports READY, STATUS, WATCHDOG and
STOPPING on ``$NOTIFY_SOCKET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from monitor import config as config_mod
from monitor import retention
from monitor.config import Settings
from monitor.cycle import poll_due
from monitor.errors import ConfigError, FeedwatchError, StorageDataError, StorageUnavailable
from monitor.humanize import first_line, plural
from monitor.metrics import Metrics
from monitor.models import DeliveryCounts, FeedOutcome, PollStatus, utcnow
from monitor.urls import SECRETS
from storage.db import owner_id
from storage.store import Store

log = logging.getLogger("feedwatch.watch")

MAX_SLEEP = 60.0
STOP_GRACE = 10.0
DELIVER_DURING = 5.0    # a cycle still polling (a slow feed) delivers what it has recorded, this often
PRUNE_EVERY = 3600.0


def sd_notify(message: str) -> bool:
    """Send one sd_notify(3) datagram to $NOTIFY_SOCKET; a no-op outside systemd. (The protocol is one
    AF_UNIX datagram; '@' names an abstract socket.)"""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False


def watchdog_interval() -> float | None:
    """Half the systemd watchdog timeout, when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Watcher:
    def __init__(self, store: Store, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.owner = owner_id()
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()
        self.reload = False
        self.next_prune = 0.0           # monotonic; the first prune follows the first cycle

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)

    def _on_stop(self, sig: signal.Signals) -> None:
        if not self.stop.is_set():
            log.info("%s: finishing the polls in flight, then stopping", sig.name)
            sd_notify("STOPPING=1")
        self.stop.set()
        self.wake.set()

    def _on_reload(self) -> None:
        self.reload = True
        self.wake.set()

    async def run(self) -> int:
        self.install_signals()
        self.metrics.start()
        sd_notify("READY=1")
        log.info("watching %s (pid %d)", plural(len(self.settings.feeds), "feed"), os.getpid())
        failures = 0
        while not self.stop.is_set():
            if self.reload:
                self._reload()
            try:
                outcomes, early = await self._cycle()
                counts = _added(early, await asyncio.to_thread(self._deliver))
                await asyncio.to_thread(self._prune_if_due)
            except (StorageUnavailable, StorageDataError) as exc:   # the database went away (restart, failover,
                failures += 1               # disk full) or refused a write: back off, resume however long it takes
                delay = retry_delay(failures)
                log.error("database unavailable (%s); retrying in %.0f s", first_line(str(exc)) or type(exc).__name__,
                          delay)
                sd_notify(f"WATCHDOG=1\nSTATUS=database unavailable, retrying in {delay:.0f} s")
                await self._pause(delay)
                continue
            failures = 0
            self.metrics.record(outcomes, counts, self.store, self.settings)
            errors = sum(1 for o in outcomes if o.status is PollStatus.ERROR)
            if outcomes or counts.sent or counts.failed:
                log.info("cycle feeds=%d errors=%d changes=%d sent=%d failed=%d pending=%d", len(outcomes), errors,
                         sum(o.change_count for o in outcomes), counts.sent, counts.failed, counts.pending)
            sd_notify(f"WATCHDOG=1\nSTATUS=polled {len(outcomes)} feeds ({errors} errors), "
                      f"{counts.pending} deliveries pending")
            await self._sleep()
        log.info("stopped")
        return 0

    async def _cycle(self) -> tuple[list[FeedOutcome], DeliveryCounts]:
        """Poll what is due; and the deliveries made meanwhile: a cycle held up by a slow feed delivers
        what the others recorded every DELIVER_DURING seconds (one delivery at a time, never two at once:
        they share this process's leases)."""
        task = asyncio.create_task(poll_due(self.store, self.settings, owner=self.owner, stop=self.stop))
        stop_wait = asyncio.create_task(self.stop.wait())
        ping = watchdog_interval()
        early = DeliveryCounts()
        delivering: asyncio.Task[DeliveryCounts] | None = None
        failed: BaseException | None = None     # a dispatch's error, raised once the polls are done
        while True:   # a long cycle keeps the watchdog fed, from this loop (a hung loop stops feeding it)
            done, _ = await asyncio.wait({task, stop_wait}, timeout=min(ping or DELIVER_DURING, DELIVER_DURING),
                                         return_when=asyncio.FIRST_COMPLETED)
            if done:
                break
            sd_notify("WATCHDOG=1")
            if delivering is not None and delivering.done():
                early, failed = _collected(early, delivering, failed)
                delivering = None
            if delivering is None and failed is None:
                delivering = asyncio.create_task(asyncio.to_thread(self._deliver, digests=False))
        if delivering is not None:   # never two dispatches at once, nor one left behind
            await asyncio.wait({delivering})
            early, failed = _collected(early, delivering, failed)
        if task not in done:   # stopping: give the polls in flight a grace period, then cancel them
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if failed is not None:
                    raise failed from None
                return [], early
        stop_wait.cancel()
        outcomes = task.result()
        if failed is not None:
            raise failed
        return outcomes, early

    def _deliver(self, *, digests: bool = True) -> Any:
        """Deliver what is due; without `digests` (in the middle of a cycle) digest targets wait for its end."""
        from monitor.notify import deliver_pending

        return deliver_pending(self.store, self.settings, owner=self.owner, digest_due=False, digests=digests)

    def _prune_if_due(self) -> None:
        if time.monotonic() < self.next_prune or not retention.policies(self.settings):
            return
        self.next_prune = time.monotonic() + PRUNE_EVERY
        try:
            retention.prune(self.store, self.settings)
        except FeedwatchError as exc:
            log.error("prune failed (retrying in an hour): %s", exc)

    async def _sleep(self, delay: float = MAX_SLEEP) -> None:
        """Until the next feed or delivery is due (at most `delay`), or a signal."""
        if self.stop.is_set():
            return
        try:
            next_due = self.store.next_wakeup([f.name for f in self.settings.polled()])
        except StorageUnavailable:
            next_due = None
        if next_due is not None:
            delay = min(delay, max(0.0, (next_due - utcnow()).total_seconds()) + 0.05)
        await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """`delay` seconds (fed to the systemd watchdog meanwhile), or until a signal. After a database
        failure the loop waits here the whole back-off: what is due cannot be polled before the database
        is back, so a due time already past must not shorten the wait."""
        if self.stop.is_set():
            return
        deadline = time.monotonic() + delay
        self.wake.clear()
        while (left := deadline - time.monotonic()) > 0 and not self.wake.is_set():
            watchdog = watchdog_interval()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=min(left, watchdog) if watchdog else left)
            if watchdog is not None and not self.wake.is_set():
                sd_notify("WATCHDOG=1")

    def _reload(self) -> None:
        self.reload = False
        source = self.settings.source
        if source is None:
            return
        try:
            self.settings = config_mod.load(Path(source))
            for target in self.settings.targets.values():    # new URLs: masked in logs like the first ones
                for url in target.urls:
                    SECRETS.add_url(url)
            log.info("reloaded %s: %s", source, plural(len(self.settings.feeds), "feed"))
        except ConfigError as exc:
            log.error("reload failed, keeping the previous config: %s", exc)


def _collected(counts: DeliveryCounts, dispatch: asyncio.Task[DeliveryCounts],
               failed: BaseException | None) -> tuple[DeliveryCounts, BaseException | None]:
    """A finished dispatch's counts added to `counts`, or its error kept (the first one)."""
    error = dispatch.exception()
    if error is not None:
        return counts, failed or error
    return _added(counts, dispatch.result()), failed


def _added(before: DeliveryCounts, after: DeliveryCounts) -> DeliveryCounts:
    """Two dispatches of one cycle as one: their sends and failures summed, the outbox as the last left it."""
    return DeliveryCounts(sent=before.sent + after.sent, failed=before.failed + after.failed,
                          pending=after.pending, dead=after.dead)


def retry_delay(failures: int) -> float:
    """Seconds before the next try after `failures` database failures in a row: 2, 4, 8 … up to
    MAX_SLEEP, for ever (the exponent is capped, so no overflow however long the outage)."""
    return min(MAX_SLEEP, 2.0 ** min(failures, 16))




def watch(store: Store, settings: Settings, *, metrics_port: int | None = None) -> int:
    """Run the scheduler until SIGTERM/SIGINT; returns the exit code."""
    return asyncio.run(Watcher(store, settings, Metrics(metrics_port)).run())
