"""Section-aware word diff of two canonical versions: the only module that imports diff-match-patch.

Two levels (notes/libraries.md §1.4), both bounded by one time budget:

1. **Blocks.** Each line of canonical text is one block (heading, paragraph, list item, row, code line).
   Blocks are mapped to single characters and diffed, which finds the changed regions ("hunks") of a
   2 MB document in milliseconds.
2. **Moves.** A block deleted in one place and inserted, identical or nearly so, in another is one *move*
   (from heading path -> to heading path), not a deletion plus an insertion. Re-ordering inside a
   section is a move too.
3. **Words.** Inside each hunk the remaining blocks are diffed word by word: tokens (words, runs of
   spaces, runs of punctuation) are mapped to characters, diffed, and the semantic cleanup runs in token
   space, so an edit reads ``[-sustainable-]{+scale+}``, never ``[-sustainab-]{+sca+}le``.
4. Every piece of the result is attributed to the heading path of the block it belongs to, and the
   pieces are grouped into sections.

When the budget runs out (a huge or totally rewritten document) the diff falls back to whole blocks and
says so (``coarse``). Renderers live in monitor.render; they never import diff-match-patch.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from diff_match_patch import diff_match_patch

from monitor.models import Block, BlockKind, DiffOp, DocumentDiff, Move, SectionDiff
from monitor.normalize import parse_canonical, render

TIME_BUDGET = 1.0                   # seconds for one document diff, both levels together
MAX_HUNK_TOKENS = 60_000            # beyond this a hunk is shown as whole blocks (cleanup is unbounded)
MAX_MOVE_CANDIDATES = 400           # near-match moves are looked for only among this many blocks
MOVE_SIMILARITY = 0.6
# Words (joined across inner dots, hyphens, apostrophes...: "v1.0", "2019-2024", "don't" are one token),
# runs of spaces, block breaks, runs of punctuation.
_TOKEN = re.compile(r"\w+(?:[.'’/:@-]\w+)*|[^\S\n]+|\n|[^\w\s]+")
_WORD = re.compile(r"\w+")
_KIND_NAMES = {BlockKind.HEADING: ("heading", "headings"), BlockKind.PARAGRAPH: ("paragraph", "paragraphs"),
               BlockKind.ITEM: ("list item", "list items"), BlockKind.ROW: ("table row", "table rows"),
               BlockKind.CODE: ("code line", "code lines")}
EQUAL, DELETE, INSERT = "equal", "delete", "insert"


@dataclass(frozen=True, slots=True)
class Version:
    """The parts of one stored version that a diff compares."""

    title: str
    link: str | None
    text: str


def diff_versions(old: Version, new: Version, *, budget: float = TIME_BUDGET) -> DocumentDiff:
    """The section-aware diff of two versions of one document."""
    deadline = time.monotonic() + budget
    engine = _Engine(deadline)
    sections, moves = engine.run(parse_canonical(old.text), parse_canonical(new.text))
    title = (old.title, new.title) if old.title != new.title else None
    link = (old.link, new.link) if old.link != new.link else None
    title_ops = word_ops(old.title, new.title, deadline=deadline) if title else []
    inserted = tuple(_fragments(sections, moves, INSERT, title_ops))
    deleted = tuple(_fragments(sections, moves, DELETE, title_ops))
    diff = DocumentDiff(sections=tuple(sections), moves=tuple(moves), title=title, link=link,
                        inserted=inserted, deleted=deleted, coarse=engine.coarse)
    diff = _with_summary(diff, engine.stats)
    if diff.summary == "no visible change" and old.text != new.text:
        # Same words, other blocks: a heading became a paragraph, a list item a line of code...
        diff = dataclasses.replace(diff, summary="formatting changed (same words)")
    return diff


def added_diff(new: Version) -> DocumentDiff:
    """A new document: every block inserted (used for `run --json` of added documents)."""
    return diff_versions(Version("", None, ""), Version(new.title, new.link, new.text))


def word_ops(a: str, b: str, *, deadline: float | None = None) -> list[DiffOp]:
    """Word-level diff of two strings, semantic cleanup in token space."""
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    return _token_diff(ta, tb, deadline if deadline is not None else time.monotonic() + TIME_BUDGET)[0]


# --------------------------------------------------------------------------------------------- engine


@dataclass
class _Hunk:
    deleted: list[int] = field(default_factory=list)    # indices into the old blocks
    inserted: list[int] = field(default_factory=list)   # indices into the new blocks


@dataclass
class _Stats:
    """Per section path: which blocks changed how, and how many words came and went."""

    blocks: dict[tuple[str, ...], Counter[tuple[str, BlockKind]]] = field(default_factory=dict)
    word_counts: dict[tuple[str, ...], Counter[str]] = field(default_factory=dict)

    def block(self, path: tuple[str, ...], how: str, kind: BlockKind) -> None:
        self.blocks.setdefault(path, Counter())[(how, kind)] += 1

    def words(self, path: tuple[str, ...]) -> Counter[str]:
        return self.word_counts.setdefault(path, Counter())


class _Engine:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.coarse = False
        self.stats = _Stats()
        self.dmp = diff_match_patch()

    def run(self, a: list[Block], b: list[Block]) -> tuple[list[SectionDiff], list[Move]]:
        self.a, self.b = a, b
        hunks = self.hunks()
        moves = self.moves(hunks)
        sections: list[SectionDiff] = []
        for hunk in hunks:
            sections.extend(self.hunk_sections(hunk))
        return sections, moves

    # level 1: blocks
    def hunks(self) -> list[_Hunk]:
        ca, cb = _encode([render([x]) for x in self.a], [render([x]) for x in self.b])
        self.dmp.Diff_Timeout = max(0.001, self.deadline - time.monotonic())
        diffs = self.dmp.diff_main(ca, cb, False)
        if time.monotonic() >= self.deadline:
            self.coarse = True
        hunks: list[_Hunk] = []
        ia = ib = 0
        current: _Hunk | None = None
        for op, chars in diffs:
            n = len(chars)
            if op == 0:
                ia, ib, current = ia + n, ib + n, None
                continue
            if current is None:
                current = _Hunk()
                hunks.append(current)
            if op < 0:
                current.deleted.extend(range(ia, ia + n))
                ia += n
            else:
                current.inserted.extend(range(ib, ib + n))
                ib += n
        return hunks

    # moves
    def moves(self, hunks: list[_Hunk]) -> list[Move]:
        owner_a = {i: h for h in hunks for i in h.deleted}
        owner_b = {j: h for h in hunks for j in h.inserted}
        exact = self.exact_pairs(owner_a, owner_b)
        pairs = exact + self.near_pairs(owner_a, owner_b, {i for i, _ in exact}, {j for _, j in exact})
        moves = []
        for i, j in sorted(pairs, key=lambda p: p[1]):
            owner_a[i].deleted.remove(i)
            owner_b[j].inserted.remove(j)
            old, new = self.a[i], self.b[j]
            edits = () if old.text == new.text else tuple(word_ops(old.text, new.text, deadline=self.deadline))
            moves.append(Move(text=new.text, source=old.path, target=new.path, edits=edits))
        return moves

    def exact_pairs(self, owner_a: dict[int, _Hunk], owner_b: dict[int, _Hunk]) -> list[tuple[int, int]]:
        """Identical blocks deleted in one hunk and inserted in another (same hunk: a re-styled block)."""
        by_text: dict[str, list[int]] = {}
        for j in sorted(owner_b):
            by_text.setdefault(self.b[j].text, []).append(j)
        pairs = []
        for i in sorted(owner_a):
            candidates = by_text.get(self.a[i].text, [])
            for j in candidates:
                if owner_b[j] is not owner_a[i]:
                    pairs.append((i, j))
                    candidates.remove(j)
                    break
        return pairs

    def near_pairs(self, owner_a: dict[int, _Hunk], owner_b: dict[int, _Hunk], taken_a: set[int],
                   taken_b: set[int]) -> list[tuple[int, int]]:
        """Blocks that moved to another hunk and changed a little on the way (similar words)."""
        left = [i for i in owner_a if i not in taken_a and self.a[i].kind is not BlockKind.HEADING]
        right = [j for j in owner_b if j not in taken_b and self.b[j].kind is not BlockKind.HEADING]
        if not left or not right or len(left) * len(right) > MAX_MOVE_CANDIDATES ** 2 // 4:
            return []
        words_b = {j: Counter(_WORD.findall(self.b[j].text.lower())) for j in right}
        scored = []
        for i in left:
            wa = Counter(_WORD.findall(self.a[i].text.lower()))
            for j in right:
                if owner_a[i] is owner_b[j]:
                    continue  # same place: an edit, not a move
                score = _similarity(wa, words_b[j])
                if score >= MOVE_SIMILARITY:
                    scored.append((score, i, j))
        pairs: list[tuple[int, int]] = []
        used_a: set[int] = set()
        used_b: set[int] = set()
        for _, i, j in sorted(scored, key=lambda s: (-s[0], s[1], s[2])):
            if i not in used_a and j not in used_b:
                pairs.append((i, j))
                used_a.add(i)
                used_b.add(j)
        return pairs

    # level 2: words, attributed to sections
    def hunk_sections(self, hunk: _Hunk) -> list[SectionDiff]:
        if not hunk.deleted and not hunk.inserted:
            return []
        old = [self.a[i] for i in hunk.deleted]
        new = [self.b[j] for j in hunk.inserted]
        ta = _TOKEN.findall("\n".join(x.text for x in old))
        tb = _TOKEN.findall("\n".join(x.text for x in new))
        if self.coarse or len(ta) > MAX_HUNK_TOKENS or len(tb) > MAX_HUNK_TOKENS:
            self.coarse = True
            ops = [DiffOp(DELETE, "".join(ta))] if ta else []
            ops += [DiffOp(INSERT, "".join(tb))] if tb else []
        else:
            ops, timed_out = _token_diff(ta, tb, self.deadline)
            self.coarse = self.coarse or timed_out
        return self.attribute(ops, old, new)

    def attribute(self, ops: list[DiffOp], old: list[Block], new: list[Block]) -> list[SectionDiff]:
        """Split ops at block boundaries and group the pieces by the heading path of their block.

        Inserted and unchanged text belongs to the new block it is in. Deleted text belongs to the old
        block it came from, unless that block was edited in place (it shares words with a new block):
        then it goes with the new block, so "v1.0 -> v1.1" is one change in one section.
        """
        pieces = list(_pieces(ops))
        tally = _Tally()
        for op, piece, ia, ib in pieces:
            if piece != "\n":
                tally.add(op, piece, ia, ib)
        edited_into = {i: j for i, j in sorted(tally.links, reverse=True)}
        sections: list[SectionDiff] = []
        path: tuple[str, ...] | None = None
        current: list[DiffOp] = []
        for op, piece, ia, ib in pieces:
            if op == DELETE:
                block = new[edited_into[ia]] if ia in edited_into else old[ia]
            else:
                block = new[ib]
            if piece == "\n":
                if block.path == path and current:
                    current.append(DiffOp(op, "\n"))
                continue
            self.stats.words(block.path)[op] += len(_WORD.findall(piece))
            if block.path != path:
                if current:
                    sections.append(SectionDiff(path or (), _merge(current)))
                path, current = block.path, []
            current.append(DiffOp(op, piece))
        if current:
            sections.append(SectionDiff(path or (), _merge(current)))
        tally.count(self.stats, old, new)
        return [s for s in sections if any(o.op != EQUAL for o in s.ops)]


@dataclass
class _Tally:
    """Which old and new blocks a hunk's pieces touched, to count blocks changed, added and removed."""

    deleted: set[int] = field(default_factory=set)
    inserted: set[int] = field(default_factory=set)
    links: set[tuple[int, int]] = field(default_factory=set)   # (old, new) blocks sharing a word

    def add(self, op: str, piece: str, ia: int, ib: int) -> None:
        if op == DELETE:
            self.deleted.add(ia)
        elif op == INSERT:
            self.inserted.add(ib)
        elif _WORD.search(piece):
            self.links.add((ia, ib))

    def count(self, stats: _Stats, old: list[Block], new: list[Block]) -> None:
        linked_a = {i for i, _ in self.links}
        linked_b = {j for _, j in self.links}
        changed = {j for i, j in self.links if i in self.deleted or j in self.inserted}
        for j in sorted(changed):
            stats.block(new[j].path, "changed", new[j].kind)
        for j in sorted(self.inserted - linked_b):
            stats.block(new[j].path, "added", new[j].kind)
        for i in sorted(self.deleted - linked_a):
            stats.block(old[i].path, "removed", old[i].kind)


def _pieces(ops: list[DiffOp]) -> Iterator[tuple[str, str, int, int]]:
    """(op, text, old block index, new block index) for each piece of each op; newlines are pieces."""
    ia = ib = 0
    for o in ops:
        for part in re.split(r"(\n)", o.text):
            if not part:
                continue
            yield o.op, part, ia, ib
            if part == "\n":
                ia += o.op != INSERT
                ib += o.op != DELETE


def _merge(ops: list[DiffOp]) -> tuple[DiffOp, ...]:
    out: list[DiffOp] = []
    for o in ops:
        if out and out[-1].op == o.op:
            out[-1] = DiffOp(o.op, out[-1].text + o.text)
        else:
            out.append(o)
    while out and out[-1].text == "\n":
        out.pop()
    return tuple(out)


def _similarity(a: Counter[str], b: Counter[str]) -> float:
    total = sum(a.values()) + sum(b.values())
    return 2 * sum((a & b).values()) / total if total else 0.0


def _encode(ta: Sequence[str], tb: Sequence[str]) -> tuple[str, str]:
    """Map each distinct token to one character (skipping NUL and the surrogate range)."""
    table: dict[str, str] = {}

    def enc(tokens: Sequence[str]) -> str:
        out = []
        for t in tokens:
            c = table.get(t)
            if c is None:
                n = len(table) + 1
                if n >= 0xD800:
                    n += 0x800
                c = table[t] = chr(n)
            out.append(c)
        return "".join(out)

    return enc(ta), enc(tb)


def _token_diff(ta: list[str], tb: list[str], deadline: float) -> tuple[list[DiffOp], bool]:
    """Diff token lists; the semantic cleanup runs on the encoded tokens, before mapping back."""
    ca, cb = _encode(ta, tb)
    dmp = diff_match_patch()
    dmp.Diff_Timeout = max(0.001, deadline - time.monotonic())
    diffs = dmp.diff_main(ca, cb, False)
    timed_out = time.monotonic() >= deadline
    if not timed_out:
        dmp.diff_cleanupSemantic(diffs)
    ops, i, j = [], 0, 0
    for op, chars in diffs:
        n = len(chars)
        if op == 0:
            ops.append(DiffOp(EQUAL, "".join(ta[i:i + n])))
            i, j = i + n, j + n
        elif op < 0:
            ops.append(DiffOp(DELETE, "".join(ta[i:i + n])))
            i += n
        else:
            ops.append(DiffOp(INSERT, "".join(tb[j:j + n])))
            j += n
    return ops, timed_out


# --------------------------------------------------------------------------------------------- summary


def _fragments(sections: Sequence[SectionDiff], moves: Sequence[Move], op: str,
               title_ops: Sequence[DiffOp]) -> Iterator[str]:
    """The inserted (or deleted) text fragments: title words, section words, words edited in moves."""
    yield from (o.text.strip() for o in title_ops if o.op == op and o.text.strip())
    for s in sections:
        for o in s.ops:
            if o.op == op and o.text.strip():
                yield from (t.strip() for t in o.text.split("\n") if t.strip())
    for m in moves:
        for o in m.edits:
            if o.op == op and o.text.strip():
                yield o.text.strip()


def section_name(path: Sequence[str], depth: int = 2) -> str:
    """The last `depth` components of a heading path, for one-line summaries ("(top)" when empty)."""
    return " > ".join(p.rstrip(":") for p in path[-depth:]) if path else "(top)"


def _with_summary(diff: DocumentDiff, stats: _Stats) -> DocumentDiff:
    """One line: title/link changes, up to three sections with what changed in them, then moves."""
    parts = []
    if diff.title:
        parts.append(f"title changed to \u201c{diff.title[1]}\u201d")
    if diff.link:
        parts.append("link changed")
    for path, counts in list(stats.blocks.items())[:3]:
        words = stats.words(path)
        detail = [_describe(counts)]
        detail += [_plural(words[INSERT], "word") + " added"] if words[INSERT] else []
        detail += [_plural(words[DELETE], "word") + " removed"] if words[DELETE] else []
        parts.append(f"{section_name(path)}: {', '.join(detail)}")
    if len(stats.blocks) > 3:
        parts.append(f"{len(stats.blocks) - 3} more sections changed")
    parts.extend(_describe_moves(diff.moves))
    if diff.coarse:
        parts.append("rewritten (shown as whole blocks)")
    summary = "; ".join(parts) or "no visible change"
    return DocumentDiff(diff.sections, diff.moves, diff.title, diff.link, diff.inserted, diff.deleted,
                        summary, diff.coarse)


def _describe(counts: Counter[tuple[str, BlockKind]]) -> str:
    out = []
    for how in ("changed", "added", "removed"):
        for kind, (one, many) in _KIND_NAMES.items():
            n = counts.get((how, kind), 0)
            if n:
                out.append(f"{n} {one if n == 1 else many} {how}")
    return ", ".join(out) or "changed"


def _describe_moves(moves: Sequence[Move]) -> list[str]:
    if not moves:
        return []
    if len(moves) == 1:
        m = moves[0]
        where = "within " + section_name(m.target) if m.source == m.target else "to " + section_name(m.target, 1)
        return [f"\u201c{_short(m.text)}\u201d moved {where}"]
    targets = {m.target for m in moves}
    if len(targets) == 1 and all(m.source == m.target for m in moves):
        return [f"{len(moves)} blocks re-ordered within {section_name(moves[0].target)}"]
    return [f"{len(moves)} blocks moved"]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"
