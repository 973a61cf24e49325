"""Section-aware word diff of two canonical versions: the only module that imports diff-match-patch.

The algorithm, in order (table-tested in tests/cases/diff.yaml, measured by bench/diff_bench.py):

0. **Region.** Identical lines are identical blocks, so the lines both texts begin and end with are not
   even parsed; the changed region between them is, with the heading path its first line inherits.
1. **Blocks.** Each line of canonical text is a block (heading, paragraph, list item, row, code line). The
   blocks are mapped to single characters and diffed, which finds the changed regions ("hunks") of a 2 MB
   document in milliseconds. Everything outside the hunks is unchanged and never looked at again.
2. **Moves.** A block deleted in one hunk and inserted, identical or nearly so, in another is one *move*
   (from heading path -> to heading path), not a deletion plus an insertion. Re-ordering inside a section
   is a move too, so a re-sorted list reads as moves, never as a wall of red and green.
3. **Alignment.** Inside a hunk, the remaining old and new blocks are paired in order by the words they
   share (a block edited in place); the rest are whole blocks added or removed. Diffs keep the document's
   line layout: a changed paragraph is one line with its changed words marked.
4. **Words.** Each pair is diffed word by word: tokens (words, URLs, runs of spaces, runs of punctuation)
   are mapped to characters, diffed, and the semantic cleanup runs in token space, so an edit reads
   ``[-sustainable-]{+scale+}``, never ``[-sustainab-]{+sca+}le``.
5. **Sections.** Every line is attributed to the heading path of its block (a removed block to where its
   old neighbours now are, renamed headings under their new names) and lines are grouped into sections.
   A hunk that only adds or removes whole blocks keeps its unchanged neighbours as context.

Steps 1-4 share one time budget (reading, step 0, is linear and comes first). When it runs out (a huge or
totally rewritten document) the remaining hunks are shown as whole blocks and the diff says so
(``coarse``). Summaries are written by monitor.summary; renderers live in monitor.render. Neither imports
diff-match-patch. Pure functions.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from diff_match_patch import diff_match_patch

from monitor.models import Block, BlockKind, DiffOp, DocumentDiff, Move, Op, SectionDiff
from monitor.region import changed_region, translated_paths
from monitor.summary import BlockChange, small_edit, summarize

TIME_BUDGET = 1.0                   # seconds of diffing (blocks, moves, words) for one document
MAX_ALIGN_PAIRS = 40_000            # old x new blocks of one hunk paired by similarity; beyond, by a word diff
MAX_MOVE_PAIRS = 40_000             # old x new blocks compared when looking for moved-and-edited blocks
PAIR_SIMILARITY = 0.5               # share of words an old and a new block need in common to be one edit
PAIR_ALONE = 0.34                   # ... when the hunk replaces one block by one block, in the same place
MOVE_SIMILARITY = 0.6               # ... and a moved block needs to be recognised after a small edit
MOVE_MIN_WORDS = 2                  # shorter blocks are moves only when identical
BLOCK_SHARE = 0.5                   # of the budget, at most for the block level; the rest for words and layout
# URLs and e-mail addresses; words joined across inner dots, hyphens, apostrophes, colons ("v1.0",
# "2019-2024", "don't", "10:30" are one token; "and/or" is three); runs of spaces; block breaks; runs of
# punctuation.
_TOKEN = re.compile(r"https?://[^\s<>\"]*[^\s<>\".,;:!?)\]}'’]|\w+(?:[.'’:@-]\w+)*|[^\S\n]+|\n|[^\w\s]+")
_WORD = re.compile(r"\w+")
_FIRST_CODE = 0x100                 # token codes start above ASCII controls and spaces (see _encode)
EQUAL, DELETE, INSERT = Op.EQUAL, Op.DELETE, Op.INSERT


@dataclass(frozen=True, slots=True)
class Version:
    """The parts of one stored version that a diff compares."""

    title: str
    link: str | None
    text: str


def diff_versions(old: Version, new: Version, *, budget: float = TIME_BUDGET) -> DocumentDiff:
    """The section-aware diff of two versions of one document (see the module docstring)."""
    a, b, headings = changed_region(old.text, new.text)
    deadline = time.monotonic() + budget    # reading is linear; the budget bounds the diffing that is not
    engine = _Engine(a, b, deadline)
    sections, moves = engine.run()
    title = (old.title, new.title) if old.title != new.title else None
    link = (old.link, new.link) if old.link != new.link else None
    title_ops = word_diff(old.title, new.title, deadline)[0] if title else []
    summary = summarize(engine.changes, moves, engine.move_kinds, headings=headings, title=title, link=link,
                        coarse=engine.coarse, text_changed=old.text != new.text)
    return DocumentDiff(sections=tuple(sections), moves=tuple(moves), title=title, link=link,
                        inserted=tuple(_fragments(sections, moves, INSERT, title_ops)),
                        deleted=tuple(_fragments(sections, moves, DELETE, title_ops)),
                        summary=summary, coarse=engine.coarse)


# --------------------------------------------------------------------------------------------- engine


@dataclass
class _Hunk:
    """A changed region: old blocks a0..a1 were replaced by new blocks b0..b1 (moved blocks taken out)."""

    a0: int
    a1: int
    b0: int
    b1: int
    old: list[int] = field(default_factory=list)
    new: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Line:
    """One block of a section diff: changed in place, added, removed, or unchanged context."""

    how: str
    path: tuple[str, ...]
    ops: tuple[DiffOp, ...]
    context_of: int = -1            # for context lines: the index of the new block shown


class _Engine:
    """One diff of the blocks of two changed regions: hunks, moves, pairs, lines; it collects what the
    summary needs (`changes`, `move_kinds`) and whether the budget ran out (`coarse`)."""

    def __init__(self, a: list[Block], b: list[Block], deadline: float) -> None:
        self.a, self.b, self.deadline = a, b, deadline
        self.coarse = False
        self.changes: list[BlockChange] = []
        self.move_kinds: list[BlockKind] = []     # the kind of each move's block, in order
        self._words_a: dict[int, frozenset[str]] = {}
        self._words_b: dict[int, frozenset[str]] = {}

    def run(self) -> tuple[list[SectionDiff], list[Move]]:
        hunks = self.hunks()
        move_pairs = self.moves(hunks)
        aligned = [(h, self.align(h)) for h in hunks]
        renamed = {i: self.b[j].text for _, pairs in aligned for i, j in pairs
                   if self.a[i].kind is BlockKind.HEADING and self.b[j].kind is BlockKind.HEADING}
        old_paths = translated_paths(self.a, renamed)
        moves = [self.move(i, j, old_paths[i]) for i, j in move_pairs]
        runs: list[list[_Line]] = []
        for hunk, pairs in aligned:
            lines = self.lines(hunk, pairs, old_paths)
            if runs and runs[-1] and lines and runs[-1][-1].context_of == lines[0].context_of >= 0:
                runs[-1].extend(lines[1:])    # two hunks around one unchanged block: show it once
            else:
                runs.append(lines)
        return [s for run in runs for s in _group(run)], moves

    def out_of_time(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.coarse = True
        return self.coarse

    def words(self, side: str, i: int) -> frozenset[str]:
        cache, blocks = (self._words_a, self.a) if side == "a" else (self._words_b, self.b)
        found = cache.get(i)
        if found is None:
            found = cache[i] = frozenset(_WORD.findall(blocks[i].text.lower()))
        return found

    # level 1: blocks
    def hunks(self) -> list[_Hunk]:
        keys_a, keys_b = [_key(x) for x in self.a], [_key(x) for x in self.b]
        if set(keys_a).isdisjoint(keys_b):   # nothing in common: one hunk, without asking diff-match-patch
            diffs: list[tuple[int, int]] = [(-1, len(keys_a)), (1, len(keys_b))]
        else:
            ca, cb = _encode(keys_a, keys_b)
            dmp = diff_match_patch()
            share = (self.deadline - time.monotonic()) * BLOCK_SHARE
            dmp.Diff_Timeout = max(0.001, share)
            started = time.monotonic()
            diffs = [(op, len(chars)) for op, chars in dmp.diff_main(ca, cb, False)]
            if time.monotonic() - started >= share:   # gave up: the hunks are right, but too coarse to refine
                self.coarse = True
        hunks: list[_Hunk] = []
        ia = ib = 0
        for op, n in diffs:
            if op == 0:
                ia, ib = ia + n, ib + n
                continue
            if not hunks or (hunks[-1].a1, hunks[-1].b1) != (ia, ib):
                hunks.append(_Hunk(ia, ia, ib, ib))
            if op < 0:
                ia += n
                hunks[-1].a1 = ia
            else:
                ib += n
                hunks[-1].b1 = ib
        for h in hunks:
            h.old, h.new = list(range(h.a0, h.a1)), list(range(h.b0, h.b1))
        return [h for h in hunks if h.old or h.new]

    # moves
    def moves(self, hunks: list[_Hunk]) -> list[tuple[int, int]]:
        """Pairs (old, new) of blocks that moved between hunks; they are taken out of their hunks."""
        owner_a = {i: h for h in hunks for i in h.old}
        owner_b = {j: h for h in hunks for j in h.new}
        exact = self.exact_pairs(owner_a, owner_b)
        pairs = exact + self.near_pairs(owner_a, owner_b, {i for i, _ in exact}, {j for _, j in exact})
        moved_a, moved_b = {i for i, _ in pairs}, {j for _, j in pairs}
        for h in hunks:
            h.old = [i for i in h.old if i not in moved_a]
            h.new = [j for j in h.new if j not in moved_b]
        return sorted(pairs, key=lambda p: p[1])

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
        """Blocks that moved to another hunk and changed a little on the way.

        A candidate must be more like its partner elsewhere than like anything in its own hunk, so a
        paragraph edited in place is never mistaken for a move.
        """
        left = [i for i in owner_a if i not in taken_a and self.a[i].kind is not BlockKind.HEADING]
        right = [j for j in owner_b if j not in taken_b and self.b[j].kind is not BlockKind.HEADING]
        if not left or not right or len(left) * len(right) > MAX_MOVE_PAIRS or self.out_of_time():
            return []
        left = [i for i in left if len(self.words("a", i)) >= MOVE_MIN_WORDS]
        right = [j for j in right if len(self.words("b", j)) >= MOVE_MIN_WORDS]
        home_a = {i: max((_similarity(self.words("a", i), self.words("b", j)) for j in owner_a[i].new), default=0)
                  for i in left}
        home_b = {j: max((_similarity(self.words("a", i), self.words("b", j)) for i in owner_b[j].old), default=0)
                  for j in right}
        scored = []
        for i in left:
            for j in right:
                if owner_a[i] is not owner_b[j]:
                    score = _similarity(self.words("a", i), self.words("b", j))
                    if score >= MOVE_SIMILARITY and score > home_a[i] and score > home_b[j]:
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

    def move(self, i: int, j: int, source: tuple[str, ...]) -> Move:
        old, new = self.a[i], self.b[j]
        edits: tuple[DiffOp, ...] = ()
        if old.text != new.text:
            ops, timed_out = word_diff(old.text, new.text, self.deadline)
            edits = (DiffOp(DELETE, old.text), DiffOp(INSERT, new.text)) if timed_out else tuple(ops)
            self.coarse = self.coarse or timed_out
        source = source if new.kind is not BlockKind.HEADING else source[:-1]
        target = new.path if new.kind is not BlockKind.HEADING else new.path[:-1]
        self.move_kinds.append(new.kind)
        return Move(text=new.text, source=source, target=target, edits=edits)

    # level 2: alignment inside a hunk
    def align(self, h: _Hunk) -> list[tuple[int, int]]:
        """Old and new blocks of a hunk that are one block edited in place, in document order."""
        if not h.old or not h.new or self.out_of_time():
            return []
        if len(h.old) * len(h.new) <= MAX_ALIGN_PAIRS:
            return self.align_by_similarity(h.old, h.new)
        return self.align_by_words(h.old, h.new)

    def pair_score(self, i: int, j: int, threshold: float = PAIR_SIMILARITY) -> float:
        x, y = self.a[i], self.b[j]
        if not _compatible(x, y):
            return 0.0
        if x.text == y.text:
            return 1.0
        score = _similarity(self.words("a", i), self.words("b", j))
        return score if score >= threshold else 0.0

    def align_by_similarity(self, old: list[int], new: list[int]) -> list[tuple[int, int]]:
        """The order-preserving pairing with the largest total similarity (a weighted LCS)."""
        m, n = len(old), len(new)
        threshold = PAIR_ALONE if m == n == 1 else PAIR_SIMILARITY
        scores = {(x, y): s for x in range(m) for y in range(n) if (s := self.pair_score(old[x], new[y], threshold))}
        if not scores:
            return []
        best = [[0.0] * (n + 1) for _ in range(m + 1)]
        for x in range(m - 1, -1, -1):
            row, below = best[x], best[x + 1]
            for y in range(n - 1, -1, -1):
                row[y] = max(below[y], row[y + 1], scores.get((x, y), 0.0) + below[y + 1])
        pairs, x, y = [], 0, 0
        while x < m and y < n:
            s = scores.get((x, y), 0.0)
            if s and best[x][y] == s + best[x + 1][y + 1]:
                pairs.append((old[x], new[y]))
                x, y = x + 1, y + 1
            elif best[x][y] == best[x + 1][y]:
                x += 1
            else:
                y += 1
        return pairs

    def align_by_words(self, old: list[int], new: list[int]) -> list[tuple[int, int]]:
        """Pairing for big hunks: one word diff over the whole hunk says which blocks share words."""
        ta, owner_a = _tokens_of([self.a[i].text for i in old])
        tb, owner_b = _tokens_of([self.b[j].text for j in new])
        counts, timed_out = _token_counts(ta, tb, self.deadline, cleanup=False)
        if timed_out:
            self.coarse = True
            return []
        shared: Counter[tuple[int, int]] = Counter()
        ia = ib = 0
        for op, n in counts:
            if op == 0:
                for k in range(n):
                    if _WORD.match(ta[ia + k]):
                        shared[(owner_a[ia + k], owner_b[ib + k])] += 1
            ia += n if op <= 0 else 0
            ib += n if op >= 0 else 0
        pairs: list[tuple[int, int]] = []
        for (x, y), count in sorted(shared.items()):
            i, j = old[x], new[y]
            words = len(self.words("a", i)) + len(self.words("b", j))
            similar = 2 * count / max(1, words) >= PAIR_SIMILARITY and _compatible(self.a[i], self.b[j])
            if similar and (not pairs or (pairs[-1][0] < i and pairs[-1][1] < j)):
                pairs.append((i, j))
        return pairs

    # level 3: words, attributed to sections
    def lines(self, h: _Hunk, pairs: list[tuple[int, int]], old_paths: list[tuple[str, ...]]) -> list[_Line]:
        """The hunk's lines in document order: between two pairs, removed blocks, then added ones."""
        pos_a = {i: n for n, i in enumerate(h.old)}
        pos_b = {j: n for n, j in enumerate(h.new)}
        out: list[_Line] = []
        x = y = 0
        prev = (h.a0 - 1, h.b0 - 1)            # the unchanged blocks just before and after the hunk
        for pair in [*pairs, (h.a1, h.b1)]:
            px, py = pos_a.get(pair[0], len(h.old)), pos_b.get(pair[1], len(h.new))
            out += self.whole(DELETE, h.old[x:px], functools.partial(self.removed_path, prev, pair, old_paths))
            out += self.whole(INSERT, h.new[y:py], self.new_path)
            if px < len(h.old):
                line = self.changed(*pair)
                if line is None:   # nothing but the place in common: one block out, another in
                    out += self.whole(DELETE, [pair[0]], functools.partial(self.removed_path, prev, pair, old_paths))
                    out += self.whole(INSERT, [pair[1]], self.new_path)
                elif line:
                    out.append(line)
            x, y, prev = px + 1, py + 1, pair
        if out and all(line.how != "changed" for line in out):
            out = self.with_context(h, out)
        return out

    def new_path(self, j: int) -> tuple[str, ...]:
        return self.b[j].path

    def removed_path(self, before: tuple[int, int], after: tuple[int, int], old_paths: list[tuple[str, ...]],
                     i: int) -> tuple[str, ...]:
        """Where a removed block is shown: where its old section's nearest surviving neighbour now is.

        A heading inserted above a list moves the list to a new section; an item removed from that list
        belongs there too, not under the old heading the reader no longer sees. `before` and `after` are
        the (old, new) blocks around it that survived (paired, or unchanged next to the hunk).
        """
        for x, y in (before, after):
            if 0 <= x < len(self.a) and 0 <= y < len(self.b) and old_paths[x] == old_paths[i]:
                return self.b[y].path
        return old_paths[i]

    def whole(self, op: Op, indices: list[int], path_of: Callable[[int], tuple[str, ...]]) -> list[_Line]:
        """Blocks added or removed whole; consecutive ones of one section become one line group."""
        blocks = self.a if op == DELETE else self.b
        how = "removed" if op == DELETE else "added"
        out = []
        for path, run in itertools.groupby(indices, key=path_of):
            texts = []
            kinds: Counter[BlockKind] = Counter()
            for k in run:
                block = blocks[k]
                texts.append(block.text)
                if block.kind is BlockKind.HEADING and path[-1:] == (block.text,):
                    self.changes.append(BlockChange(path, block.kind, how, opens_section=True))
                else:
                    kinds[block.kind] += 1
            self.changes.extend(BlockChange(path, kind, how, count=n) for kind, n in kinds.items())
            out.append(_Line(how, path, (DiffOp(op, "\n".join(texts)),)))
        return out

    def changed(self, i: int, j: int) -> _Line | Literal[False] | None:
        """The word diff of a block edited in place; False for a block only re-formatted (no line), None
        when the word diff found no word in common after all (shown as a block removed, another added)."""
        old, new = self.a[i], self.b[j]
        if old.text == new.text:     # same words, other kind or level (a paragraph became a list item)
            self.changes.append(BlockChange(new.path, new.kind, "reformatted", old_kind=old.kind))
            return False
        ops, timed_out = ([], True) if self.out_of_time() else word_diff(old.text, new.text, self.deadline)
        if timed_out:
            self.coarse = True
        if timed_out or not any(o.op == EQUAL and _WORD.search(o.text) for o in ops):
            return None
        added = sum(_count_words(o.text) for o in ops if o.op == INSERT)
        removed = sum(_count_words(o.text) for o in ops if o.op == DELETE)
        self.changes.append(BlockChange(new.path, new.kind, "changed", added, removed, small_edit(ops)))
        return _Line("changed", new.path, tuple(ops))

    def with_context(self, h: _Hunk, lines: list[_Line]) -> list[_Line]:
        """Whole blocks added or removed: show the unchanged block before and after, when in the same section."""
        before = self.b[h.b0 - 1] if h.b0 > 0 else None
        after = self.b[h.b1] if h.b1 < len(self.b) else None
        if before and before.kind is not BlockKind.HEADING and before.path == lines[0].path:
            lines = [_Line("context", before.path, (DiffOp(EQUAL, before.text),), h.b0 - 1), *lines]
        if after and after.kind is not BlockKind.HEADING and after.path == lines[-1].path:
            lines = [*lines, _Line("context", after.path, (DiffOp(EQUAL, after.text),), h.b1)]
        return lines


def _compatible(x: Block, y: Block) -> bool:
    """Only a heading can become a heading (a renamed section); any other kind can become another."""
    return (x.kind is BlockKind.HEADING) == (y.kind is BlockKind.HEADING)


def _key(block: Block) -> str:
    return f"{block.kind.value}\x00{block.level}\x00{block.text}"


def _group(lines: list[_Line]) -> Iterator[SectionDiff]:
    """Consecutive lines of one heading path become one section diff, lines separated by newlines."""
    start = 0
    for k in range(1, len(lines) + 1):
        if k == len(lines) or lines[k].path != lines[start].path:
            ops: list[DiffOp] = []
            for line in lines[start:k]:
                ops.extend([DiffOp(EQUAL, "\n")] if ops else [])
                ops.extend(line.ops)
            yield SectionDiff(lines[start].path, _merge(ops))
            start = k


def _merge(ops: list[DiffOp]) -> tuple[DiffOp, ...]:
    out: list[DiffOp] = []
    for o in ops:
        if out and out[-1].op == o.op:
            out[-1] = DiffOp(o.op, out[-1].text + o.text)
        elif o.text:
            out.append(o)
    return tuple(out)


def _count_words(text: str) -> int:
    """Words as a reader counts them: "v1.0", "2019-2024" and a URL are one word each."""
    return sum(1 for t in _TOKEN.findall(text) if t[0].isalnum())


def _similarity(a: frozenset[str], b: frozenset[str]) -> float:
    total = len(a) + len(b)
    return 2 * len(a & b) / total if total else 0.0


def _tokens_of(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """The tokens of several blocks (a block break after each) and the block each token belongs to."""
    tokens: list[str] = []
    owners: list[int] = []
    for k, text in enumerate(texts):
        found = [*_TOKEN.findall(text), "\n"]
        tokens.extend(found)
        owners.extend([k] * len(found))
    return tokens, owners


def _encode(ta: Sequence[str], tb: Sequence[str]) -> tuple[str, str]:
    """Map each distinct token to one character.

    Codes start at U+0100 and skip the surrogates: the semantic cleanup scores edit boundaries by the
    character classes it sees, and low codes would make arbitrary tokens look like spaces or line breaks.
    """
    table: dict[str, str] = {}

    def enc(tokens: Sequence[str]) -> str:
        out = []
        for t in tokens:
            c = table.get(t)
            if c is None:
                n = len(table) + _FIRST_CODE
                if n >= 0xD800:
                    n += 0x800
                c = table[t] = chr(n)
            out.append(c)
        return "".join(out)

    return enc(ta), enc(tb)


def _token_counts(ta: list[str], tb: list[str], deadline: float, *,
                  cleanup: bool = True) -> tuple[list[tuple[int, int]], bool]:
    """Diff token lists as (op, number of tokens); the semantic cleanup runs on the encoded tokens."""
    ca, cb = _encode(ta, tb)
    dmp = diff_match_patch()
    dmp.Diff_Timeout = max(0.001, deadline - time.monotonic())
    diffs = dmp.diff_main(ca, cb, False)
    timed_out = time.monotonic() >= deadline
    if cleanup and not timed_out:
        dmp.diff_cleanupSemantic(diffs)
    return [(op, len(chars)) for op, chars in diffs], timed_out


def word_diff(a: str, b: str, deadline: float) -> tuple[list[DiffOp], bool]:
    """Word-level diff of two strings (semantic cleanup in token space): equal+delete ops rebuild `a`,
    equal+insert ops rebuild `b`; and whether `deadline` (time.monotonic) passed first."""
    return _token_diff(_TOKEN.findall(a), _TOKEN.findall(b), deadline)


def _token_diff(ta: list[str], tb: list[str], deadline: float) -> tuple[list[DiffOp], bool]:
    """Diff token lists into word ops (see _token_counts)."""
    counts, timed_out = _token_counts(ta, tb, deadline)
    ops, i, j = [], 0, 0
    for op, n in counts:
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
