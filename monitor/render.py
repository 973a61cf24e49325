"""Renderers of a DocumentDiff: text (terminal), markdown (chat), html (email, reports), json.

All of them show the same things in the same order: title/link changes, then each changed section under
its heading path with the changed words marked and a little context, then moves. Long unchanged runs are
trimmed to a few words of context. Feed text is untrusted: the html renderer escapes every character of
it, the markdown renderer escapes markdown syntax. Pure functions.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from monitor import codec
from monitor.models import DiffOp, DocumentDiff, Move

CONTEXT_WORDS = 12
_WORDS = re.compile(r"\S+\s*")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
RED, GREEN, BOLD, DIM, RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
ARROW = "\u2192"
SEP = " \u203a "


def path_label(path: Sequence[str]) -> str:
    return SEP.join(path) if path else "(top of the document)"


def move_labels(source: Sequence[str], target: Sequence[str]) -> tuple[str, str]:
    """Where a block moved from and to, without the heading path both share."""
    common = 0
    while common < min(len(source), len(target)) - 1 and source[common] == target[common]:
        common += 1
    return path_label(source[common:]), path_label(target[common:])


def trim_context(ops: Sequence[DiffOp], words: int = CONTEXT_WORDS) -> list[DiffOp]:
    """Shorten long unchanged runs to `words` words on each side of a change (an ellipsis marks the cut)."""
    out: list[DiffOp] = []
    for i, o in enumerate(ops):
        if o.op != "equal":
            out.append(o)
            continue
        out.append(DiffOp("equal", _trim(o.text, keep_head=i > 0, keep_tail=i < len(ops) - 1, words=words)))
    return out


def _trim(text: str, *, keep_head: bool, keep_tail: bool, words: int) -> str:
    lines = text.split("\n")
    if len(lines) > 2:   # whole unchanged blocks in between: keep the edges only
        text = "\n".join([lines[0], "\u2026", lines[-1]]) if keep_head and keep_tail else (
            lines[0] if keep_head else lines[-1])
    tokens = _WORDS.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if len(tokens) <= words * 2 + 1:
        return text
    head = "".join(tokens[:words]) if keep_head else ""
    tail = "".join(tokens[-words:]) if keep_tail else ""
    return lead + head + "\u2026 " + tail if head else "\u2026" + tail


# ------------------------------------------------------------------------------------------------ text


def render_text(diff: DocumentDiff, *, color: bool = False, title: str | None = None) -> str:
    lines: list[str] = []
    if title:
        lines.append(_c(BOLD, title, color))
    if diff.summary:
        lines.append(_c(DIM, diff.summary, color))
    if diff.title:
        lines.append(f"Title: {_mark_text('delete', diff.title[0], color)} {ARROW} "
                     f"{_mark_text('insert', diff.title[1], color)}")
    if diff.link:
        lines.append(f"Link: {diff.link[0] or '-'} {ARROW} {diff.link[1] or '-'}")
    for section in diff.sections:
        lines.append("")
        lines.append(_c(BOLD, path_label(section.path), color))
        body = "".join(_mark_text(o.op, o.text, color) for o in trim_context(section.ops))
        lines.extend("  " + line for line in body.split("\n"))
    if diff.moves:
        lines.append("")
        lines.extend(_move_text(m, color) for m in diff.moves)
    return "\n".join(lines).rstrip() + "\n"


def _move_text(m: Move, color: bool) -> str:
    text = "".join(_mark_text(o.op, o.text, color) for o in m.edits) if m.edits else m.text
    if m.source == m.target:
        return f"moved \u201c{text}\u201d within {path_label(m.target)}"
    src, dst = move_labels(m.source, m.target)
    return f"moved \u201c{text}\u201d: {src} {ARROW} {dst}"


def _mark_text(op: str, text: str, color: bool) -> str:
    if op == "equal" or not text:
        return text
    if color:
        return _c(RED if op == "delete" else GREEN, text, True)
    return f"[-{text}-]" if op == "delete" else f"{{+{text}+}}"


def _c(code: str, text: str, color: bool) -> str:
    return f"{code}{text}{RESET}" if color else text


# ------------------------------------------------------------------------------------------------ markdown


def md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def render_markdown(diff: DocumentDiff, *, max_length: int = 4000, more_hint: str | None = None,
                    title: str | None = None) -> str:
    """Compact markdown for chat: one line per move, at most `max_length` characters."""
    blocks = list(_markdown_blocks(diff, title))
    out: list[str] = []
    used = 0
    for i, block in enumerate(blocks):
        if used + len(block) > max_length and out:
            rest = len(blocks) - i
            hint = f" \u2014 {more_hint}" if more_hint else ""
            out.append(f"\u2026 and {rest} more change{'s' if rest != 1 else ''}{hint}")
            break
        if len(block) > max_length:
            block = block[: max(0, max_length - used - 1)] + "\u2026"
        out.append(block)
        used += len(block) + 2
    return "\n\n".join(out)


def _markdown_blocks(diff: DocumentDiff, title: str | None) -> Iterator[str]:
    if title:
        yield f"**{md_escape(title)}**"
    if diff.summary:
        yield f"_{md_escape(diff.summary)}_"
    if diff.title:
        yield f"Title: ~~{md_escape(diff.title[0])}~~ {ARROW} **{md_escape(diff.title[1])}**"
    for section in diff.sections:
        body = "".join(_md_op(o) for o in trim_context(section.ops))
        yield f"**{md_escape(path_label(section.path))}**\n" + body.replace("\n", "  \n")
    for m in diff.moves:
        text = "".join(_md_op(o) for o in m.edits) if m.edits else md_escape(m.text)
        if m.source == m.target:
            yield f"\u2195 Moved \u201c{text}\u201d within _{md_escape(path_label(m.target))}_"
        else:
            src, dst = move_labels(m.source, m.target)
            yield f"\u27a1 Moved \u201c{text}\u201d from _{md_escape(src)}_ to _{md_escape(dst)}_"


def _md_op(o: DiffOp) -> str:
    if o.op == "equal":
        return md_escape(o.text)
    mark = "~~" if o.op == "delete" else "**"
    return "\n".join(_wrap(line, mark, mark, md_escape) for line in o.text.split("\n"))


def _wrap(text: str, before: str, after: str, escape: Callable[[str], str]) -> str:
    """Mark `text`, keeping its leading and trailing spaces outside the marks ("x **y** z", not "x** y **z")."""
    core = text.strip()
    if not core:
        return text
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()):]
    return f"{lead}{before}{escape(core)}{after}{trail}"


# ------------------------------------------------------------------------------------------------ html

_STYLE = {
    "box": "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5;"
           "color:#1f2328;",
    "summary": "color:#59636e;margin:0 0 8px 0;",
    "section": "margin:12px 0 4px 0;font-size:14px;font-weight:600;color:#1f2328;",
    "body": "margin:0 0 8px 0;padding:8px 12px;background:#f6f8fa;border-left:3px solid #d1d9e0;"
            "white-space:pre-wrap;word-wrap:break-word;",
    "del": "background:#ffebe9;color:#82071e;text-decoration:line-through;",
    "ins": "background:#dafbe1;color:#116329;text-decoration:none;font-weight:600;",
    "move": "margin:4px 0;color:#1f2328;",
}


def render_html(diff: DocumentDiff, *, title: str | None = None) -> str:
    """An HTML fragment with inline styles (mail clients drop <style>), every feed character escaped."""
    e = html.escape
    parts = [f'<div style="{_STYLE["box"]}">']
    if title:
        parts.append(f'<p style="margin:0;font-weight:600;">{e(title)}</p>')
    if diff.summary:
        parts.append(f'<p style="{_STYLE["summary"]}">{e(diff.summary)}</p>')
    if diff.title:
        parts.append(f'<p style="{_STYLE["move"]}">Title: {_html_op(DiffOp("delete", diff.title[0]))} {ARROW} '
                     f'{_html_op(DiffOp("insert", diff.title[1]))}</p>')
    if diff.link:
        parts.append(f'<p style="{_STYLE["move"]}">Link: {e(diff.link[0] or "-")} {ARROW} '
                     f'{e(diff.link[1] or "-")}</p>')
    for section in diff.sections:
        parts.append(f'<p style="{_STYLE["section"]}">{e(path_label(section.path))}</p>')
        body = "".join(_html_op(o) for o in trim_context(section.ops))
        parts.append(f'<div style="{_STYLE["body"]}">{body}</div>')
    for m in diff.moves:
        text = "".join(_html_op(o) for o in m.edits) if m.edits else e(m.text)
        src, dst = move_labels(m.source, m.target)
        where = (f"within <em>{e(path_label(m.target))}</em>" if m.source == m.target else
                 f"from <em>{e(src)}</em> to <em>{e(dst)}</em>")
        parts.append(f'<p style="{_STYLE["move"]}">\u27a1 Moved \u201c{text}\u201d {where}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def _html_op(o: DiffOp) -> str:
    text = html.escape(o.text)
    if o.op == "delete":
        return f'<del style="{_STYLE["del"]}">{text}</del>'
    if o.op == "insert":
        return f'<ins style="{_STYLE["ins"]}">{text}</ins>'
    return text


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

