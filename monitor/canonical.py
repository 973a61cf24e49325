"""The canonical text grammar: blocks <-> one line per block. Pure; no HTML library is imported here.

Canonical text is what feedwatch stores, compares and diffs; monitor.normalize produces the blocks from
item HTML. This module only writes them as text and reads them back, exactly:
``render(parse_canonical(text)) == text`` for every canonical text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

from monitor.models import Block, BlockKind

FENCE = "```"                       # opens and closes preformatted lines in canonical text
_ESCAPE_STARTS = ("#", "- ", "|", FENCE, "\\")
_CODE_ESCAPES = ("\\", FENCE)
_CODE, _PARAGRAPH, _HEADING_KIND, _ITEM = BlockKind.CODE, BlockKind.PARAGRAPH, BlockKind.HEADING, BlockKind.ITEM
T = TypeVar("T")


def render(blocks: Iterable[Block]) -> str:
    """Canonical text: one block per line.

    ``# heading`` (level = number of #), ``- item`` indented two spaces per extra depth, paragraphs
    indented two spaces per list depth (a leading marker character is escaped with a backslash), table
    rows as ``| a | b |``, and preformatted lines between ``````` fences.

    One loop with the cases inline (code lines first, for their fences, then paragraphs, most blocks): a
    function call per block was half of rendering, which is a tenth of normalising an item.
    """
    lines: list[str] = []
    append = lines.append
    in_code = False
    for kind, text, level, _ in blocks:
        if kind is _CODE:
            if not in_code:
                append(FENCE)
                in_code = True
            append("\\" + text if text.startswith(_CODE_ESCAPES) else text)
            continue
        if in_code:
            append(FENCE)
            in_code = False
        if kind is _PARAGRAPH:
            if text.startswith(_ESCAPE_STARTS):
                text = "\\" + text
            append("  " * level + text if level else text)
        elif kind is _HEADING_KIND:
            append("#" * level + " " + text)
        elif kind is _ITEM:
            append("  " * (level - 1) + "- " + text)
        else:
            append("| " + text + " |")
    if in_code:
        append(FENCE)
    return "\n".join(lines)


_HEADING = re.compile(r"^(#{1,6}) (.*)$")


def open_heading(stack: list[tuple[int, T]], level: int, heading: T) -> None:
    """A heading of `level` opens: `stack` holds the headings enclosing what follows, outermost first, so
    every heading at that level or deeper closes before it is added."""
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, heading))


def parse_canonical(text: str) -> list[Block]:
    """Blocks (with heading paths) back from canonical text: the inverse of :func:`render`."""
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    path: tuple[str, ...] = ()      # rebuilt only when a heading opens (diffs parse 2 MB documents)
    in_code = False
    for line in text.split("\n"):
        if line == FENCE:
            in_code = not in_code
            continue
        if in_code:
            blocks.append(Block(BlockKind.CODE, line[1:] if line.startswith("\\") else line, 0, path))
            continue
        parsed = _parse_line(line)
        if parsed is None:
            continue
        kind, content, level = parsed
        if kind is BlockKind.HEADING:
            open_heading(headings, level, content)
            path = tuple(t for _, t in headings)
        blocks.append(Block(kind, content, level, path))
    return blocks


def _parse_line(line: str) -> tuple[BlockKind, str, int] | None:
    if line.startswith("#"):
        m = _HEADING.match(line)
        if m and m.group(2).strip():
            return BlockKind.HEADING, m.group(2).strip(), len(m.group(1))
    if line.startswith("| ") and line.endswith(" |") and len(line) >= 4:
        return (BlockKind.ROW, line[2:-2].strip(), 0) if line[2:-2].strip() else None
    stripped = line.lstrip(" ")
    indent = (len(line) - len(stripped)) // 2
    if stripped.startswith("- ") or stripped == "-":
        text = stripped[2:].strip()
        return (BlockKind.ITEM, text, indent + 1) if text else None
    text = stripped[1:] if stripped.startswith("\\") else stripped
    text = text.strip()
    return (BlockKind.PARAGRAPH, text, indent) if text else None
