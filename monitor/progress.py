"""Progress of long work, for a person at a terminal only (the one rich importer).

A bar is shown on stderr when stderr is a terminal and the command is neither quiet (``-q``) nor
printing JSON, and TERM is not "dumb"; everywhere else (cron, pipes, systemd, ``--json``) every function
here is a no-op and rich is not even imported. Log lines written while a bar is shown scroll above it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from monitor.humanize import plural

MIN_FEEDS = 10      # a run polling fewer feeds than this is over before a bar would help
MIN_CHANGES = 20    # the same for a report rendering fewer changes


def wanted(args: argparse.Namespace) -> bool:
    """Whether this command, as invoked, may show progress."""
    if getattr(args, "quiet", False) or getattr(args, "json", False):
        return False
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


class Bar:
    """One task's bar: `advance` it as work is done, with a short note of counters."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress = progress
        self._task = task
        self._lock = threading.Lock()

    def advance(self, n: int = 1, note: str | None = None) -> None:
        if self._progress is None:
            return
        fields = {"note": note} if note is not None else {}
        with self._lock:
            self._progress.update(self._task, advance=n, **fields)

    def total(self, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)


@contextmanager
def bar(show: bool, description: str, total: int | None, unit: str) -> Iterator[Bar]:
    """A bar on stderr for the duration of the block (a no-op Bar when `show` is false)."""
    if not show:
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn(unit), TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                        console=console, redirect_stdout=False, redirect_stderr=True)
    task = progress.add_task(description, total=total, note="")
    with progress, _logs_through(sys.stderr):
        yield Bar(progress, task)


@contextmanager
def _logs_through(stream: Any) -> Iterator[None]:
    """Point the log handlers at `stream` (rich's stderr proxy), so log lines print above the bar."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    saved = [h.setStream(stream) for h in handlers]
    try:
        yield
    finally:
        for h, old in zip(handlers, saved, strict=True):
            if old is not None:
                h.setStream(old)


@contextmanager
def run_cycle(show: bool, due: int) -> Iterator[Callable[[Any], None] | None]:
    """For `feedwatch run`: a callback for each feed outcome, counting feeds done, changes and errors."""
    if not show or due < MIN_FEEDS:
        yield None
        return
    counts = {"changes": 0, "errors": 0}
    lock = threading.Lock()
    with bar(True, "polling", due, "feeds") as b:
        def on_outcome(outcome: Any) -> None:
            with lock:   # outcomes arrive from the event loop and from the thread reading the other pollers
                counts["changes"] += outcome.change_count
                counts["errors"] += outcome.status.value == "error"
                note = f"{plural(counts['changes'], 'change')}, {plural(counts['errors'], 'error')}"
            b.advance(1, note)
        yield on_outcome


def rows_copied(b: Bar) -> Callable[[str, int], None]:
    """For `db copy`: storage.copy reports (table, rows of it so far); the bar counts all rows."""
    seen: dict[str, int] = {}

    def on_rows(table: str, copied: int) -> None:
        b.advance(copied - seen.get(table, 0), table)
        seen[table] = copied
    return on_rows


def history_records(b: Bar) -> Callable[[Any], None]:
    """For history `export` and `import`: the archive reports its running counts; the bar counts versions."""
    seen = [0]

    def on_counts(counts: Any) -> None:
        if counts.versions != seen[0]:
            b.advance(counts.versions - seen[0], f"{plural(counts.documents, 'document')}, "
                                                 f"{plural(counts.changes, 'change record')}")
            seen[0] = counts.versions
    return on_counts


class CountedHistory:
    """A report's history source that advances a bar for each change the report renders."""

    def __init__(self, history: Any, b: Bar) -> None:
        self._history = history
        self._bar = b

    def __getattr__(self, name: str) -> Any:
        return getattr(self._history, name)

    def changes(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for change in self._history.changes(*args, **kwargs):
            yield change
            self._bar.advance()
