"""Typed, frozen values that cross stage boundaries.

Data flows one way: fetch -> FetchResult; parse -> ParsedFeed of ParsedItem; normalize -> Item (canonical
text + hashes); identity + compare -> Change decisions; the orchestrator stores them. Storage returns these
types too (never ORM rows), so every stage can be tested with plain values.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
from msgspec import field
from msgspec.structs import replace


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC: the one clock of stored and compared times."""
    return datetime.now(UTC)


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


class Op(enum.StrEnum):
    """What a diff op does with its text: kept, removed from the old version, or added in the new one."""

    EQUAL = "equal"
    DELETE = "delete"
    INSERT = "insert"


class PollStatus(enum.StrEnum):
    OK = "ok"                      # fetched and parsed; documents compared
    NOT_MODIFIED = "not_modified"  # HTTP 304 to our conditional request
    UNCHANGED = "unchanged"        # body byte-identical to the last one: not even parsed
    ERROR = "error"


class Validators(msgspec.Struct, frozen=True):
    """HTTP cache validators echoed back verbatim in the next conditional request (RFC 9110 §13.1)."""

    etag: str | None = None
    last_modified: str | None = None


class FetchResult(msgspec.Struct, frozen=True):
    """What one fetch produced. A 304 is a result (``not_modified``), not an exception."""

    url: str                        # final URL after redirects (the base for relative links)
    status: int                     # HTTP status, 200 for files
    body: bytes                     # empty when not modified
    content_type: str | None
    validators: Validators
    not_modified: bool = False
    elapsed_ms: int = 0


class ParsedItem(msgspec.Struct, frozen=True):
    """One feed entry, with library field names already translated."""

    guid: str | None
    link: str | None
    title: str
    content: str                    # the richest body the entry has (content, else summary)
    raw: bytes                      # the entry as JSON (every field we read), kept with each version
    title_is_html: bool = False     # Atom type="html"/"xhtml" titles carry markup
    content_is_html: bool = True    # False for type="text" bodies


class ParsedFeed(msgspec.Struct, frozen=True):
    title: str
    link: str | None
    format: str                     # feedparser's version string, e.g. "rss20", "atom10"
    items: tuple[ParsedItem, ...]
    warnings: tuple[str, ...] = ()


class BlockKind(enum.StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    ITEM = "item"                   # list item
    ROW = "row"                     # table row, cells joined with " | "
    CODE = "code"                   # one line of preformatted text


class Block(NamedTuple):
    """One block of canonical text: a heading, paragraph, list item, table row or code line.

    ``level`` is the heading level (1-6) for headings and the nesting depth for list items and for
    paragraphs inside list items (0 outside lists). ``path`` is the heading path the block sits under,
    including the block itself when it is a heading. A named tuple, not a frozen dataclass: normalisation
    makes one per paragraph of every item, and a frozen dataclass costs four times as much to construct.
    """

    kind: BlockKind
    text: str
    level: int = 0
    path: tuple[str, ...] = ()


class Item(msgspec.Struct, frozen=True):
    """A feed entry after normalisation: what is compared, stored and diffed."""

    key: str                        # identity within the feed (DESIGN §4)
    guid: str | None
    link: str | None
    title: str
    text: str                       # canonical text, one block per line
    raw: bytes
    text_hash: bytes                # sha256 of the canonical text
    state_hash: bytes               # sha256 of title, link and canonical text: equal means "no change"


class KnownDocument(NamedTuple):
    """A stored document as the compare stage needs it. A named tuple, not a dataclass: a poll of a feed
    of 10,000 items makes 10,000, and a frozen dataclass's __init__ cost 30 µs each of it."""

    id: int
    key: str
    guid: str | None
    link: str | None
    latest_version: int
    state_hash: bytes
    recent_states: tuple[tuple[int, bytes], ...]  # (version, state_hash), newest first, for reverts
    absent_polls: int = 0
    removed: bool = False
    title: str = ""                 # the latest version's title and canonical text hash: they confirm a
    text_hash: bytes | None = None  # pairing by link, or pair by content (monitor.identity)
    raw_hash: bytes | None = None   # the latest version's raw item hash: an item with the same raw form
                                    # needs no normalising (monitor.poll)


class Decision(msgspec.Struct, frozen=True):
    """What compare decided about one document in one poll."""

    kind: ChangeKind | None         # None: no reportable change (e.g. guid update, reappearance)
    item: Item | None               # the new state; None for removals and pure absence
    document_id: int | None         # None for new documents
    new_version: bool               # whether a version row is written
    revert_of: int | None = None
    absent_polls: int = 0           # the document's absence counter after this poll


class PageState(msgspec.Struct, frozen=True):
    """What feedwatch knows of one web page of a source (a followed link, a page, a sitemap URL): the
    validators for its next conditional request, the sitemap's ``lastmod`` when it was fetched, the hashes
    of its body and of its canonical text, its title, and its last error (None after a good fetch)."""

    url: str
    validators: Validators = Validators()
    lastmod: str | None = None
    body_hash: bytes | None = None
    text_hash: bytes | None = None
    title: str = ""
    error: str | None = None


class DueFeed(NamedTuple):
    """A due feed, with what its last poll says about the cost of the next one (monitor.cycle)."""

    id: int
    settings_hash: bytes | None     # the settings of its last poll (None: never polled)
    baseline_done: bool
    polls: int
    last_status: str | None


class FeedState(msgspec.Struct, frozen=True):
    """A feed row as the orchestrator needs it for one poll (claimed under a lease)."""

    id: int
    name: str
    url: str
    validators: Validators
    body_hash: bytes | None
    settings_hash: bytes | None
    baseline_done: bool
    consecutive_errors: int
    error_alerted: bool
    documents: int = 0              # documents currently in the feed (not removed)
    absent: int = 0                 # of those, how many were missing from the last poll (grace period)
    stored: int = 0                 # documents stored for the feed, removed ones included (as of the claim)


class DiffOp(msgspec.Struct, frozen=True):
    op: Op
    text: str


class SectionDiff(msgspec.Struct, frozen=True):
    path: tuple[str, ...]
    ops: tuple[DiffOp, ...]


class Move(msgspec.Struct, frozen=True):
    text: str
    source: tuple[str, ...]
    target: tuple[str, ...]
    edits: tuple[DiffOp, ...] = ()  # word ops when the block changed a little on the way


class DocumentDiff(msgspec.Struct, frozen=True):
    """A section-aware diff of two versions of one document (see monitor.diff)."""

    sections: tuple[SectionDiff, ...]
    moves: tuple[Move, ...] = ()
    title: tuple[str, str] | None = None      # (old, new) when the title changed
    link: tuple[str | None, str | None] | None = None
    inserted: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    summary: str = ""
    coarse: bool = False            # the word diff ran out of time: whole blocks are shown instead


class RecordedChange(msgspec.Struct, frozen=True):
    """A change as stored: what `run --json`, history, notifications and reports show."""

    id: int
    feed: str
    document_id: int
    guid: str | None
    link: str | None
    title: str
    kind: ChangeKind
    version: int
    from_version: int | None
    revert_of: int | None
    detected_at: datetime
    summary: str
    baseline: bool
    diff: DocumentDiff | None = None

    @property
    def returned(self) -> bool:
        """An ``added`` document that had been removed: it continues its history from `from_version`."""
        return self.kind is ChangeKind.ADDED and self.from_version is not None


class ChangeContext(msgspec.Struct, frozen=True):
    """Everything a message or report about one change needs: the change with its diff, and an excerpt
    (the opening lines of the text) when the change added the document."""

    change: RecordedChange
    excerpt: str | None = None


class FeedOutcome(msgspec.Struct, frozen=True):
    """The result of one poll of one feed, for logs and `run --json`."""

    name: str
    status: PollStatus
    documents: int = 0
    error: str | None = None
    changes: tuple[RecordedChange, ...] = ()
    elapsed_ms: int = 0
    skipped: bool = False           # another process held the feed
    page_errors: tuple[str, ...] = ()   # one line per page of the source that failed this poll
    baselines: int = 0              # silent baseline additions counted here instead of listed (see counted)

    @property
    def change_count(self) -> int:
        """Every change the poll recorded, listed or counted."""
        return len(self.changes) + self.baselines

    def counted(self) -> FeedOutcome:
        """This outcome with its silent baseline additions (a feed's first poll adds every document) counted
        instead of listed: what a summary needs, and a cycle over thousands of new feeds need not hold
        every document. Its other changes stay listed."""
        listed = tuple(c for c in self.changes if not (c.baseline and c.kind is ChangeKind.ADDED))
        if len(listed) == len(self.changes):
            return self
        return replace(self, changes=listed, baselines=self.baselines + len(self.changes) - len(listed))


class FeedHealth(msgspec.Struct, frozen=True):
    """A feed's health as the metrics report it (from the database, the same for every worker)."""

    name: str
    consecutive_errors: int
    last_ok: datetime            # the last successful poll, or when the feed was added if none was


class DeliveryCounts(msgspec.Struct, frozen=True):
    sent: int = 0
    failed: int = 0
    pending: int = 0
    dead: int = 0


class OutboxCounts(msgspec.Struct, frozen=True):
    """Deliveries in the outbox by status, for `status` and the metrics."""

    pending: int = 0
    failing: int = 0                # of the pending ones, those that failed at least once
    dead: int = 0
    sent: int = 0


class DeliveryProblem(msgspec.Struct, frozen=True):
    """A failing or dead delivery, as `status` lists it (its error holds masked URLs only)."""

    id: int
    target: str
    kind: str                       # change | error | recovery | dead | test
    status: str                     # pending (failing) | dead
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    title: str | None               # the change's title; None for alerts


class Message(msgspec.Struct, frozen=True):
    """A rendered notification, ready for monitor.sending."""

    title: str                      # plain text (inert): a subject line, or merged into the body
    body: str                       # in `format`
    format: str                     # text | markdown | html
    level: str = "info"             # info | success | warning | failure (the service's notification type)
    text: str | None = None         # an html body's plain-text alternative, rendered from the same diff
    delivery_id: str | None = None  # stable per outbox row: a repeat after a crash carries the same id


class RunReport(msgspec.Struct, frozen=True):
    feeds: tuple[FeedOutcome, ...]
    deliveries: DeliveryCounts = field(default_factory=DeliveryCounts)

    @property
    def change_count(self) -> int:
        return sum(f.change_count for f in self.feeds)

    @property
    def failed(self) -> bool:
        return any(f.status is PollStatus.ERROR for f in self.feeds) or self.deliveries.failed > 0


class Alert(msgspec.Struct, frozen=True):
    """An error/recovery/dead-delivery notice to send through the outbox."""

    kind: str                       # "error" | "recovery" | "dead"
    targets: tuple[str, ...]
    payload: str                    # JSON: feed, error, count...


class DocumentUpdate(msgspec.Struct, frozen=True):
    """One compare decision plus what the orchestrator computed for it (the diff)."""

    decision: Decision
    diff: DocumentDiff | None = None


class PollRecord(msgspec.Struct, frozen=True):
    """Everything one poll writes, in one transaction (DESIGN §5)."""

    feed_id: int
    feed: str
    owner: str
    now: datetime
    status: PollStatus
    next_due_at: datetime
    validators: Validators = Validators()
    body_hash: bytes | None = None
    settings_hash: bytes | None = None
    updates: tuple[DocumentUpdate, ...] = ()
    baseline: bool = False          # changes are recorded but not notified (first poll, re-baseline)
    rebaseline: bool = False        # the feed's normalisation settings changed since its last poll
    notify: tuple[str, ...] = ()    # targets that get one outbox row per reportable change
    alerts: tuple[Alert, ...] = ()
    error: str | None = None        # set for failed polls (status ERROR)
    error_alerted: bool = False     # the feed's error-alert state after this poll
    pages: tuple[PageState, ...] = ()   # page states to store (fetched, changed or failed this poll)
    page_errors: tuple[str, ...] = ()   # one line per page that failed (its document kept as it was)
    page_urls: frozenset[str] | None = None   # every page the source lists now (others' states are dropped)


class DocumentInfo(msgspec.Struct, frozen=True):
    id: int
    feed: str
    key: str
    guid: str | None
    link: str | None
    title: str
    latest_version: int
    first_seen_at: datetime
    removed: bool = False

    @property
    def ref(self) -> str:
        """How `run --json` and reports name the document: guid, else link, else the identity key."""
        return self.guid or self.link or self.key


class VersionInfo(msgspec.Struct, frozen=True):
    document_id: int
    number: int
    created_at: datetime
    title: str
    link: str | None
    kind: str | None = None         # the change that produced this version
    summary: str | None = None
    revert_of: int | None = None
    text: str | None = None         # filled when asked for (show, diff)


class FeedStatusInfo(msgspec.Struct, frozen=True):
    name: str
    url: str
    last_polled_at: datetime | None
    last_status: str | None
    last_error: str | None
    documents: int
    last_change_at: datetime | None
    next_due_at: datetime | None
    consecutive_errors: int
    polls: int
    leased_by: str | None = None
    page_errors: tuple[str, ...] = ()   # pages of the source whose last fetch failed, one line each


class HostBackoff(msgspec.Struct, frozen=True):
    """A host whose feeds are not polled before `until` (it answered 429/503 with Retry-After)."""

    host: str
    until: datetime
    reason: str | None


class ReportScope(msgspec.Struct, frozen=True):
    """Which changes a report covers: some feeds (all when empty), one document or all, and the period
    ``since <= detected_at < until`` (open-ended where None)."""

    feeds: tuple[str, ...] = ()
    document_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class DocumentActivity(msgspec.Struct, frozen=True):
    """One document in a report's overview: how many changes it had in the period, and when."""

    document: DocumentInfo
    changes: int
    first_at: datetime | None       # the first and last change in the period (None without changes)
    last_at: datetime | None


class Retention(msgspec.Struct, frozen=True):
    """A feed's retention policy (``retention:`` in the config): what ``prune`` may delete."""

    versions: int | None = None     # keep at most this many versions per document
    age: float | None = None        # ... and none older than this many seconds (the latest is always kept)
    keep_changes: bool = True       # keep the change records (summary + diff) of pruned versions

    @property
    def keeps_everything(self) -> bool:
        return self.versions is None and self.age is None


class FeedPruneStats(msgspec.Struct, frozen=True):
    """What `prune` removed from one feed."""

    feed: str
    versions: int                   # version rows deleted
    changes: int                    # change records deleted (retention keep_changes: false)
    kept_for_deliveries: int        # versions past the policy kept because a pending delivery needs them


class PruneReport(msgspec.Struct, frozen=True):
    feeds: tuple[FeedPruneStats, ...]
    blobs: int                      # blobs deleted
    blob_bytes: int                 # their stored (compressed) bytes
    reencoded: int                  # stored diffs recompressed on their own (their keyframe went)
    dry_run: bool
    file_before: int | None = None  # SQLite file size before and after (None on PostgreSQL)
    file_after: int | None = None

    @property
    def versions(self) -> int:
        return sum(f.versions for f in self.feeds)

    @property
    def changes(self) -> int:
        return sum(f.changes for f in self.feeds)


class PendingDelivery(msgspec.Struct, frozen=True):
    """An outbox row claimed for sending (storage.outbox), with the feed it is about."""

    id: int
    target: str
    kind: str                       # change | error | recovery | dead | test
    change_id: int | None
    feed: str | None
    payload: dict[str, Any]
    attempts: int
    done_urls: frozenset[str]
    created_at: datetime
    message: str | None = None      # the delivery id of the digest it was sent in, kept for every retry


class UrlOutcome(msgspec.Struct, frozen=True):
    """What one URL of a target did with one delivery attempt."""

    url_id: str                     # a hash of the URL (the URL itself holds secrets)
    masked: str                     # the URL in Apprise's privacy form
    ok: bool
    detail: str | None = None
