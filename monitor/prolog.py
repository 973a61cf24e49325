"""The prolog of an XML document: where its DOCTYPE is, and whether it declares entities. Pure, linear.

Shared by the feed parser (monitor.parse: the entity guard) and the page reader (monitor.select: an XHTML
page's internal DTD subset is cut before parsing), so both read the same real prolog the same way.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_WS = re.compile(rb"[ \t\r\n]*")
_DECL_TEXT = re.compile(rb"[^\"'\[>]*")        # inside <!DOCTYPE ...>, up to a quote, a subset or the end
_SUBSET_TEXT = re.compile(rb"[^\"'\]<]*")      # inside the internal subset, up to a quote, markup or its end


@dataclass(frozen=True, slots=True)
class Prolog:
    """Where the prolog's DOCTYPE is (``start == end`` when there is none) and where the prolog ends."""

    start: int
    end: int
    declares_entities: bool


def scan_prolog(body: bytes) -> Prolog:
    """Find the DOCTYPE of the real prolog: after the XML declaration, comments, processing instructions and
    whitespace, before the root element. Never inside CDATA, a comment or the document.

    Linear in the body: every construct is skipped with one ``find`` or one match from the current position
    (the regular expression this replaces backtracked for seconds on repeated ``<!DOCTYPE a [``). Entity
    declarations anywhere in the prolog count, comments included: feedparser's own DOCTYPE rewrite reads
    them there (feedparser.sanitizer.replace_doctype).
    """
    i = len(codecs.BOM_UTF8) if body.startswith(codecs.BOM_UTF8) else 0
    while True:
        i = _skip(_WS, body, i)
        if body.startswith(b"<?", i):
            i = _after(body, b"?>", i + 2)
        elif body.startswith(b"<!--", i):
            i = _after(body, b"-->", i + 4)
        elif body[i:i + 9].upper() == b"<!DOCTYPE":
            end = _doctype_end(body, i + 9)
            return Prolog(i, end, _ENTITY_DECL.search(body, 0, end) is not None)
        else:
            return Prolog(i, i, _ENTITY_DECL.search(body, 0, i) is not None)


def _skip(pattern: re.Pattern[bytes], body: bytes, i: int) -> int:
    match = pattern.match(body, i)
    return match.end() if match else i


def _after(body: bytes, token: bytes, i: int) -> int:
    """The position after the next `token` (the end of the body when it never comes)."""
    j = body.find(token, i)
    return len(body) if j < 0 else j + len(token)


def _doctype_end(body: bytes, i: int) -> int:
    """The position after the ``>`` that closes a DOCTYPE whose name starts at `i`."""
    n = len(body)
    while i < n:
        i = _skip(_DECL_TEXT, body, i)
        if i >= n:
            break
        char = body[i:i + 1]
        if char == b">":
            return i + 1
        if char in (b'"', b"'"):
            i = _after(body, char, i + 1)
        else:                                   # "[": the internal subset, up to its "]"
            i = _subset_end(body, i + 1)
    return n


def _subset_end(body: bytes, i: int) -> int:
    n = len(body)
    while i < n:
        i = _skip(_SUBSET_TEXT, body, i)
        if i >= n:
            break
        char = body[i:i + 1]
        if char == b"]":
            return i + 1
        if char in (b'"', b"'"):
            i = _after(body, char, i + 1)
        elif body.startswith(b"<!--", i):
            i = _after(body, b"-->", i + 4)
        else:
            i += 1                              # "<" of a declaration: its text is scanned on
    return n


def strip_doctype(body: bytes) -> bytes:
    """Remove the prolog's DOCTYPE (and its internal subset, where entity bombs live)."""
    prolog = scan_prolog(body)
    return body[:prolog.start] + body[prolog.end:] if prolog.end > prolog.start else body


def declares_entities(body: bytes) -> bool:
    """True when the prolog declares entities (what entity bombs need), however long the prolog is."""
    return scan_prolog(body).declares_entities
