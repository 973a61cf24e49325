"""Retention, applied: each feed's ``retention`` policy from the config, pruned now (``feedwatch prune``)
or periodically (``watch``). What is kept and why is decided in storage.retention."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from monitor.config import Settings
from monitor.humanize import plural
from monitor.models import PruneReport, Retention
from storage.store import Store

log = logging.getLogger("feedwatch.prune")


def policies(settings: Settings) -> dict[str, Retention]:
    """Feed name -> policy, for the feeds whose policy removes anything (the default keeps everything)."""
    return {f.name: f.retention for f in settings.feeds if not f.retention.keeps_everything}


def prune(store: Store, settings: Settings, *, dry_run: bool = False,
          on_feed: Callable[[str], None] | None = None) -> PruneReport:
    report = store.prune(policies(settings), dry_run=dry_run, on_feed=on_feed)
    log.info("prune%s versions=%d changes=%d blobs=%d blob_bytes=%d file_before=%s file_after=%s",
             " (dry run)" if dry_run else "", report.versions, report.changes, report.blobs, report.blob_bytes,
             report.file_before, report.file_after)
    return report


def report_lines(report: PruneReport) -> list[str]:
    """`prune` for people: per feed what went, then the stored data and the file."""
    if not report.feeds:
        return ["nothing to prune: no feed has a retention policy (see 'retention' in the config)"]
    would = "would remove" if report.dry_run else "removed"
    lines = []
    for f in report.feeds:
        kept = f" ({f.kept_for_deliveries} more kept for pending deliveries)" if f.kept_for_deliveries else ""
        lines.append(f"{f.feed}: {would} {plural(f.versions, 'version')}{kept}, "
                     f"{plural(f.changes, 'change record')}")
    line = f"{would} {report.blobs} stored texts, items and diffs ({_size(report.blob_bytes)} compressed)"
    if report.dry_run and report.file_before is not None:
        line += f"; the database file is {_size(report.file_before)}"
    elif report.file_before is not None and report.file_after is not None:
        line += f"; database file {_size(report.file_before)} -> {_size(report.file_after)}"
    lines.append(line + (" (dry run: nothing was changed)" if report.dry_run else ""))
    return lines


def report_json(report: PruneReport) -> dict[str, Any]:
    """`prune --json`; ``database`` (file sizes in bytes) is null on PostgreSQL."""
    database = None
    if report.file_before is not None and report.file_after is not None:
        database = {"before": report.file_before, "after": report.file_after,
                    "freed": report.file_before - report.file_after}
    return {"dry_run": report.dry_run,
            "feeds": [{"name": f.feed, "versions": f.versions, "changes": f.changes,
                       "kept_for_deliveries": f.kept_for_deliveries} for f in report.feeds],
            "versions": report.versions, "changes": report.changes, "blobs": report.blobs,
            "blob_bytes": report.blob_bytes, "reencoded": report.reencoded, "database": database}


def _size(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):,.1f} MiB"
