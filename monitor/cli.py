"""The command line: arguments, logging and exit codes (DESIGN §3). The commands are in monitor.commands.

Exit codes: 0 success; 1 some feed or delivery failed (the rest still ran); 2 usage or config error
(nothing ran). ``--json`` output goes to stdout, logs to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from monitor import __version__, completion
from monitor.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    cmd_check,
    cmd_completion,
    cmd_db,
    cmd_deliveries_retry,
    cmd_diff,
    cmd_export,
    cmd_history,
    cmd_import,
    cmd_init,
    cmd_notify_test,
    cmd_opml,
    cmd_preview,
    cmd_prune,
    cmd_report,
    cmd_run,
    cmd_show,
    cmd_status,
    cmd_watch,
)
from monitor.errors import ConfigError, FeedwatchError, StorageError, UsageError
from monitor.urls import SECRETS


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2 through UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="config file (default: $FEEDWATCH_CONFIG, ./feedwatch.yaml, "
                             "$XDG_CONFIG_HOME/feedwatch/config.yaml)")
    parser.add_argument("--database", metavar="URL", default=default,
                        help="database URL or SQLite file path (default: the config's 'database', else "
                             "$XDG_STATE_HOME/feedwatch/feedwatch.db)")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="log warnings and errors only (for cron)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log debug details")


def build_parser() -> _Parser:
    parser = _Parser(
        prog="feedwatch",
        description="Watch RSS/Atom feeds, keep a versioned history of every document in them, and say "
                    "precisely what changed.",
        epilog="Exit codes: 0 success, 1 some feed or delivery failed, 2 usage or config error. "
               "Start with: feedwatch --config config/kubernetes-community.yaml run",
    )
    parser.add_argument("--version", action="version", version=f"feedwatch {__version__}")
    _global_options(parser, suppress=False)
    common = _Parser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(name: str, func: Callable[[argparse.Namespace], int], help_: str, description: str) -> _Parser:
        p: _Parser = sub.add_parser(name, help=help_, description=description, parents=[common])
        p.set_defaults(func=func)
        return p

    p = command("run", cmd_run, "poll due feeds once, record changes, deliver notifications",
                "One cycle: poll every due feed (--force: every feed), record new versions and changes, "
                "deliver pending notifications, exit. The cron / systemd-timer entry point.")
    _feeds(p.add_argument("--feed", action="append", metavar="NAME", help="only this feed (repeatable)"))
    p.add_argument("--force", action="store_true", help="poll the selected feeds even if not due")
    p.add_argument("--no-notify", action="store_true", help="record changes but deliver nothing now")
    p.add_argument("--json", action="store_true", help="print the run's result as JSON on stdout")
    p.add_argument("--metrics-file", metavar="PATH",
                   help="also write Prometheus metrics to PATH (node-exporter textfile, replaced atomically)")

    p = command("watch", cmd_watch, "run as a long-lived scheduler (a daemon)",
                "Poll feeds as they fall due and deliver notifications between polls; stop cleanly on "
                "SIGTERM/SIGINT after the poll in flight.")
    p.add_argument("--metrics-port", type=_port, metavar="PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics, on every interface")

    p = command("check", cmd_check, "validate the config and the database; fetch and write nothing",
                "Validate the config file and say whether the database is reachable and its schema "
                "current. Nothing is fetched or written.")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = command("status", cmd_status, "per-feed state and the delivery backlog",
                "One row per feed: last poll, result, documents, last change, next due, consecutive "
                "errors; then pending, failing and dead deliveries.")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = command("history", cmd_history, "versions of documents with one-line change summaries",
                "List documents (of FEED, or all) and their versions with time and a one-line summary. "
                "The number after 'document' is the id that show, diff and report --document take.")
    _feeds(p.add_argument("feed", nargs="?", metavar="FEED", help="only documents of this feed"))
    p.add_argument("--document", metavar="DOC", help="only this document (id, guid or URL)")
    p.add_argument("--since", metavar="WHEN", help="only changes detected at or after WHEN (an ISO date or "
                   "date-time in local time unless it ends in Z or +HH:MM, or an age such as 30d or 12h)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = command("show", cmd_show, "print the canonical text of a version",
                "Print the canonical text of a document version (default: the latest).")
    p.add_argument("doc", metavar="DOC", help="document id, guid or URL")
    p.add_argument("--version", dest="number", type=_positive, metavar="N", help="version number")

    p = command("diff", cmd_diff, "diff two versions of a document",
                "Show what changed between two versions of a document (default: the last two), grouped by "
                "section, with moves.")
    p.add_argument("doc", metavar="DOC", help="document id, guid or URL")
    p.add_argument("--from", dest="from_", type=_positive, metavar="N", help="older version (default: M-1)")
    p.add_argument("--to", type=_positive, metavar="M", help="newer version (default: the latest)")
    p.add_argument("--format", choices=("text", "markdown", "html", "json"), default="text",
                   help="text: for a terminal, coloured on a TTY (default); markdown: as chat targets get it; "
                        "html: as e-mail gets it; json: sections and word operations for scripts")

    p = command("db", cmd_db, "database maintenance: copy a history to another database",
                "Database maintenance. 'db copy --to URL' copies the whole history (versions, changes, "
                "deliveries, fetch validators) into an empty database, e.g. from SQLite to PostgreSQL.")
    db_sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True, parser_class=_Parser)
    copy = db_sub.add_parser("copy", help="copy every table into an empty database", parents=[common],
                             description="Copy the database (from --database or the config) into the empty "
                                         "database at --to, ids preserved, in one transaction.")
    copy.add_argument("--to", required=True, metavar="URL", help="target database URL or SQLite file path")

    p = command("report", cmd_report, "a history report: HTML page, markdown or Atom feed of changes",
                "Write what changed in a period: one self-contained HTML page (default), markdown for an "
                "issue, wiki or chat, or an Atom feed with one entry per change. WHEN is an ISO date or "
                "date-time (local time unless it ends in Z or +HH:MM) or an age such as 30d or 12h.")
    _feeds(p.add_argument("--feed", action="append", metavar="NAME", help="only this feed (repeatable)"))
    p.add_argument("--document", metavar="DOC", help="only this document (id, guid or URL)")
    p.add_argument("--since", metavar="WHEN", help="changes detected at or after WHEN")
    p.add_argument("--until", metavar="WHEN", help="changes detected before WHEN (a date alone: up to its end)")
    p.add_argument("--format", choices=("html", "markdown", "atom"), default="html",
                   help="html: a self-contained page (default); markdown; atom: a feed with an entry per change")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write to FILE (replaced only once complete), not stdout")

    p = command("prune", cmd_prune, "apply the retention policies now",
                "Delete the versions each feed's retention policy no longer keeps (never a document's latest "
                "version, nor one a pending delivery needs) and the stored data nothing uses any more; say "
                "what was removed and how much space the database gave back.")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed; change nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = command("export", cmd_export, "write feeds' full history to a JSON Lines file",
                "Write the history of every feed (or the --feed ones): documents, versions with their text "
                "and raw item, and change records with their diffs, as a feedwatch-history JSON Lines file.")
    _feeds(p.add_argument("--feed", action="append", metavar="NAME", help="only this feed (repeatable)"))
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")

    p = command("import", cmd_import, "read a history file written by 'export'",
                "Store the history in FILE ('-' for stdin) in this database, all or nothing. A feed that is "
                "already here with the same history is left alone; one with a different history is refused.")
    p.add_argument("file", metavar="FILE", help="a feedwatch-history file, or - for stdin")

    p = command("deliveries", cmd_deliveries_retry, "the outbox: send dead deliveries again",
                "The notification outbox. A delivery is retried with back-off for about four days (see "
                "targets' max_attempts), then it is dead: 'status' lists it and an alert says so. 'deliveries "
                "retry' queues dead deliveries again, all or those of --target/--feed, with fresh attempts; "
                "the next 'run' (or 'watch') sends them.")
    dl_sub = p.add_subparsers(dest="deliveries_command", metavar="ACTION", required=True, parser_class=_Parser)
    retry = dl_sub.add_parser("retry", help="queue dead deliveries again", parents=[common],
                              description="Queue dead deliveries again (all, or only those to --target or about "
                                          "--feed), with fresh attempts; the next 'run' or 'watch' sends them.")
    _targets(retry.add_argument("--target", action="append", metavar="NAME",
                                help="only deliveries to this target (repeatable)"))
    _feeds(retry.add_argument("--feed", action="append", metavar="NAME",
                              help="only deliveries about this feed (repeatable)"))
    retry.add_argument("--json", action="store_true", help="print how many were queued as JSON")

    p = command("opml", cmd_opml, "move subscriptions in and out as OPML 2.0",
                "'opml export' writes the configured feeds as OPML 2.0 (folders from their 'group'); 'opml "
                "import FILE' adds the subscriptions of another reader's export to the config file in place, "
                "comments and layout kept, skipping URLs it already has.")
    opml_sub = p.add_subparsers(dest="opml_command", metavar="ACTION", required=True, parser_class=_Parser)
    o = opml_sub.add_parser("export", help="write the feeds as OPML", parents=[common],
                            description="Write the configured feeds as an OPML 2.0 subscription list.")
    o.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    o = opml_sub.add_parser("import", help="add an OPML file's feeds to the config", parents=[common],
                            description="Add the subscriptions in FILE that the config does not have yet "
                                        "(by URL) to its feeds list, names made from their titles.")
    o.add_argument("file", metavar="FILE", help="an OPML file")
    o.add_argument("--dry-run", action="store_true", help="print the YAML that would be added; change nothing")

    p = command("demo", cmd_demo, "see feedwatch work in seconds, offline, on real history",
                "Replay four real states of the Kubernetes community feed (a Code of Conduct amendment, "
                "mentoring programmes moved to 'Discontinued activities') into a throw-away directory, "
                "then show history, diffs and the HTML report. Nothing is fetched from the network.")
    p.add_argument("--dir", metavar="DIR", help="use this (new or empty) directory instead of a temporary one")

    p = command("init", cmd_init, "write a commented starter config where feedwatch finds it",
                "Write a commented starter config with FEED-URL (default: the Kubernetes community feed) to "
                "--config PATH, else $FEEDWATCH_CONFIG, else $XDG_CONFIG_HOME/feedwatch/config.yaml, where "
                "every feedwatch command finds it. An existing file is never overwritten.")
    p.add_argument("url", nargs="?", metavar="FEED-URL", help="the feed to watch: http(s) URL or a local file")

    p = command("notify-test", cmd_notify_test, "send a test message to a target",
                "Send a test message to TARGET (default: every target) and say what each URL answered. "
                "URLs are shown with secrets masked.")
    _targets(p.add_argument("target", nargs="?", metavar="TARGET", help="a target name from the config"))
    p = command("preview", cmd_preview, "print what feedwatch would store for a URL; write nothing",
                "Fetch a feed, a page or a sitemap and print the canonical text of every document feedwatch "
                "would store for it, with nothing written: the way to tune --select/--exclude before adding "
                "the source to the config. Example: feedwatch preview https://example.org/coc --kind page "
                "--select article --exclude .edit-this-page")
    p.add_argument("url", metavar="URL", help="the feed, page or sitemap (http(s), file:// or a path)")
    p.add_argument("--kind", choices=("feed", "page", "sitemap"), default="feed",
                   help="what URL is (default: feed)")
    p.add_argument("--follow", action="store_true", help="feed: each item's document is its linked page")
    p.add_argument("--select", action="append", metavar="CSS",
                   help="the part of a page that is the document (repeatable; 'xpath:' for XPath)")
    p.add_argument("--exclude", action="append", metavar="CSS", help="parts removed first (repeatable)")
    p.add_argument("--json", action="store_true", help="documents with their blocks and heading paths")

    p = command("completion", cmd_completion, "print the shell completion script for bash, zsh or fish",
                "Print the script that makes SHELL complete feedwatch's commands, options, --format values "
                "and the feed and target names of the config. Load it from your shell's startup file: "
                "bash: eval \"$(feedwatch completion bash)\"; zsh: eval \"$(feedwatch completion zsh)\"; "
                "fish: feedwatch completion fish | source")
    p.add_argument("shell", choices=completion.SHELLS, help="bash, zsh or fish")
    return parser


def _feeds(action: argparse.Action) -> None:
    action.completer = completion.feed_names  # type: ignore[attr-defined]


def _targets(action: argparse.Action) -> None:
    action.completer = completion.target_names  # type: ignore[attr-defined]


def _port(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"'{value}' is not a TCP port (1-65535)")
    return int(value)


def _positive(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) < 2**63:    # the database's integers
        raise argparse.ArgumentTypeError(f"'{value}' is not a version number (1, 2, ...)")
    return int(value)


def cmd_demo(args: argparse.Namespace) -> int:
    """`feedwatch demo`: here, not in monitor.commands, because it replays commands through this module's
    own `main`, as a user would type them (commands never import the command line back)."""
    from monitor import demo

    if args.config or args.database:
        raise UsageError("demo: --config and --database do not apply: the demo writes its own config and "
                         "database into --dir (or a temporary directory)")
    demo.replay(demo.workspace(args.dir), main, print)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if completion.active():
        completion.autocomplete(parser)     # prints the completions and exits
    try:
        args = parser.parse_args(argv)
        _setup_logging(args)
        code: int = args.func(args)
        return code
    except (UsageError, ConfigError) as exc:
        for line in str(exc).splitlines():     # a config's every problem, one line each
            _error(line if line.startswith("feedwatch") else f"feedwatch: {line}")
        return EXIT_USAGE
    except StorageError as exc:
        _error(f"feedwatch: {exc}")
        return EXIT_USAGE
    except FeedwatchError as exc:
        _error(f"feedwatch: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("feedwatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_OK


def _error(line: str) -> None:
    """One error line on stderr: secrets masked, control characters (from a config key, a file name, a
    server's words) shown, never obeyed by the terminal."""
    from monitor.render import inert

    print(inert(SECRETS.scrub(line)), file=sys.stderr)


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if getattr(args, "verbose", False) else (
        logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    fmt = "%(levelname)s %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:     # every library's records: secrets masked (monitor.urls),
        handler.addFilter(SECRETS)                   # then control characters made inert
        handler.addFilter(_inert_log)
    for noisy in ("aiohttp", "apprise", "alembic", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _inert_log(record: logging.LogRecord) -> bool:
    """Log lines can quote feed text (titles, errors): their control characters are shown, not sent."""
    message = record.getMessage()
    if any((ord(ch) < 32 and ch not in "\t\n") or 0x7F <= ord(ch) <= 0x9F for ch in message):
        from monitor.render import inert

        record.msg, record.args = inert(message), None
    return True


if __name__ == "__main__":
    sys.exit(main())
