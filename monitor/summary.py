"""One-line summaries of a document diff, and the grouping of moves that summaries and renderers share.

A summary is what `history`, notification titles and `run --json` show, so it must be short (at most
:data:`MAX_LENGTH` characters), human and name the sections that changed::

    Our Standards: 1 list item changed, 7 words added
    Reporting: “occuring” → “occurring”
    Discontinued activities: new section; “Specific topics and activities” and “The 1:1 Hour” moved to
        Discontinued activities
    9 sections changed: CNCF Community Code of Conduct v1.1, Contributor Code of Conduct, Scope (new), …
    664 sections changed (39 new, 624 removed); too big to compare word by word, whole blocks shown

Section names drop the document's single top heading (every section is under it) and are the last
heading of the path, with its parent when that heading text alone is ambiguous. Pure functions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from monitor.humanize import plural, shorten
from monitor.models import Block, BlockKind, DiffOp, Move

MAX_LENGTH = 200        # characters of a summary
MAX_DETAILED = 3        # sections described one by one; beyond, sections are listed by name
COARSE = "too big to compare word by word, whole blocks shown"
_KINDS = {BlockKind.HEADING: ("heading", "headings"), BlockKind.PARAGRAPH: ("paragraph", "paragraphs"),
          BlockKind.ITEM: ("list item", "list items"), BlockKind.ROW: ("table row", "table rows"),
          BlockKind.CODE: ("code line", "code lines")}
_HOWS = ("changed", "added", "removed", "reformatted")


@dataclass(frozen=True, slots=True)
class BlockChange:
    """One block of the diff: how it changed, where, and how many words came and went."""

    path: tuple[str, ...]
    kind: BlockKind
    how: str                                # "changed" | "added" | "removed" | "reformatted"
    added_words: int = 0                    # counted for blocks changed in place
    removed_words: int = 0
    edit: tuple[str, str] | None = None     # its only change, when that is one short replacement
    old_kind: BlockKind | None = None       # for "reformatted": what the block was before
    opens_section: bool = False             # a heading added or removed with its section's path
    count: int = 1                          # blocks alike (added or removed together) that this stands for


@dataclass
class MoveGroup:
    """Moves shown as one: a run with the same source and target, or a moved heading with its section."""

    source: tuple[str, ...]
    target: tuple[str, ...]
    moves: list[Move] = field(default_factory=list)
    section: str | None = None              # the heading text, when a whole section moved

    @property
    def within(self) -> bool:
        return self.source == self.target


def group_moves(moves: Sequence[Move]) -> list[MoveGroup]:
    """Consecutive moves with the same source and target; a moved heading takes the moves under it along."""
    groups: list[MoveGroup] = []
    for k, m in enumerate(moves):
        g = groups[-1] if groups else None
        same_run = g is not None and g.section is None and (m.source, m.target) == (g.source, g.target)
        if g and ((g.section is not None and _inside(m, g)) or (same_run and not _leads(moves, k))):
            g.moves.append(m)
        else:
            groups.append(MoveGroup(m.source, m.target, [m], m.text if _leads(moves, k) else None))
    return groups


def _leads(moves: Sequence[Move], k: int) -> bool:
    """Whether move k is a heading whose section's blocks follow it (their paths extend its location)."""
    m = moves[k]
    if k + 1 >= len(moves):
        return False
    nxt = moves[k + 1]
    return nxt.source[:len(m.source) + 1] == (*m.source, m.text) and nxt.target[:len(m.target) + 1] == (
        *m.target, m.text)


def _inside(m: Move, g: MoveGroup) -> bool:
    assert g.section is not None
    src, dst = (*g.source, g.section), (*g.target, g.section)
    return m.source[:len(src)] == src and m.target[:len(dst)] == dst


def small_edit(ops: Sequence[DiffOp]) -> tuple[str, str] | None:
    """(old, new) of a block's only change when it is one short replacement ("occuring" -> "occurring")."""
    changed = [k for k, o in enumerate(ops) if o.op != "equal"]
    if not 1 <= len(changed) <= 2 or changed[-1] - changed[0] > 1:
        return None
    deleted = "".join(ops[k].text for k in changed if ops[k].op == "delete").strip()
    inserted = "".join(ops[k].text for k in changed if ops[k].op == "insert").strip()
    if not deleted or not inserted or max(len(deleted.split()), len(inserted.split())) > 4:
        return None
    return (deleted, inserted) if len(deleted + inserted) <= 60 else None


# --------------------------------------------------------------------------------------------- summaries


def summarize(changes: Sequence[BlockChange], moves: Sequence[Move], move_kinds: Sequence[BlockKind], *,
              headings: Sequence[Block], title: tuple[str, str] | None, link: object, coarse: bool,
              text_changed: bool) -> str:
    """The one-line summary of a diff (see the module docstring)."""
    names = _Names(headings, [c.path for c in changes] + [p for m in moves for p in (m.source, m.target)])
    parts = []
    if title:
        parts.append(f"title changed to \u201c{shorten(title[1], 80)}\u201d")
    if link:
        parts.append("link changed")
    by_section: dict[tuple[str, ...], list[BlockChange]] = {}
    for c in changes:
        by_section.setdefault(c.path, []).append(c)
    tail = _describe_moves(moves, move_kinds, names) + ([COARSE] if coarse else [])
    if coarse and len(by_section) > MAX_DETAILED:
        parts.append(_rewritten(by_section))
    else:
        parts.extend(_describe_sections(by_section, names, MAX_LENGTH - len("; ".join([*parts, *tail])) - 2))
    parts.extend(tail)
    if not parts:
        parts.append("layout changed (same words)" if text_changed else "no visible change")
    return _fit("; ".join(parts))


class _Names:
    """Short, unambiguous names for heading paths."""

    def __init__(self, headings: Sequence[Block], paths: Sequence[tuple[str, ...]]) -> None:
        tops = {h.text for h in headings if len(h.path) == 1}
        roots = {p[0] for p in paths if p}
        self.root = next(iter(tops)) if len(tops) == 1 and roots == tops and all(paths) else None
        self.counts = Counter(h.text for h in headings)

    def __call__(self, path: tuple[str, ...]) -> str:
        if self.root is not None and len(path) > 1 and path[0] == self.root:
            path = path[1:]
        if not path:
            return "start of the document"
        leaf = path[-1].rstrip(":")
        if self.counts[path[-1]] > 1 and len(path) > 1:
            return f"{path[-2].rstrip(':')} > {leaf}"
        return leaf


def _describe_sections(by_section: dict[tuple[str, ...], list[BlockChange]], names: _Names, room: int) -> list[str]:
    if len(by_section) <= MAX_DETAILED:
        detailed = [f"{names(path)}: {_detail(path, cs)}" for path, cs in by_section.items()]
        if len("; ".join(detailed)) <= room:
            return detailed
    labels = [names(path) + _status(path, cs) for path, cs in by_section.items()]
    head = f"{len(labels)} sections changed: "
    shown: list[str] = []
    for k, label in enumerate(labels):
        rest = len(labels) - k - 1
        tail = f" and {rest} more" if rest else ""
        if shown and len(head + ", ".join([*shown, label]) + tail) > room:
            return [head + ", ".join(shown) + f" and {len(labels) - len(shown)} more"]
        shown.append(label)
    return [head + ", ".join(shown)]


def _rewritten(by_section: dict[tuple[str, ...], list[BlockChange]]) -> str:
    """A rewrite too big to compare: how many sections, how many of them new or gone."""
    status = Counter(_whole_section(path, cs) for path, cs in by_section.items())
    extra = [f"{status[s]} {s}" for s in ("new", "removed") if status[s]]
    return f"{len(by_section)} sections changed" + (f" ({', '.join(extra)})" if extra else "")


def _status(path: tuple[str, ...], changes: Sequence[BlockChange]) -> str:
    whole = _whole_section(path, changes)
    return f" ({whole})" if whole else ""


def _whole_section(path: tuple[str, ...], changes: Sequence[BlockChange]) -> str | None:
    """"new" when the section's own heading is new (its blocks may be old ones edited), "removed" when the
    heading went with everything under it."""
    own = [c for c in changes if c.opens_section and c.path == path]
    if own and own[0].how == "added":
        return "new"
    if own and all(c.how == "removed" for c in changes):
        return "removed"
    return None


def _detail(path: tuple[str, ...], changes: Sequence[BlockChange]) -> str:
    whole = _whole_section(path, changes)
    if whole == "new":
        return "new section" + _count_suffix([c for c in changes if c.kind is not BlockKind.HEADING])
    if whole == "removed":
        return "section removed" + _count_suffix([c for c in changes if c.kind is not BlockKind.HEADING])
    if len(changes) == 1 and changes[0].edit and changes[0].count == 1:
        old, new = changes[0].edit
        edit = f"\u201c{old}\u201d \u2192 \u201c{new}\u201d"
        return "heading " + edit if changes[0].kind is BlockKind.HEADING else edit
    counted = _counts(changes)
    if all(c.how == "changed" for c in changes):
        added, removed = sum(c.added_words for c in changes), sum(c.removed_words for c in changes)
        counted += [f"{plural(added, 'word')} added"] if added else []
        counted += [f"{plural(removed, 'word')} removed"] if removed else []
    return ", ".join(counted)


def _count_suffix(changes: Sequence[BlockChange]) -> str:
    counted = _counts(changes, with_how=False)
    return f" ({', '.join(counted)})" if counted else ""


def _counts(changes: Sequence[BlockChange], *, with_how: bool = True) -> list[str]:
    """ "1 list item changed", "1 heading and 2 paragraphs added" ... in a fixed order."""
    tally: Counter[tuple[str, BlockKind]] = Counter()
    for c in changes:
        tally[(c.how, c.kind)] += c.count
    out = []
    for how in _HOWS[:3]:
        kinds = [plural(tally[(how, kind)], *_KINDS[kind]) for kind in _KINDS if tally[(how, kind)]]
        if kinds:
            listed = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
            out.append(f"{listed} {how}" if with_how else listed)
    return out + _reformatted([c for c in changes if c.how == "reformatted"])


def _reformatted(changes: Sequence[BlockChange]) -> list[str]:
    """ "heading level changed", "2 list items re-indented", "3 paragraphs became list items"."""
    out = []
    for (was, kind), n in Counter((c.old_kind or c.kind, c.kind) for c in changes).items():
        if was is kind is BlockKind.HEADING:
            out.append("heading level changed" if n == 1 else f"{n} heading levels changed")
        elif was is kind:
            out.append(f"{plural(n, *_KINDS[kind])} re-indented")
        else:
            out.append(f"{plural(n, *_KINDS[was])} became " + (f"a {_KINDS[kind][0]}" if n == 1 else _KINDS[kind][1]))
    return out


def _describe_moves(moves: Sequence[Move], kinds: Sequence[BlockKind], names: _Names) -> list[str]:
    groups = group_moves(moves)
    if not groups:
        return []
    if len(groups) > 1:
        targets = {names(g.target) for g in groups}
        where = f" to {next(iter(targets))}" if len(targets) == 1 and not any(g.within for g in groups) else ""
        return [f"{plural(len(moves), 'block')} moved{where}"]
    g = groups[0]
    where = f"within {names(g.target)}" if g.within else f"to {names(g.target)}"
    if g.section is not None:
        return [f"section \u201c{shorten(g.section, 50)}\u201d moved {where}"]
    if len(g.moves) <= 2:
        quoted = " and ".join(f"\u201c{shorten(m.text, 50)}\u201d" for m in g.moves)
        return [f"{quoted} moved {where}"]
    kind_names = {_KINDS[k][1] for k in kinds}
    noun = kind_names.pop() if len(kind_names) == 1 else "blocks"
    if g.within:
        return [f"{len(g.moves)} {noun} re-ordered in {names(g.target)}"]
    return [f"{len(g.moves)} {noun} moved {where}"]


def _fit(text: str) -> str:
    """Cut at a word boundary to MAX_LENGTH characters."""
    return shorten(text, MAX_LENGTH, strip=",;: ")
