"""Reading two canonical texts for a diff: the changed region, heading paths, renamed sections. Pure.

Identical lines of canonical text are identical blocks (:func:`monitor.canonical.render` is exact), so a
diff only needs the blocks of the region where two texts differ, with the heading path that region
inherits from the lines before it, and the new text's headings (to name sections in summaries).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.canonical import FENCE, open_heading, parse_canonical, render
from monitor.models import Block, BlockKind

REGION_MARGIN = 2                   # unchanged lines parsed on each side of the changed region


def changed_region(old: str, new: str) -> tuple[list[Block], list[Block], list[Block]]:
    """The blocks of the changed region of both texts, with full heading paths, and the new text's headings.

    Identical lines are identical blocks, so the lines both texts begin and end with need no parsing: a
    one-sentence change in a 2 MB document parses a handful of lines, not 40,000. The region is parsed in
    the state the common beginning leaves (its enclosing headings; inside a code fence or not).
    """
    la, lb = old.split("\n"), new.split("\n")
    n = min(len(la), len(lb))
    p = 0
    while p < n and la[p] == lb[p]:
        p += 1
    s = 0
    while s < n - p and la[-1 - s] == lb[-1 - s]:
        s += 1
    start, s = max(0, p - REGION_MARGIN), max(0, s - REGION_MARGIN)
    if la[: len(la) - s].count(FENCE) % 2 != lb[: len(lb) - s].count(FENCE) % 2:
        s = 0   # the change opens or closes a code block: every line after it reads differently
    stack = _enclosing(_headings(la[:start]))
    lead = [render([h]) for h in stack] + ([FENCE] if la[:start].count(FENCE) % 2 else [])
    a = parse_canonical("\n".join(lead + la[start: len(la) - s]))[len(stack):]
    b = parse_canonical("\n".join(lead + lb[start: len(lb) - s]))[len(stack):]
    return a, b, _headings(lb)


def _headings(lines: list[str]) -> list[Block]:
    """The heading blocks (with paths) of canonical text lines, read without parsing every line."""
    if FENCE not in lines:
        candidates = [line for line in lines if line.startswith("#")]
    else:
        candidates, in_code = [], False
        for line in lines:
            if line == FENCE:
                in_code = not in_code
            elif not in_code and line.startswith("#"):
                candidates.append(line)
    return [x for x in parse_canonical("\n".join(candidates)) if x.kind is BlockKind.HEADING]


def _enclosing(headings: list[Block]) -> list[Block]:
    """The headings still open after the last of `headings` (the last one's path, with levels)."""
    stack: list[tuple[int, Block]] = []
    for h in headings:
        open_heading(stack, h.level, h)
    return [h for _, h in stack]


def translated_paths(blocks: Sequence[Block], renamed: dict[int, str]) -> list[tuple[str, ...]]:
    """Each old block's heading path, with headings that were renamed (edited in place) under their new name."""
    current: list[str] | None = None
    paths = []
    for i, block in enumerate(blocks):
        heading = block.kind is BlockKind.HEADING
        if current is None:   # the headings enclosing the region are outside it, hence never renamed
            current = list(block.path[:-1] if heading else block.path)
        if heading:
            current = [*current[: len(block.path) - 1], renamed.get(i, block.text)]
        paths.append(tuple(current))
    return paths
