"""The body rule: which element of a feed entry is its document text. Table-tested in tests/cases/body.yaml.

1. The standard full content: RSS ``content:encoded``, Atom ``content``, ``xhtml:body`` — the first one
   with text.
2. Else the standard summary: RSS ``description``, Atom ``summary``.
3. Else an extension's summary: ``itunes:summary``, ``media:description`` (also inside ``media:group``),
   ``dc:description``.
4. Elements the feed reader does not know — an unknown namespace, or an unknown element such as an
   ``<og>`` block — are never read, nor anything nested in them (an ``<og><description>`` teaser inside the
   item is not the item's description).

feedparser, left to itself, takes the *second* summary-like element it meets as the content and reads
elements nested in unknown ones as if they were the item's own; so this rule is applied to its input: a
SAX content-handler filter buffers each entry's events and replays them to feedparser with unknown
elements dropped, extension summaries dropped when a standard body has text, and full content first.
It applies to well-formed feeds (the strict parser); a feed read leniently gets feedparser's own choice.

The same filter bounds a feed's entries (``max_entries``): entries past the cap are never handed to
feedparser, so a 100,000-item feed costs the parse of its first entries plus expat's scan of the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Name = tuple[str | None, str]      # (namespace URI, local name), as SAX reports them
Event = tuple[str, tuple[Any, ...]]

FULL = frozenset({("content", "encoded"), ("", "content"), ("xhtml", "body"), ("", "body"), ("", "fullitem")})
SUMMARY = frozenset({("", "description"), ("", "summary")})
EXTENSION_SUMMARY = frozenset({("itunes", "summary"), ("media", "description"), ("dc", "description")})


class EntryFilter:
    """A SAX content handler in front of feedparser's that applies the body rule to every entry.

    `prefix_of` maps a namespace URI to the reader's prefix for it ('' for RSS/Atom core, None when the
    namespace is unknown); `knows(prefix, local)` says whether the reader handles that element at all.
    """

    def __init__(self, handler: Any, prefix_of: Callable[[str | None], str | None],
                 knows: Callable[[str, str], bool], *, max_entries: int | None = None) -> None:
        self._handler = handler
        self._prefix_of = prefix_of
        self._knows = knows
        self._depth = 0
        self._entry_depth: int | None = None
        self._events: list[Event] = []
        self._max_entries = max_entries
        self.entries = 0            # entries passed on to the reader
        self.dropped = 0            # entries past max_entries, never shown to the reader
        self._dropping = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)      # startDocument, setDocumentLocator, ... pass through

    def startPrefixMapping(self, prefix: str | None, uri: str) -> None:
        self._event("startPrefixMapping", prefix, uri)

    def endPrefixMapping(self, prefix: str | None) -> None:
        self._event("endPrefixMapping", prefix)

    def characters(self, content: str) -> None:
        self._event("characters", content)

    def processingInstruction(self, target: str, data: str) -> None:
        self._event("processingInstruction", target, data)

    def startElementNS(self, name: Name, qname: str | None, attrs: Any) -> None:
        self._depth += 1
        if self._entry_depth is None:
            if self._key(name) in (("", "item"), ("", "entry")):
                self._entry_depth = self._depth
                self._dropping = self._max_entries is not None and self.entries >= self._max_entries
                self.dropped += self._dropping
                self.entries += not self._dropping
                if self._dropping:
                    return
            self._handler.startElementNS(name, qname, attrs)
            return
        if not self._dropping:
            self._events.append(("startElementNS", (name, qname, attrs.copy())))

    def endDocument(self) -> None:
        """The reader's feed-level data learns how many entries were dropped (``feedwatch_dropped``)."""
        if self.dropped:
            self._handler.feeddata["feedwatch_dropped"] = self.dropped
        self._handler.endDocument()

    def endElementNS(self, name: Name, qname: str | None) -> None:
        if self._entry_depth is not None and self._depth == self._entry_depth:
            self._replay()
            self._entry_depth = None
            if self._dropping:
                self._dropping = False
                self._depth -= 1
                return
        if self._entry_depth is None:
            self._handler.endElementNS(name, qname)
        else:
            self._events.append(("endElementNS", (name, qname)))
        self._depth -= 1

    def _event(self, method: str, *args: Any) -> None:
        if self._entry_depth is None:
            getattr(self._handler, method)(*args)
        elif not self._dropping:
            self._events.append((method, args))

    def _key(self, name: Name) -> tuple[str, str] | None:
        """(prefix, local name) as the reader sees the element; None when it cannot know it."""
        prefix = self._prefix_of(name[0])
        local = name[1].lower()
        return None if prefix is None or not self._knows(prefix, local) else (prefix, local)

    def _replay(self) -> None:
        events, self._events = self._events, []
        if self._dropping:
            return
        groups = _children(events)
        keys = [self._key(name) if (name := _element(g)) is not None else ("", "#declarations") for g in groups]
        standard = any(k in FULL or k in SUMMARY for k, g in zip(keys, groups, strict=True) if _has_text(g))
        full = [g for k, g in zip(keys, groups, strict=True) if k in FULL]
        rest = [g for k, g in zip(keys, groups, strict=True)
                if k is not None and k not in FULL and not (standard and k in EXTENSION_SUMMARY)]
        for group in full + rest:
            for method, args in (self._without_extension_summaries(group) if standard else group):
                getattr(self._handler, method)(*args)

    def _without_extension_summaries(self, group: list[Event]) -> list[Event]:
        """Drop nested extension summaries too (``media:description`` inside ``media:group``)."""
        out: list[Event] = []
        skipping = 0
        for event in group:
            method, args = event
            if method == "startElementNS" and (skipping or self._key(args[0]) in EXTENSION_SUMMARY):
                skipping += 1
            elif method == "endElementNS" and skipping:
                skipping -= 1
            elif not skipping:
                out.append(event)
        return out


def _children(events: list[Event]) -> list[list[Event]]:
    """An entry's events cut into its direct children: each element with everything inside it and the
    namespace declarations around it. Text directly inside the entry is dropped (the reader ignores it)."""
    groups: list[list[Event]] = []
    current: list[Event] = []
    depth = 0
    for event in events:
        method = event[0]
        if depth == 0 and method in ("characters", "processingInstruction"):
            continue
        if depth == 0 and method == "endPrefixMapping" and groups:
            groups[-1].append(event)
            continue
        current.append(event)
        if method == "startElementNS":
            depth += 1
        elif method == "endElementNS":
            depth -= 1
            if depth == 0:
                groups.append(current)
                current = []
    if current:
        groups.append(current)
    return groups


def _element(group: list[Event]) -> Name | None:
    return next((args[0] for method, args in group if method == "startElementNS"), None)


def _has_text(group: list[Event]) -> bool:
    return any(m == "characters" and a[0].strip() for m, a in group) or sum(
        1 for m, _ in group if m == "startElementNS") > 1
