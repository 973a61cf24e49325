"""The one exception tree of feedwatch.

    FeedwatchError                 base; str(e) is a complete one-line message for the user
    ├── UsageError                 bad command-line input (exit code 2)
    │   ├── HistoryFileError       a history file cannot be imported: "import: FILE:LINE: ..." (nothing imported)
    │   └── OpmlError              an OPML file cannot be imported: "opml: FILE:LINE: ..." (nothing imported)
    ├── ConfigError                bad config file: "config: FILE:LINE: KEY: what is wrong" (exit code 2)
    │   └── ConfigErrors           every problem of one file, one such line each
    ├── StorageError               the database cannot be used ("storage: ..."): corrupt, not a database (exit 2)
    │   ├── SchemaTooNewError      the database was written by a newer feedwatch
    │   ├── StorageUnavailable     cannot be reached or written now: server down, locked, disk full, read-only;
    │   │                          `watch` backs off and retries
    │   └── StorageDataError       one statement refused for its data (e.g. a NUL in PostgreSQL text): the
    │                              poll that wrote it fails as that feed's error; the database is fine
    └── FeedError                  one feed failed one poll; recorded per feed, never aborts a run
        ├── FetchError             network, HTTP status, size or time limits ("fetch: NAME: ...")
        └── ParseError             not a feed, malformed XML ("parse: NAME: ...")

    LeaseLost                      not a FeedwatchError: the store's word to the orchestrator that another
                                   process took over a feed; never shown to the user

Feed errors are data: the orchestrator records them on the feed and goes on with the other feeds.
Messages never contain secrets; callers pass masked URLs.
"""

from __future__ import annotations


class FeedwatchError(Exception):
    """Base class: the message is meant for the user, on one line."""


class UsageError(FeedwatchError):
    """The command line asks for something that cannot be done (exit code 2)."""


class HistoryFileError(UsageError):
    """A history file (``feedwatch import``) is malformed or conflicts with the database (exit code 2).

    The import runs in one transaction, so nothing of the file is stored when this is raised.
    """

    def __init__(self, source: str, line: int | None, message: str) -> None:
        super().__init__(f"import: {source}{f':{line}' if line is not None else ''}: {message}")
        self.source = source
        self.line = line


class OpmlError(UsageError):
    """An OPML file is unreadable, malformed or hostile (exit code 2); the config is left unchanged."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        super().__init__(f"opml: {source}{f':{line}' if line is not None else ''}: {message}")
        self.source = source
        self.line = line


class ConfigError(FeedwatchError):
    """The configuration file is invalid (exit code 2)."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        where = source or "<config>"
        if line is not None:
            where = f"{where}:{line}"
        parts = [f"config: {where}"]
        if key:
            parts.append(key)
        parts.append(message)
        super().__init__(": ".join(parts))
        self.message = f"{key}: {message}" if key else message     # without the file and line
        self.source = source
        self.line = line
        self.key = key


class ConfigErrors(ConfigError):
    """Every problem found in one config file, one line each, in the order of the file."""

    def __init__(self, errors: list[ConfigError]) -> None:
        FeedwatchError.__init__(self, "\n".join(str(e) for e in errors))
        self.errors = errors
        self.message = "; ".join(e.message for e in errors)
        self.source, self.line, self.key = errors[0].source, errors[0].line, errors[0].key


class StorageError(FeedwatchError):
    """The database cannot be opened, migrated or written."""


class SchemaTooNewError(StorageError):
    """The database schema is newer than this feedwatch knows."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or written right now (may pass: a restart, a lock, free space)."""


class StorageDataError(StorageError):
    """The database refused one statement because of the data in it; other statements still work.
    `reason` is the database's own words (e.g. "UNIQUE constraint failed: feeds.name")."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class LeaseLost(Exception):
    """Another process took over the feed while this one polled it; its work is discarded."""


class FeedError(FeedwatchError):
    """One poll of one feed failed; carries the stage and feed name in its message."""

    stage = "feed"

    def __init__(self, feed: str, message: str, *, retry_after: float | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(f"{self.stage}: {feed}: {message}")
        self.feed = feed
        self.detail = message
        self.retry_after = retry_after
        self.http_status = http_status

    def __reduce__(self) -> tuple[object, ...]:
        """Picklable (parse errors travel back from the worker processes that parse feeds)."""
        return (_rebuild, (type(self), self.feed, self.detail, self.retry_after, self.http_status))


def _rebuild(cls: type[FeedError], feed: str, detail: str, retry_after: float | None,
             http_status: int | None) -> FeedError:
    return cls(feed, detail, retry_after=retry_after, http_status=http_status)


class FetchError(FeedError):
    """The feed could not be fetched: network error, HTTP status, too large, too slow."""

    stage = "fetch"


class ParseError(FeedError):
    """The fetched body is not a usable RSS/Atom feed."""

    stage = "parse"
