"""Renderers of a DocumentDiff: text (terminal), markdown (chat), html (email, reports), json.

All of them show the same things in the same order: a heading and the one-line summary, title and link
changes, then each changed section under its heading path (one line per block, changed words marked,
long unchanged runs trimmed to a few words of context), then moves, one line per group of moves.

Every renderer can be bounded (``max_chars``): whole sections and move lines are kept while they fit,
a first section too big on its own is cut at a word, and the rest is counted in a last line
"… and N more changes". Feed text is untrusted: the html renderer escapes every character of it and the
markdown renderer escapes markdown syntax, so neither produces live HTML or links. Pure functions.

Feed text is made inert by one function per output format: ``inert`` for terminals and plain text
(control characters shown as symbols, never executed), ``plain`` for plain-text messages (also no
mentions), ``md_escape`` for markdown, ``_escape`` for HTML; ``safe_url`` for the one thing from a feed
that may become a link (an item's own http(s) URL, percent-encoded so it cannot leave its link).
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from msgspec.structs import replace

from monitor import codec
from monitor.canonical import parse_canonical
from monitor.humanize import plural, shorten
from monitor.models import BlockKind, DiffOp, DocumentDiff, Move, Op, SectionDiff
from monitor.summary import MoveGroup, group_moves

CONTEXT_WORDS = 12          # unchanged words kept on each side of a change
MOVE_TEXTS = 3              # blocks quoted in one move line before "and N more"
RED, GREEN, BOLD, DIM, RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
ARROW = "\u2192"
SEP = " \u203a "
ELLIPSIS = "\u2026"
_WORDS = re.compile(r"\S+\s*")
_MD_SPECIAL = re.compile(r"[\\`*\[\]]|(?<!\w)_|_(?!\w)")     # "code_of_conduct" needs no escape
_PUNCTUATION = re.compile(r"[^\w\s]")   # what CommonMark's emphasis rules count as punctuation (or a symbol)
_STRIKE = re.compile(r"~(?=~)")       # a zero-width space after each "~" followed by another
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MD_LINE_START = re.compile(r"^(\s*)(#|[-+](?=\s)|\d+(?=[.)]))", re.M)
# C0 controls but tab and line feed, DEL, C1 controls, and the bidirectional overrides and isolates
# (which reorder what a terminal or chat client shows: "Trojan Source", CVE-2021-42574).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# "@everyone", "@here", "@channel", "@all", "@someone": a mention pings people in Discord, Slack,
# Mattermost, Teams...; an e-mail address (a word character before the "@") is not one.
_MENTION = re.compile(r"(?<![\w.+-])@(?=\w)")
_SLACK_CONTROL = re.compile(r"<(?=[!@#])")          # <!channel>, <@U123>, <#C123> in a plain-text message
_URL_SAFE = "/:?#@!$&*+,;=%~-._"                   # what stays as is in a URL; the rest is percent-encoded
ZWSP = "\u200b"


# ------------------------------------------------------------------------------------------------ inert text


def inert(text: str) -> str:
    """Feed text safe to print on a terminal: control characters are shown, never executed.

    C0 controls (ESC, BEL, BS, CR, ...) become their Unicode control pictures (ESC is \u241b), DEL
    is \u2421, C1 controls and bidi overrides are spelled out (``\\x9b``, ``\\u202e``). Tab and
    line feed stay.
    """
    return _CONTROLS.sub(_visible, text) if _CONTROLS.search(text) else text


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def unmention(text: str) -> str:
    """Feed text that pings nobody: a zero-width space after "@" and "<" of mentions and chat controls."""
    if "@" in text:
        text = _MENTION.sub("@" + ZWSP, text)
    if "<" in text:
        text = _SLACK_CONTROL.sub("<" + ZWSP, text)
    return text


def plain(text: str) -> str:
    """Feed text for a plain-text message: inert, and without mentions."""
    return unmention(inert(text))


def safe_url(url: Any) -> str:
    """An item's URL if it is a real http(s) or mailto URL, percent-encoded so that nothing in it can end a
    markdown link or an HTML attribute; else "" (feed links could be javascript:, or text made to look
    like a link followed by an image)."""
    text = str(url or "").strip()
    if not text or _CONTROLS.search(text) or any(ch.isspace() for ch in text):
        return ""
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        try:
            host, _ = parts.hostname, parts.port          # a bad port raises
        except ValueError:
            return ""
        if not host:
            return ""
    elif scheme != "mailto" or not parts.path:
        return ""
    return urllib.parse.quote(text, safe=_URL_SAFE)


def _inert_diff(diff: DocumentDiff) -> DocumentDiff:
    """The diff with every piece of feed text made inert (control characters shown)."""
    def ops(seq: Sequence[DiffOp]) -> tuple[DiffOp, ...]:
        return tuple(DiffOp(o.op, inert(o.text)) for o in seq)

    def path(p: Sequence[str]) -> tuple[str, ...]:
        return tuple(inert(x) for x in p)

    return replace(
        diff,
        sections=tuple(SectionDiff(path(s.path), ops(s.ops)) for s in diff.sections),
        moves=tuple(Move(inert(m.text), path(m.source), path(m.target), ops(m.edits)) for m in diff.moves),
        title=(inert(diff.title[0]), inert(diff.title[1])) if diff.title else None,
        link=tuple(inert(x) if x else x for x in diff.link) if diff.link else None,
        summary=inert(diff.summary))


def path_label(path: Sequence[str]) -> str:
    """ "A › B › C" (a heading's trailing colon dropped: "Discontinued activities:" reads as a name)."""
    return SEP.join(p.rstrip(":") or p for p in path) if path else "(top of the document)"


def move_labels(source: Sequence[str], target: Sequence[str]) -> tuple[str, str]:
    """Where a block moved from and to, without the heading path both share."""
    common = 0
    while common < min(len(source), len(target)) - 1 and source[common] == target[common]:
        common += 1
    return path_label(source[common:]), path_label(target[common:])


@dataclass(frozen=True, slots=True)
class _Section:
    """Section diffs of one heading path that follow each other, shown under one header."""

    path: tuple[str, ...]
    parts: tuple[tuple[DiffOp, ...], ...]


def _sections(diff: DocumentDiff) -> list[_Section]:
    out: list[_Section] = []
    for s in diff.sections:
        if out and out[-1].path == s.path:
            out[-1] = _Section(s.path, (*out[-1].parts, s.ops))
        else:
            out.append(_Section(s.path, (s.ops,)))
    return out


def trim_context(ops: Sequence[DiffOp], words: int = CONTEXT_WORDS) -> list[DiffOp]:
    """Shorten unchanged text to `words` words next to each change (an ellipsis marks a cut), line by line."""
    out: list[DiffOp] = []
    for k, o in enumerate(ops):
        if o.op != "equal":
            out.append(o)
            continue
        segments = o.text.split("\n")
        last = len(segments) - 1
        trimmed = []
        for n, seg in enumerate(segments):
            after = k > 0 and (n == 0 or (n == 1 and n != last))      # a change is just before
            before = k < len(ops) - 1 and (n == last or (n == last - 1 and n != 0))   # ... or just after
            trimmed.append(_trim(seg, keep_head=after or not before, keep_tail=before or not after, words=words))
        out.append(DiffOp(Op.EQUAL, "\n".join(trimmed)))
    return out


def _trim(text: str, *, keep_head: bool, keep_tail: bool, words: int) -> str:
    tokens = _WORDS.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if len(tokens) <= (2 * words if keep_head and keep_tail else words) + 1:
        return text
    if keep_head and keep_tail:
        return lead + "".join(tokens[:words]) + ELLIPSIS + " " + "".join(tokens[-words:])
    if keep_head:
        return lead + "".join(tokens[:words]).rstrip() + ELLIPSIS + (" " if text.endswith(" ") else "")
    return ELLIPSIS + ("" if tokens[-words - 1].endswith(" ") else " ") + "".join(tokens[-words:])


def _cut_ops(ops: Sequence[DiffOp], limit: int) -> list[DiffOp]:
    """The first `limit` characters of ops (cut at a space), then an ellipsis."""
    out: list[DiffOp] = []
    used = 0
    for o in ops:
        if used + len(o.text) <= limit:
            out.append(o)
            used += len(o.text)
            continue
        head = o.text[: max(0, limit - used)]
        head = head.rsplit(" ", 1)[0] if " " in head else ""
        if head.strip():
            out.append(DiffOp(o.op, head))
        out.append(DiffOp(Op.EQUAL, " " + ELLIPSIS))
        break
    return out


# --------------------------------------------------------------------------------------------- bounding


Chunk = Callable[[int | None], str]     # renders one section or move line, within a character budget if given


def _bounded(head: list[str], chunks: list[Chunk], joiner: str, max_chars: int | None,
             more: Callable[[int], str]) -> list[str]:
    """Head, then chunks while they fit in max_chars, then "… and N more changes" for the rest."""
    out = list(head)
    used = len(joiner.join(out))
    for k, make in enumerate(chunks):
        text = make(None)
        rest = len(chunks) - k - 1
        reserve = len(joiner) + len(more(rest)) if rest else 0
        if max_chars is None or used + len(joiner) + len(text) + reserve <= max_chars:
            out.append(text)
            used += len(joiner) + len(text)
            continue
        if k == 0:   # nothing shown yet: show the start of this one rather than nothing
            room = max_chars - used - 2 * len(joiner) - len(more(rest))
            cut = _shrink(make, room)
            if cut is not None:
                return [*out, cut, more(rest)] if rest else [*out, cut]
        out.append(more(len(chunks) - k))
        return out
    return out


def _shrink(make: Chunk, room: int) -> str | None:
    """make(budget) for the largest budget whose result fits in `room` characters."""
    budget = room
    while budget > 20:
        text = make(budget)
        if len(text) <= room:
            return text
        budget = min(budget - 1, budget * room // max(1, len(text)))
    return None


def _bodies(s: _Section, budget: int | None, show: Callable[[str, str], str]) -> list[str]:
    """Each part of a section rendered by `show(op, text)`: context trimmed, cut to `budget` characters."""
    out = []
    for ops in s.parts:
        shown = trim_context(ops)
        if budget is not None:
            shown = _cut_ops(shown, budget)
        out.append("".join(show(o.op, o.text) for o in shown))
    return out


def _more_text(hint: str | None) -> Callable[[int], str]:
    def more(n: int) -> str:
        return f"{ELLIPSIS} and {plural(n, 'more change')}" + (f" \u2014 {hint}" if hint else "")
    return more


def _move_texts(g: MoveGroup, show: Callable[[str, str], str]) -> str:
    """Quoted texts of a move group: edited blocks first (their changes matter), then up to MOVE_TEXTS."""
    moves = g.moves if g.section is None else [m for m in g.moves if m.edits]
    chosen = {id(m) for m in sorted(moves, key=lambda m: not m.edits)[:MOVE_TEXTS]}
    shown = [m for m in moves if id(m) in chosen]
    quoted = ", ".join("\u201c" + ("".join(show(o.op, o.text) for o in m.edits) if m.edits else
                                   show("equal", shorten(m.text, 80))) + "\u201d" for m in shown)
    rest = len(moves) - len(shown)
    return quoted + (f" and {rest} more" if rest else "")


def _move_phrase(g: MoveGroup, show: Callable[[str, str], str], place: Callable[[str], str]) -> str:
    """ "Moved “A”, “B” from X to Y", "Re-ordered in X: …", "Moved section “S” (8 blocks) within X"."""
    src, dst = move_labels(g.source, g.target)
    where = f"within {place(path_label(g.target))}" if g.within else f"from {place(src)} to {place(dst)}"
    if g.section is not None:
        edited = _move_texts(g, show)
        blocks = f" ({len(g.moves)} blocks{', edited: ' + edited if edited else ''})"
        return f"Moved section \u201c{show('equal', shorten(g.section, 80))}\u201d{blocks} {where}"
    if g.within and len(g.moves) > 1:
        return f"Re-ordered {where}: {_move_texts(g, show)}"
    return f"Moved {_move_texts(g, show)} {where}"


# ------------------------------------------------------------------------------------------------ text


def render_text(diff: DocumentDiff, *, color: bool = False, title: str | None = None,
                max_chars: int | None = None, more_hint: str | None = None) -> str:
    """Plain text for terminals and text e-mail: [-deleted-] {+inserted+}, in red/green too when `color`
    (colour never carries the change alone). Control characters in feed text are shown, not sent."""
    diff = _inert_diff(diff)
    head = [_c(BOLD, inert(title), color)] if title else []
    head += [_c(DIM, diff.summary, color)] if diff.summary else []
    if diff.title:
        head.append(f"Title: {_mark_text('delete', diff.title[0], color)} {ARROW} "
                    f"{_mark_text('insert', diff.title[1], color)}")
    if diff.link:
        head.append(f"Link: {diff.link[0] or '-'} {ARROW} {diff.link[1] or '-'}")
    chunks: list[Chunk] = [_text_section(s, color) for s in _sections(diff)]
    chunks += [_text_move(g, color) for g in group_moves(diff.moves)]
    return "\n\n".join(_bounded(["\n".join(head)] if head else [], chunks, "\n\n", max_chars,
                                _more_text(more_hint))).rstrip() + "\n"


def _text_section(s: _Section, color: bool) -> Chunk:
    def make(budget: int | None) -> str:
        body = f"\n{ELLIPSIS}\n".join(_bodies(s, budget, lambda op, text: _mark_text(op, text, color)))
        return _c(BOLD, path_label(s.path), color) + "\n" + "\n".join("  " + line for line in body.split("\n"))
    return make


def _text_move(g: MoveGroup, color: bool) -> Chunk:
    def make(budget: int | None) -> str:
        line = _move_phrase(g, lambda op, t: _mark_text(op, t, color), lambda label: label)
        return line if budget is None else shorten(line, max(budget, 2))
    return make


def _mark_text(op: str, text: str, color: bool) -> str:
    if op == "equal" or not text:
        return text
    if "\n" in text:   # never mark a line break: each line gets its own marks
        return "\n".join(_mark_text(op, line, color) for line in text.split("\n"))
    marked = f"[-{text}-]" if op == "delete" else f"{{+{text}+}}"
    return _c(RED if op == "delete" else GREEN, marked, True) if color else marked


def _c(code: str, text: str, color: bool) -> str:
    return f"{code}{text}{RESET}" if color else text


# ------------------------------------------------------------------------------------------------ markdown


def md_escape(text: str) -> str:
    """Feed text made inert in markdown: no HTML, no links, no emphasis, no headings or lists.

    ``&``, ``<`` and ``>`` become entities (the form Python-Markdown, CommonMark and Slack all read as
    plain characters; a backslash would show in some of them); the characters that start emphasis,
    code and links are backslash-escaped, and so are block markers at a line start.
    """
    return _md_line_starts(_md_inline(text))


def md_canonical(text: str) -> str:
    """Canonical text as safe markdown: its own headings and list items keep their markdown form (they are
    feedwatch's markup), while everything the feed wrote is escaped."""
    lines = []
    for block in parse_canonical(text):
        body = _md_inline(block.text)
        if block.kind is BlockKind.HEADING:
            lines.append("#" * block.level + " " + body)
        elif block.kind is BlockKind.ITEM:
            lines.append("  " * (block.level - 1) + "- " + body)
        else:
            lines.append(_md_line_starts(body))
    return "\n".join(lines)


def _md_inline(text: str) -> str:
    """md_escape without the line-start rule, for pieces of a line."""
    text = unmention(inert(text))
    if "~~" in text:    # strikethrough (GFM, Discord, Mattermost), which feedwatch's own diffs use for deletions
        text = _STRIKE.sub("~" + ZWSP, text)
    text = "".join(_MD_ENTITIES.get(ch, ch) for ch in text) if any(ch in text for ch in "&<>") else text
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _md_line_starts(text: str) -> str:
    """Escape "# ", "- ", "+ " and "1." where they would start a heading or a list."""
    return _MD_LINE_START.sub(lambda m: m.group(1) + _line_start(m.group(2)), text)


def _line_start(marker: str) -> str:
    return marker + "\\" if marker[0].isdigit() else "\\" + marker


def render_markdown(diff: DocumentDiff, *, max_length: int | None = 4000, more_hint: str | None = None,
                    title: str | None = None) -> str:
    """Compact markdown for chat: bold inserted, struck deleted, italic section headings and places, one line
    per move, at most `max_length` characters."""
    head = [f"**{md_escape(title)}**"] if title else []
    head += [f"_{md_escape(diff.summary)}_"] if diff.summary else []
    if diff.title:
        head.append(f"Title: ~~{md_escape(diff.title[0])}~~ {ARROW} **{md_escape(diff.title[1])}**")
    if diff.link:
        head.append(f"Link: {md_escape(diff.link[0] or '-')} {ARROW} {md_escape(diff.link[1] or '-')}")
    chunks: list[Chunk] = [_md_section(s) for s in _sections(diff)]
    chunks += [_md_move(g) for g in group_moves(diff.moves)]
    return "\n\n".join(_bounded(head, chunks, "\n\n", max_length, lambda n: md_escape(_more_text(more_hint)(n))))


def _md_section(s: _Section) -> Chunk:
    def make(budget: int | None) -> str:
        body = _md_line_starts(f"\n{ELLIPSIS}\n".join(_bodies(s, budget, _md_op)))
        return f"\u00a7 _{md_escape(path_label(s.path))}_\n" + body.replace("\n", "  \n")
    return make


def _md_move(g: MoveGroup) -> Chunk:
    def make(budget: int | None) -> str:
        if budget is not None:
            return md_escape(shorten(_move_phrase(g, lambda op, t: t, lambda label: label), max(budget, 2)))
        sign = "\u2195" if g.within else "\u27a1"
        return f"{sign} " + _move_phrase(g, _md_op, lambda label: f"_{md_escape(label)}_")
    return make


def _md_op(op: str, text: str) -> str:
    if op == "equal":
        return _md_inline(text)
    mark = "~~" if op == "delete" else "**"
    return "\n".join(_wrap(line, mark, mark, _md_marked) for line in text.split("\n"))


def _md_marked(text: str) -> str:
    """Escaped text between emphasis marks. CommonMark (GFM, Discord, Mattermost) opens "**" only before
    a word character, or before punctuation after a space, so "here**, more**" shows its asterisks: a
    zero-width space between a mark and punctuation lets the marks work whatever is around them."""
    text = _md_inline(text)
    if _PUNCTUATION.match(text):
        text = ZWSP + text
    if _PUNCTUATION.match(text[-1:]):
        text += ZWSP
    return text


def _wrap(text: str, before: str, after: str, escape: Callable[[str], str]) -> str:
    """Mark `text`, keeping its leading and trailing spaces outside the marks ("x **y** z", not "x** y **z")."""
    core = text.strip()
    if not core:
        return text
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()):]
    return f"{lead}{before}{escape(core)}{after}{trail}"


# ------------------------------------------------------------------------------------------------ html

_STYLE = {
    "box": "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5;"
           "color:#1f2328;",
    "title": "margin:0 0 2px 0;font-weight:600;",
    "summary": "margin:0 0 8px 0;color:#59636e;",
    "section": "margin:12px 0 4px 0;font-weight:600;color:#1f2328;",
    "body": "margin:0 0 8px 0;padding:8px 12px;background-color:#f6f8fa;border-left:3px solid #d1d9e0;"
            "word-wrap:break-word;",
    "gap": "color:#59636e;",
    "del": "background-color:#ffebe9;color:#82071e;text-decoration:line-through;",
    "ins": "background-color:#dafbe1;color:#116329;text-decoration:none;",
    "line": "margin:4px 0;",
    "more": "margin:8px 0 0 0;color:#59636e;",
}


def render_html(diff: DocumentDiff, *, title: str | None = None, max_chars: int | None = None,
                more_hint: str | None = None) -> str:
    """An HTML fragment for e-mail: inline styles only (mail clients drop <style>), <br> line breaks
    (no reliance on white-space), <ins>/<del> with colours, every character of feed text escaped."""
    e = _escape
    diff = _inert_diff(diff)
    head = [f'<div style="{_STYLE["box"]}">']
    head += [f'<p style="{_STYLE["title"]}">{e(title)}</p>'] if title else []
    head += [f'<p style="{_STYLE["summary"]}">{e(diff.summary)}</p>'] if diff.summary else []
    if diff.title:
        head.append(f'<p style="{_STYLE["line"]}">Title: {_html_op("delete", diff.title[0])} {ARROW} '
                    f'{_html_op("insert", diff.title[1])}</p>')
    if diff.link:
        head.append(f'<p style="{_STYLE["line"]}">Link: {e(diff.link[0] or "-")} {ARROW} {e(diff.link[1] or "-")}</p>')
    chunks: list[Chunk] = [_html_section(s) for s in _sections(diff)]
    chunks += [_html_move(g) for g in group_moves(diff.moves)]
    limit = max_chars - len("\n</div>") if max_chars is not None else None

    def more(n: int) -> str:
        return f'<p style="{_STYLE["more"]}">{e(_more_text(more_hint)(n))}</p>'

    return "\n".join([*_bounded(["\n".join(head)], chunks, "\n", limit, more), "</div>"])


def _html_section(s: _Section) -> Chunk:
    def make(budget: int | None) -> str:
        body = f'<br>\n<span style="{_STYLE["gap"]}">{ELLIPSIS}</span><br>\n'.join(_bodies(s, budget, _html_op))
        return (f'<p style="{_STYLE["section"]}">{_escape(path_label(s.path))}</p>\n'
                f'<div style="{_STYLE["body"]}">{body}</div>')
    return make


def _html_move(g: MoveGroup) -> Chunk:
    def make(budget: int | None) -> str:
        if budget is not None:
            return f'<p style="{_STYLE["line"]}">{_escape(shorten(_move_phrase(g, lambda o, t: t, str), budget))}</p>'
        sign = "\u2195" if g.within else "\u27a1"
        phrase = _move_phrase(g, _html_op, lambda label: f"<em>{_escape(label)}</em>")
        return f'<p style="{_STYLE["line"]}">{sign} {phrase}</p>'
    return make


def _escape(text: str) -> str:
    """Escape feed text for HTML; line breaks become <br>, runs of spaces keep their width."""
    return html.escape(inert(text), quote=True).replace("\n", "<br>\n").replace("  ", " &nbsp;")


def _html_op(op: str, text: str) -> str:
    if op == "equal":
        return _escape(text)
    tag, style = ("del", _STYLE["del"]) if op == "delete" else ("ins", _STYLE["ins"])
    return "<br>\n".join(f'<{tag} style="{style}">{_escape(line)}</{tag}>' if line else ""
                         for line in text.split("\n"))


# ------------------------------------------------------------------------------------------------ json


def render_json(diff: DocumentDiff, *, document: str, from_version: int | None, to_version: int) -> dict[str, Any]:
    """The `diff --format json` shape of DESIGN §3 (plus summary, title/link changes, moves' word ops)."""
    return {"document": document, "from": from_version, "to": to_version, **codec.diff_to_dict(diff)}


def sections_of(diff: DocumentDiff | None) -> list[str]:
    """Changed section paths as "A > B" strings (for `run --json`)."""
    if diff is None:
        return []
    seen: dict[str, None] = {}
    for s in diff.sections:
        seen[" > ".join(s.path)] = None
    for m in diff.moves:
        seen[" > ".join(m.target)] = None
    return [p for p in seen if p]
