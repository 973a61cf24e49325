"""The commands behind the command line (DESIGN §3): each reads its arguments, calls the library, prints.

Heavy libraries are imported inside the commands that need them, so `feedwatch run` with nothing due
starts fast. Exit codes: EXIT_OK, EXIT_FAILED (some feed or delivery failed), EXIT_USAGE (nothing ran).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import progress
from monitor.errors import ConfigError, StorageError, UsageError
from monitor.files import write_atomically
from monitor.humanize import iso_z, parse_when, plural, stamp

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.models import DeliveryCounts, DocumentInfo, FeedOutcome, RecordedChange, RunReport
    from monitor.runjson import ChangeSpool
    from storage.store import Store

log = logging.getLogger("feedwatch")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


# ------------------------------------------------------------------------------------------ config, store


def _settings(args: argparse.Namespace) -> Settings:
    """The configuration the command needs: ConfigError when there is none."""
    settings = _settings_if_any(args)
    if settings is None:
        from monitor import config

        raise ConfigError(f"no configuration file found: pass --config PATH, set $FEEDWATCH_CONFIG, or create "
                          f"./feedwatch.yaml or {config.user_config_path()} ($XDG_CONFIG_HOME/feedwatch/"
                          "config.yaml); 'feedwatch init [FEED-URL]' writes a commented starter config there")
    return settings


def _settings_if_any(args: argparse.Namespace) -> Settings | None:
    """The configuration, for commands that also work on a database alone (None when there is no file)."""
    from monitor import config

    path = config.find_config(args.config)
    return _mask_secrets_of(config.load(path)) if path is not None else None


def _mask_secrets_of(settings: Settings) -> Settings:
    """From here on, every log line and error masks the credentials in the config's URLs."""
    from monitor.urls import SECRETS

    for target in settings.targets.values():
        for url in target.urls:
            SECRETS.add_url(url)
    SECRETS.add_password(settings.database_url)
    return settings


def _database_url(args: argparse.Namespace, settings: Settings | None) -> str:
    from monitor.config import default_database_url
    from storage.db import looks_like_url, mask_text

    url = args.database
    if url:
        if "://" not in url and looks_like_url(url):
            raise UsageError(f"--database {mask_text(url)}: looks like a database URL but is not one (expected "
                             "e.g. postgresql+psycopg://user@host/db, or a plain SQLite file path)")
        return url if "://" in url else f"sqlite:///{Path(url).resolve()}"
    return settings.database_url if settings is not None else default_database_url()


def _open_store(args: argparse.Namespace, settings: Settings | None, *, readonly: bool = False) -> Store:
    from storage.db import redact
    from storage.store import Store

    url = _database_url(args, settings)
    store = Store.open(url, readonly=readonly)
    if readonly:
        path = store.sqlite_path
        if path is not None and not path.exists():
            store.close()
            raise UsageError(f"no database at {path} yet: run 'feedwatch run' first (or pass --database)")
        state = store.schema_state()
        if state == "empty":
            store.close()
            raise UsageError(f"the database {redact(url)} has no feedwatch schema yet: run 'feedwatch run' first")
        if state == "older":      # written by an older feedwatch: upgrade it, as every command does
            Store.open(url).close()
    return store


# ------------------------------------------------------------------------------------------ commands


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    names = _feed_names(settings, args.feed)
    if not settings.feeds:
        raise ConfigError("no feeds configured", source=str(settings.source))
    if not args.json:
        report, metrics_ok = _run(args, settings, names)
        _print_changes(report.feeds)
    else:
        from monitor import runjson

        with runjson.ChangeSpool() as spool:
            report, metrics_ok = _run(args, settings, names, spool)
            runjson.write(sys.stdout, report.feeds, spool, report.deliveries)
    return EXIT_FAILED if report.failed or not metrics_ok else EXIT_OK


def _run(args: argparse.Namespace, settings: Settings, names: list[str] | None,
         spool: ChangeSpool | None = None) -> tuple[RunReport, bool]:
    """Poll and deliver; the run's report and whether its metrics were written. `spool` gets every change."""
    from monitor.models import RunReport

    with _open_store(args, settings) as store:
        outcomes = _poll(store, settings, names, force=args.force, show_progress=progress.wanted(args),
                         spool=spool)
        deliveries = _deliver(store, settings, send=not args.no_notify, force=args.force)
        if not outcomes:
            _say_why_nothing_ran(store, [f.name for f in settings.polled(names)], force=args.force)
        metrics_ok = _write_metrics(Path(args.metrics_file), outcomes, deliveries, store, settings) \
            if args.metrics_file else True
    report = RunReport(tuple(outcomes), deliveries)
    _log_run(report)
    return report, metrics_ok


def _write_metrics(path: Path, outcomes: Sequence[FeedOutcome], deliveries: DeliveryCounts, store: Store,
                   settings: Settings) -> bool:
    """The run's metrics as a node-exporter textfile, counters continuing from the file's last values."""
    from monitor.metrics import Metrics

    metrics = Metrics.continuing(path)
    metrics.add(outcomes, deliveries)
    metrics.observe(store, settings)
    try:
        metrics.write_textfile(path)
    except OSError as exc:
        log.error("--metrics-file %s: cannot write: %s", path, exc.strerror or exc)
        return False
    return True


def _say_why_nothing_ran(store: Store, names: list[str], *, force: bool) -> None:
    from monitor.models import utcnow

    if not names:   # every selected feed is paused (each named one was warned about)
        log.info("nothing polled: the selected feeds are paused (paused: true in the config)")
        return
    if force:    # --force claims every selected feed, even on a backed-off host: only a lease stops it
        log.info("nothing polled: the selected feeds are being polled by another feedwatch right now")
        return
    feeds_due = store.next_wakeup(names, deliveries=False)      # after any host's back-off
    if feeds_due is not None and feeds_due <= utcnow():          # due, yet not claimed: someone else has them
        log.info("nothing polled: the due feeds are being polled by another feedwatch right now")
        return
    upcoming = store.next_wakeup(names)
    hosts = "".join(f"; host {h.host} asked to wait until {_when(h.until)} ({h.reason})"
                    for h in store.host_backoffs())
    log.info("nothing due%s%s (--force polls now)", f"; next at {_when(upcoming)}" if upcoming else "", hosts)


def _print_changes(outcomes: Sequence[FeedOutcome]) -> None:
    """One line per change; a feed's first poll (its silent baseline) is one line for the whole feed.
    The outcomes count their baselines (FeedOutcome.counted)."""
    for c in (c for o in outcomes for c in o.changes):
        print(_inert(f"{c.feed}: {c.kind.value} \u201c{c.title}\u201d v{c.version}: {c.summary}"))
    for o in outcomes:
        if o.baselines:
            print(f"{o.name}: first poll: {plural(o.baselines, 'document')} recorded (not notified)")


def _poll(store: Store, settings: Settings, names: list[str] | None, *, force: bool,
          show_progress: bool = False, spool: ChangeSpool | None = None) -> list[FeedOutcome]:
    """Poll what is due; the outcomes count their silent baseline additions (FeedOutcome.counted), and
    `spool` gets every change as each outcome arrives. With nothing due, the fetch/parse/diff machinery is
    not even imported."""
    ids = settings.sync(store, names)
    due = None if force else store.due_feed_states(list(ids.values()))    # --force: all of them, made due
    if not ids or due == []:
        return []
    from monitor.cycle import run_cycle

    with progress.run_cycle(show_progress, len(ids) if due is None else len(due)) as shown:
        on_outcome = spool.add if spool is not None else shown     # progress is never shown with --json
        return run_cycle(store, settings, ids, force=force, due=due, on_outcome=on_outcome,
                         list_baselines=spool is not None)


def _deliver(store: Store, settings: Settings, *, send: bool, force: bool = False) -> DeliveryCounts:
    from monitor.models import DeliveryCounts

    if not send or not store.outbox.due(force=force):
        counts = store.outbox.counts()
        return DeliveryCounts(pending=counts.pending, dead=counts.dead)
    from monitor import notify

    return notify.deliver_pending(store, settings, force=force)


def _feed_names(settings: Settings, wanted: Sequence[str] | None) -> list[str] | None:
    if not wanted:
        return None
    known = [f.name for f in settings.feeds]
    for name in wanted:
        if name not in known:
            raise UsageError(f"--feed {name}: no such feed in {settings.source} (feeds: {', '.join(known)})")
        if settings.feed(name).paused:
            log.warning("--feed %s: paused in %s (paused: true); not polled", name, settings.source)
    return list(wanted)


def _dead_warning(dead: dict[str, int]) -> str:
    total = sum(dead.values())
    where = ", ".join(f"{n} to {t}" for t, n in sorted(dead.items()))
    return (f"WARNING: {total} deliver{'ies were' if total != 1 else 'y was'} given up ({where}); "
            "send again with: feedwatch deliveries retry [--target NAME] [--feed NAME]")


def _log_run(report: RunReport) -> None:
    by_status: dict[str, int] = {}
    for o in report.feeds:
        by_status[o.status.value] = by_status.get(o.status.value, 0) + 1
    statuses = "".join(f" {k}={v}" for k, v in sorted(by_status.items()))
    d = report.deliveries
    log.info("run feeds=%d%s changes=%d sent=%d failed=%d pending=%d", len(report.feeds), statuses,
             report.change_count, d.sent, d.failed, d.pending)
    if d.dead:
        log.warning("%d deliver%s given up: see 'feedwatch status'; send again with 'feedwatch deliveries retry'",
                    d.dead, "ies were" if d.dead != 1 else "y was")


def cmd_watch(args: argparse.Namespace) -> int:
    from monitor.schedule import watch

    settings = _settings(args)
    with _open_store(args, settings) as store:
        return watch(store, settings, metrics_port=args.metrics_port)


def cmd_check(args: argparse.Namespace) -> int:
    """Every problem at once, each on its own line naming file, line and key; exit 2 if there is any.
    (A config that does not load stops here, with all of its own problems, through ConfigError.)"""
    from storage.db import redact

    try:
        settings = _settings(args)
    except ConfigError as exc:
        if not args.json:
            raise
        # A config that does not load: its problems in the same document (nothing else is known).
        _print_json({"config": exc.source, "feeds": None, "targets": None, "database": None, "schema": None,
                     "ok": False, "problems": str(exc).splitlines()})
        return EXIT_USAGE
    url = _database_url(args, settings)
    problems = [settings.located(p) for p in [*_config_problems(settings), *_check_targets(settings)]]
    problems += [str(e) for e in _check_templates(settings)]    # already "config: FILE:LINE: KEY: ..."
    schema, database_problems = _check_database(url)
    problems += database_problems
    result = {"config": str(settings.source), "feeds": len(settings.feeds), "targets": len(settings.targets),
              "database": redact(url), "schema": schema, "ok": not problems, "problems": problems}
    if args.json:
        _print_json(result)
    elif problems:
        for p in problems:
            print(f"feedwatch: {p}", file=sys.stderr)
    else:
        print(f"config {settings.source}: OK ({plural(len(settings.feeds), 'feed')}, "
              f"{plural(len(settings.targets), 'target')})")
        print(f"database {redact(url)}: schema {schema}")
    return EXIT_USAGE if problems else EXIT_OK


def _config_problems(settings: Settings) -> list[str]:
    """What makes a config that loads useless: no feeds at all (an empty file, or 'feeds: []')."""
    if not settings.feeds:
        return ["feeds: no feeds configured (the smallest config: feeds: [{name: blog, url: "
                "https://example.org/feed.xml}]; 'feedwatch init' writes a starter one)"]
    return []


def _check_database(url: str) -> tuple[str, list[str]]:
    """The schema's state and what keeps the database from being used; nothing is created or written."""
    from storage.store import Store

    problems: list[str] = []
    schema = "unknown"
    try:
        probe = Store.probe(url)
        if probe.sqlite_path is not None and not probe.exists:
            schema = "absent (created by the first run)"
            if not _writable_dir(probe.sqlite_path.parent):
                problems.append(f"database directory {probe.sqlite_path.parent} is not writable")
        else:
            schema = probe.schema
    except StorageError as exc:
        problems.append(str(exc))
    return schema, problems


def _writable_dir(path: Path) -> bool:
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def _check_targets(settings: Settings) -> list[str]:
    """Problems of the targets, each "KEY: what is wrong" (`check` adds file and line)."""
    if not settings.targets:
        return []
    from monitor import notify

    apprise_log = logging.getLogger("apprise")
    level = apprise_log.level
    apprise_log.setLevel(logging.CRITICAL + 1)      # its own ERROR line would repeat our problem line
    try:
        return notify.check_targets(settings)
    finally:
        apprise_log.setLevel(level)


def _check_templates(settings: Settings) -> list[ConfigError]:
    if not settings.targets:
        return []
    from monitor import notify

    return notify.check_templates(settings)


def cmd_status(args: argparse.Namespace) -> int:
    import msgspec.structs

    from monitor.urls import mask

    settings = _settings_if_any(args)
    with _open_store(args, settings, readonly=True) as store:
        names = [f.name for f in settings.feeds] if settings is not None else None
        paused = {f.name for f in settings.feeds if f.paused} if settings is not None else set()
        rows = store.feed_statuses(names)
        hosts = store.host_backoffs()
        deliveries = store.outbox.counts()
        problems = store.outbox.problems()
        dead = store.outbox.counts_by_target("dead")
    if args.json:
        _print_json({"feeds": [{
            "name": r.name, "url": mask(r.url), "last_poll": _iso(r.last_polled_at), "status": r.last_status,
            "error": r.last_error, "documents": r.documents, "last_change": _iso(r.last_change_at),
            "next_due": _iso(r.next_due_at), "consecutive_errors": r.consecutive_errors, "polls": r.polls,
            "polling_now": r.leased_by is not None, "page_errors": list(r.page_errors),
            "paused": r.name in paused} for r in rows],
            "hosts": [{"host": h.host, "backoff_until": _iso(h.until), "reason": h.reason} for h in hosts],
            "deliveries": {"pending": deliveries.pending, "failing": deliveries.failing,
                           "dead": deliveries.dead, "sent": deliveries.sent, "dead_by_target": dead,
                           "problems": [{**msgspec.structs.asdict(p), "next_attempt_at": _iso(p.next_attempt_at)}
                                        for p in problems]}})
        return EXIT_OK
    table = [("FEED", "LAST POLL", "RESULT", "DOCS", "LAST CHANGE", "NEXT DUE", "ERRORS")]
    for r in rows:
        table.append((r.name, _when(r.last_polled_at), r.last_status or "never", str(r.documents),
                      _when(r.last_change_at), "paused" if r.name in paused else _when(r.next_due_at),
                      str(r.consecutive_errors)))
    _print_table(table)
    for r in rows:
        if r.last_error:
            print(_inert(f"  {r.name}: {r.last_error}"))
        for error in r.page_errors:
            print(_inert(f"  {error}"))
    for h in hosts:
        print(_inert(f"host {h.host}: backed off until {_when(h.until)}, its feeds wait until then (run --force "
                     f"polls now): {h.reason}"))
    print(f"deliveries: {deliveries.pending} pending ({deliveries.failing} failing), "
          f"{deliveries.dead} dead, {deliveries.sent} sent")
    if deliveries.dead:
        print(_dead_warning(dead))
    for p in problems:
        what = f"\u201c{p.title}\u201d" if p.title else p.kind
        attempts = plural(p.attempts, "attempt")
        print(_inert(f"  #{p.id} {p.status} to {p.target} ({what}, {attempts}): {p.last_error}"))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    settings = _settings_if_any(args)
    since = _since(args.since) if args.since else None
    with _open_store(args, settings, readonly=True) as store:
        # A page of documents at a time: a few queries a page, and the output goes as it is made.
        if args.document:
            docs = [store.find_document(args.document)]
            if args.feed and docs[0].feed != args.feed:
                raise UsageError(f"document {args.document} is not in feed {args.feed}")
            pages: Iterator[list[DocumentInfo]] = iter([docs])
        else:
            pages = store.document_pages(args.feed, size=HISTORY_PAGE)
            first = next(pages, [])
            if args.feed and not first and args.feed not in [r.name for r in store.feed_statuses()]:
                raise UsageError(f"no feed named '{args.feed}' in the database")
            pages = itertools.chain([first], pages)
        entries = (e for docs in pages for e in _history_page(store, docs, since) if since is None or e[1])
        if args.json:
            _print_json_list("documents", ({
                "id": d.id, "feed": d.feed, "document": d.ref, "guid": d.guid, "link": d.link, "title": d.title,
                "removed": d.removed, "versions": [_history_json(c, stored) for c in changes]}
                for d, changes, stored in entries))
            return EXIT_OK
        shown = False
        for d, changes, stored in entries:
            shown = True
            flag = " (removed)" if d.removed else ""
            print(_inert(f"{d.feed}: document {d.id}: {d.title}{flag}\n  {d.ref}"))
            for c in changes:
                pruned = " (pruned: no longer stored)" if _pruned(c, stored) else ""
                print(_inert(f"  v{c.version:<3} {_when(c.detected_at)}  {c.kind.value:<8} {c.summary}{pruned}"))
    if not shown and since is not None:
        print(f"no changes since {_when(since)}")
    return EXIT_OK


HISTORY_PAGE = 500      # documents whose changes `history` reads together


def _history_page(store: Store, docs: list[DocumentInfo], since: datetime | None
                  ) -> list[tuple[DocumentInfo, list[RecordedChange], set[int]]]:
    """Each document with its changes (since `since`) and the numbers of its stored versions."""
    ids = [d.id for d in docs]
    changes, numbers = store.changes_of(ids), store.version_numbers_of(ids)
    return [(d, [c for c in changes.get(d.id, []) if since is None or c.detected_at >= since],
             set(numbers.get(d.id, ()))) for d in docs]


def _pruned(change: RecordedChange, stored: set[int]) -> bool:
    """The version a change record is about was removed by a retention policy (its record was kept)."""
    return change.kind.value != "removed" and change.version not in stored


def _history_json(c: RecordedChange, stored: set[int]) -> dict[str, object]:
    entry: dict[str, object] = {"version": c.version, "time": _iso(c.detected_at), "kind": c.kind.value,
                             "summary": c.summary}
    if c.revert_of is not None:
        entry["revert_of"] = c.revert_of
    if c.returned:
        entry["returned"] = True
    if _pruned(c, stored):
        entry["pruned"] = True
    return entry


def _since(value: str) -> datetime:
    from monitor.models import utcnow

    return parse_when(value, now=utcnow(), option="--since", command="history")


def cmd_show(args: argparse.Namespace) -> int:
    settings = _settings_if_any(args)
    with _open_store(args, settings, readonly=True) as store:
        doc = store.find_document(args.doc)
        version = store.version(doc.id, args.number or doc.latest_version)
    sys.stdout.write(_inert(version.text or "") + "\n")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from monitor import render
    from monitor.diff import Version, diff_versions

    settings = _settings_if_any(args)
    with _open_store(args, settings, readonly=True) as store:
        doc = store.find_document(args.doc)
        start, to = _diff_range(store, doc, args.from_, args.to)
        old, new = store.version(doc.id, start), store.version(doc.id, to)
    diff = diff_versions(Version(old.title, old.link, old.text or ""), Version(new.title, new.link, new.text or ""))
    heading = f"{doc.title} (v{start} {render.ARROW} v{to})"
    if args.format == "json":
        _print_json(render.render_json(diff, document=doc.ref, from_version=start, to_version=to))
    elif args.format == "markdown":
        print(render.render_markdown(diff, title=heading, max_length=1 << 30))
    elif args.format == "html":
        print(render.render_html(diff, title=heading))
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        sys.stdout.write(render.render_text(diff, color=color, title=heading))
    return EXIT_OK


def _diff_range(store: Store, doc: DocumentInfo, from_: int | None, to: int | None) -> tuple[int, int]:
    """The versions `diff` compares: --to (default: the latest) and --from (default: the stored version
    before it). Errors say which versions there are."""
    from storage.store import ranges

    stored = store.version_numbers(doc.id)
    for option, number in (("--to", to), ("--from", from_)):
        if number is not None and number not in stored:
            raise UsageError(f"diff {option} {number}: {store.no_version(doc.id, number)}")
    if len(stored) == 1 and stored[0] > 1:    # the older ones pruned (retention)
        raise UsageError(f"document {doc.id} has one version still stored (v{stored[0]}; v1-v{stored[0] - 1} were "
                         "pruned): nothing to compare it with")
    if len(stored) == 1:
        raise UsageError(f"document {doc.id} has one version so far (v{stored[0]}): nothing to compare yet")
    to = to or stored[-1]
    if from_ is None:
        earlier = [n for n in stored if n < to]
        if not earlier:
            raise UsageError(f"diff --to {to}: v{to} is the first stored version of document {doc.id}, nothing "
                             f"to compare it with (its versions: {ranges(stored)})")
        from_ = earlier[-1]
    if from_ == to:
        raise UsageError(f"diff: --from and --to are both version {to} (document {doc.id} has versions "
                         f"{ranges(stored)})")
    return from_, to


def cmd_db(args: argparse.Namespace) -> int:
    from storage.db import redact

    settings = _settings_if_any(args)
    target = args.to if "://" in args.to else f"sqlite:///{Path(args.to).resolve()}"
    if target == _database_url(args, settings):
        raise UsageError("db copy: --to is the source database")
    with _open_store(args, settings, readonly=True) as source, \
            progress.bar(progress.wanted(args), "copying", None, "rows") as bar:
        counts = source.copy_to(target, progress=progress.rows_copied(bar))
    summary = ", ".join(f"{n} {table}" for table, n in counts.items() if n)
    print(f"copied {redact(source.url)} to {redact(target)}: {summary or 'nothing (empty)'}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.models import ReportScope, utcnow
    from monitor.reports import render_report
    from monitor.reports.common import ReportMeta, check_scope

    now = utcnow()
    since = parse_when(args.since, now=now, option="--since") if args.since is not None else None
    until = parse_when(args.until, now=now, option="--until", end=True) if args.until is not None else None
    if since and until and since >= until:
        raise UsageError(f"report: --since {args.since} is not before --until {args.until}")
    settings = _settings_if_any(args)
    with _open_store(args, settings, readonly=True) as store:
        doc = store.find_document(args.document) if args.document else None
        scope = ReportScope(tuple(dict.fromkeys(args.feed or ())), doc.id if doc else None, since, until)
        meta = ReportMeta(scope, now, settings.report_url if settings else None, doc.title if doc else None)
        with store.history(scope) as history:
            check_scope(scope, history.feed_names(), doc)
            output = Path(args.output) if args.output else None
            total = sum(a.changes for a in history.activity()) if progress.wanted(args) else 0
            with progress.bar(total >= progress.MIN_CHANGES, "report", total, "changes") as bar:
                source = progress.CountedHistory(history, bar) if total >= progress.MIN_CHANGES else history
                _write_report(render_report(args.format, source, meta), output)
    if output is not None:
        log.info("report: wrote the %s to %s", _FORMAT_NAMES[args.format], output.resolve())
    return EXIT_OK


_FORMAT_NAMES = {"html": "HTML page", "markdown": "markdown report", "atom": "Atom feed"}


def _write_report(chunks: Iterable[str], path: Path | None) -> None:
    """The report to stdout as it is rendered, or to a file that appears only when complete."""
    if path is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    try:
        write_atomically(path, (chunk.encode("utf-8") for chunk in chunks))
    except OSError as exc:
        raise UsageError(f"report: --output {path}: {exc.strerror}") from None


def cmd_prune(args: argparse.Namespace) -> int:
    from monitor import retention

    settings = _settings(args)
    with _open_store(args, settings) as store, \
            progress.bar(progress.wanted(args), "pruning", len(retention.policies(settings)), "feeds") as bar:
        report = retention.prune(store, settings, dry_run=args.dry_run, on_feed=lambda name: bar.advance(1, name))
    if args.json:
        _print_json(retention.report_json(report))
    else:
        print("\n".join(retention.report_lines(report)))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings_if_any(args)
    with _open_store(args, settings, readonly=True) as store, \
            progress.bar(progress.wanted(args), "exporting", None, "versions") as bar:
        counts = store.export(args.output, args.feed, progress=progress.history_records(bar))
    log.info("exported %s: %s, %s, %s", plural(len(counts.feeds), "feed"), plural(counts.documents, "document"),
             plural(counts.versions, "version"), plural(counts.changes, "change record"))
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    settings = _settings_if_any(args)
    with _open_store(args, settings) as store, \
            progress.bar(progress.wanted(args), "importing", None, "versions") as bar:
        counts = store.import_history(args.file, progress=progress.history_records(bar))
    for name in counts.feeds:
        print(_inert(f"imported {name}"))
    for name in counts.unchanged:
        print(_inert(f"{name}: already here with the same history; left unchanged"))
    print(f"{plural(counts.documents, 'document')}, {plural(counts.versions, 'version')}, "
          f"{plural(counts.changes, 'change record')} imported")
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from monitor.starter import starter_path, write_starter

    if args.database:
        raise UsageError("init: --database does not apply: the starter config uses the default database; set "
                         "'database:' in it (or pass --database to the commands that use it)")
    path = write_starter(starter_path(args.config), args.url)
    print(f"wrote a starter config to {path}")
    shadow = Path("feedwatch.yaml")
    if not args.config and shadow.is_file() and shadow.resolve() != path:
        print(f"note: ./feedwatch.yaml in this directory is found first while you work here ({shadow.resolve()})")
    print("next: edit it (targets, interval), then 'feedwatch check' and 'feedwatch run'")
    return EXIT_OK


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    from monitor import notify

    settings = _settings_if_any(args)
    with _open_store(args, settings) as store:
        dead = store.outbox.counts_by_target("dead")
        for name in args.target or ():
            if name not in dead and (settings is None or name not in settings.targets):
                raise UsageError(f"deliveries retry: no target named '{name}' (dead deliveries: "
                                 f"{', '.join(sorted(dead)) or 'none'})")
        n = notify.requeue(store, targets=args.target or (), feeds=args.feed or ())
    if args.json:
        _print_json({"requeued": n})
    elif n:
        print(f"{plural(n, 'dead delivery', 'dead deliveries')} queued again: the next 'feedwatch run' (or 'watch') "
              "sends them")
    else:
        print("no dead deliveries" + (" matching --target/--feed" if args.target or args.feed else ""))
    return EXIT_OK


def cmd_opml(args: argparse.Namespace) -> int:
    from monitor import config, config_edit, opml
    from monitor.urls import mask

    if args.opml_command == "export":
        data, left_out = opml.export(_settings(args).feeds)
        for name in left_out:
            log.warning("opml export: %s: a local file, not an http(s) URL; left out", name)
        if args.output:
            _write_file(Path(args.output), data)
        else:
            sys.stdout.write(data.decode("utf-8"))
        return EXIT_OK
    path = config.find_config(args.config)
    if path is None:
        raise ConfigError("no configuration file to import into: pass --config PATH (created if missing)")
    existing = [(f.name, f.url) for f in config.load(path).feeds] if path.exists() else []
    added, skipped = opml.plan(opml.read(Path(args.file)), existing)
    entries = [opml.config_entry(name, sub) for name, sub in added]
    notes = [f"skipped {mask(sub.url)}: {reason}" for sub, reason in skipped]
    if args.dry_run:   # stdout stays YAML: what would be added, the rest as comments
        print(f"# would add {plural(len(entries), 'feed')} to {path}")
        sys.stdout.write(config_edit.render_entries(entries))
        print("\n".join(f"# {n}" for n in notes) if notes else "", end="\n" if notes else "")
        return EXIT_OK
    config_edit.append_to_file(path, entries)
    for name, sub in added:
        print(f"added {name}: {mask(sub.url)}")
    print("\n".join(notes) if notes else "", end="\n" if notes else "")
    print(f"{path}: {len(entries)} added, {len(skipped)} skipped")
    return EXIT_OK


def _write_file(path: Path, data: bytes) -> None:
    try:
        write_atomically(path, [data])
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_completion(args: argparse.Namespace) -> int:
    from monitor import completion

    sys.stdout.write(completion.script(args.shell))
    return EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:
    from monitor import notify

    settings = _settings(args)
    if args.target and args.target not in settings.targets:
        known = ", ".join(sorted(settings.targets)) or "none are defined"
        raise UsageError(f"notify-test: no target named '{args.target}' (targets: {known})")
    names = [args.target] if args.target else sorted(settings.targets)
    if not names:
        raise UsageError(f"notify-test: {settings.source} defines no targets")
    failed = False
    for name, outcomes in notify.test_message(settings, names).items():
        for o in outcomes:
            failed |= not o.ok
            print(f"{name}: {o.masked}: {'OK' if o.ok else 'FAILED: ' + (o.detail or 'no answer')}")
    return EXIT_FAILED if failed else EXIT_OK


# ------------------------------------------------------------------------------------------ printing


def cmd_preview(args: argparse.Namespace) -> int:
    from monitor import preview
    from monitor.canonical import parse_canonical

    feed = preview.source(args.url, kind=args.kind, follow=args.follow, select=args.select or (),
                          exclude=args.exclude or ())
    result = preview.preview(feed)
    if args.json:
        _print_json({"documents": [{
            "id": i.key.split(":", 1)[1] if i.key.startswith(("guid:", "link:")) else i.key,
            "title": i.title, "link": i.link,
            "blocks": [{"kind": b.kind.value, "text": b.text, "path": list(b.path)}
                       for b in parse_canonical(i.text)]} for i in result.items],
            "errors": list(result.errors), "warnings": list(result.warnings)})
    else:
        for n, item in enumerate(result.items):
            print(_inert(("\n" if n else "") + f"== {item.title or '(no title)'}" +
                         (f" <{item.link}>" if item.link else "")))
            print(_inert(item.text))
    for line in (*result.warnings, *result.errors):
        print(_inert(f"feedwatch: {line}"), file=sys.stderr)
    return EXIT_FAILED if result.errors else EXIT_OK


def _inert(text: str) -> str:
    """Feed text for the terminal: its control characters shown, never executed (monitor.render.inert)."""
    from monitor.render import inert

    return inert(text)


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _print_json_list(key: str, items: Iterable[object]) -> None:
    """``_print_json({key: list(items)})``, byte for byte, written item by item as they come."""
    out = sys.stdout
    out.write(f'{{\n  "{key}": [')
    separator = "\n    "
    for item in items:
        out.write(separator + json.dumps(item, ensure_ascii=False, indent=2).replace("\n", "\n    "))
        separator = ",\n    "
    out.write("]\n}\n" if separator == "\n    " else "\n  ]\n}\n")


def _iso(t: datetime | None) -> str | None:
    return iso_z(t) if t else None


def _when(t: datetime | None) -> str:
    return stamp(t)


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(_inert("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()))

