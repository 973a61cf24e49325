"""`run --json` (DESIGN §3, a stable contract), written as the run goes.

A first run lists every document it recorded: 100,000 changes for 5,000 feeds of 20 items, which held
until the end cost more memory than the rest of the run. So each feed's changes are rendered as its
outcome arrives (:class:`ChangeSpool`, an anonymous temporary file as large as the printed list), and
:func:`write` streams the document at the end, feeds in name order: byte for byte what
``json.dump(document, sys.stdout, ensure_ascii=False, indent=2)`` wrote when the document was one dict.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

from monitor.models import DeliveryCounts, FeedOutcome, RecordedChange
from monitor.render import sections_of


class ChangeSpool:
    """Each feed's `run --json` change entries, rendered as its outcome arrives and read back in feed order."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()     # noqa: SIM115 (closed by __exit__)
        self._spans: list[tuple[str, int, int]] = []     # feed, offset and length of its rendered entries
        self._lock = threading.Lock()

    def __enter__(self) -> ChangeSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def add(self, outcome: FeedOutcome) -> None:
        """Render an outcome's changes (all listed: see monitor.cycle's `list_baselines`). Called from the
        event loop and from the thread reading the other pollers' outcomes."""
        if not outcome.changes:
            return
        data = ",".join(_element(change_entry(c)) for c in outcome.changes).encode("utf-8", "surrogatepass")
        with self._lock:
            offset = self._file.seek(0, os.SEEK_END)
            self._file.write(data)
            self._spans.append((outcome.name, offset, len(data)))

    def entries(self) -> Iterator[str]:
        """The feeds' rendered entries, feed by feed in name order (the order of the run's outcomes)."""
        with self._lock:
            spans = sorted(self._spans, key=lambda span: span[0])
        for _, offset, length in spans:
            self._file.seek(offset)
            yield self._file.read(length).decode("utf-8", "surrogatepass")


def write(out: TextIO, outcomes: Sequence[FeedOutcome], spool: ChangeSpool, deliveries: DeliveryCounts) -> None:
    """The document: the outcomes' feeds (in their order), the spooled changes, the run's deliveries."""
    out.write('{\n  "feeds": ')
    _write_list(out, (_element(feed_entry(o)) for o in outcomes))
    out.write(',\n  "changes": ')
    _write_list(out, spool.entries())
    counts = {"sent": deliveries.sent, "failed": deliveries.failed, "pending": deliveries.pending}
    out.write(',\n  "deliveries": ' + json.dumps(counts, indent=2).replace("\n", "\n  ") + "\n}\n")


def feed_entry(o: FeedOutcome) -> dict[str, object]:
    return {"name": o.name, "status": o.status.value, "error": o.error, "documents": o.documents,
            **({"page_errors": list(o.page_errors)} if o.page_errors else {})}


def change_entry(c: RecordedChange) -> dict[str, object]:
    entry: dict[str, object] = {
        "feed": c.feed, "document": c.guid or c.link or str(c.document_id), "title": c.title,
        "kind": c.kind.value, "version": c.version, "sections": sections_of(c.diff),
        "inserted": list(c.diff.inserted) if c.diff else [],
        "deleted": list(c.diff.deleted) if c.diff else [],
        "summary": c.summary,
    }
    if c.revert_of is not None:
        entry["revert_of"] = c.revert_of
    if c.returned:
        entry["returned"] = True
    if c.baseline:
        entry["baseline"] = True
    return entry


def _element(value: object) -> str:
    """`value` as an element of a list in the document's top-level object: on its own line, indented."""
    return "\n    " + json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n    ")


def _write_list(out: TextIO, elements: Iterable[str]) -> None:
    """A list of `_element`s (strings that may each hold several, comma-separated)."""
    opening = "["
    for element in elements:
        out.write(opening + element)
        opening = ","
    out.write("[]" if opening == "[" else "\n  ]")
