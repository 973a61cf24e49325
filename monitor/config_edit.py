"""Adding feeds to the user's config file in place: every byte already there stays where it was.

ruamel.yaml reads the file (round-trip mode, so it knows where each node starts) to find the end of the
``feeds:`` list; the new entries, rendered by ruamel.yaml in the list's own indentation, are inserted there
as text. Nothing else in the file is re-emitted: comments, blank lines, quoting, key order and
indentation are the user's. Comment lines at column 0 right before the next top-level key belong to that
key and stay with it. A flow-style list (``feeds: []`` or ``feeds: [{name: a, url: b}]``) is the one case
rewritten: its lines become a block list holding the same entries and the new ones.

The result is checked with monitor.config before the file is replaced (atomically, mode kept).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from monitor import config
from monitor.errors import ConfigError
from monitor.files import write_atomically


def render_entries(entries: Sequence[dict[str, Any]], *, dash: int = 2, offset: int = 2, new: bool = True) -> str:
    """`entries` as block-list items: the dash at column `dash`, keys `offset` columns after it. `new`
    entries' values are written to be read back as they are (a `$` as `$$`); entries already in the file
    (`new=False`, a flow-style list rewritten) keep their ``${VAR}``s."""
    out = []
    for entry in entries:
        lines = _dump(entry, new=new).splitlines()
        out.append(" " * dash + "-" + " " * (offset - 1) + lines[0])
        out.extend(" " * (dash + offset) + line for line in lines[1:])
    return "".join(line + "\n" for line in out)


def add_feeds(text: str, entries: Sequence[dict[str, Any]], *, source: str = "<config>") -> str:
    """The config `text` with `entries` appended to its ``feeds:`` list."""
    if not entries:
        return text
    data = _load(text, source)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    feeds = data.get("feeds") if isinstance(data, CommentedMap) else None
    if not isinstance(data, CommentedMap) or "feeds" not in data:
        return "".join(lines) + "feeds:\n" + render_entries(entries)
    start: int = data.lc.key("feeds")[0]
    end = _section_end(lines, data, "feeds")
    if isinstance(feeds, CommentedSeq) and len(feeds) and not feeds.fa.flow_style():
        dash, offset = _item_layout(lines, feeds)
        return "".join(lines[:end]) + render_entries(entries, dash=dash, offset=offset) + "".join(lines[end:])
    if feeds is not None and not isinstance(feeds, CommentedSeq):
        raise ConfigError("'feeds' is not a list; cannot add to it", source=source, line=start + 1)
    existing = [dict(item) for item in feeds or ()]
    key_line = lines[start]
    comment = key_line[key_line.index("#"):].rstrip("\n") if "#" in key_line.split("feeds", 1)[1] else ""
    head = key_line[:key_line.index("feeds")] + "feeds:" + (f"  {comment}" if comment else "") + "\n"
    return "".join(lines[:start]) + head + render_entries(existing, new=False) + render_entries(entries) + \
        "".join(lines[end:])


def append_to_file(path: Path, entries: Sequence[dict[str, Any]]) -> str:
    """Add `entries` to the config file at `path` (created if missing) and return the new text. The new
    text must load as a valid config before it replaces the file."""
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from None
    new = add_feeds(text, entries, source=str(path))
    try:
        config.loads(new, source=str(path), base_dir=path.resolve().parent)
    except ConfigError as exc:   # its line numbers are the new text's, which is not written: say so
        raise ConfigError(f"the new feeds would make it invalid, so nothing was added ({exc.message})",
                          source=str(path)) from None
    _replace(path, new)
    return new


def _load(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", source=source,
                          line=mark.line + 1 if mark is not None else None) from None


def _dump(entry: dict[str, Any], *, new: bool) -> str:
    yaml = YAML(typ="rt")
    yaml.width = 4096                 # never fold a long URL
    out = io.StringIO()
    yaml.dump({key: _as_written(value, new=new) for key, value in entry.items()}, out)
    return str(out.getvalue())


_RESOLVER = pyyaml.resolver.Resolver()


def _as_written(value: Any, *, new: bool = True) -> Any:
    """`value` as it must be written for feedwatch's loader to read it back as it is: ruamel writes YAML 1.2,
    which leaves a string such as ``yes``, ``on`` or ``no`` plain, and PyYAML (YAML 1.1) reads those as
    booleans; and the loader fills in ``${VAR}``, so every ``$`` is written ``$$`` (a URL from someone
    else's OPML file must not send this machine's environment, say ``?k=${SMTP_PASSWORD}``, to its server)."""
    if isinstance(value, list | tuple | CommentedSeq):
        return [_as_written(v, new=new) for v in value]
    if isinstance(value, str):
        value = value.replace("$", "$$") if new else value
        if _plain_tag(value) != _STR:
            return DoubleQuotedScalarString(value)
    return value


_STR = "tag:yaml.org,2002:str"


def _plain_tag(text: str) -> str:
    """The tag PyYAML gives `text` written as a plain scalar."""
    tag: str = _RESOLVER.resolve(pyyaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return tag


def _section_end(lines: list[str], data: CommentedMap, key: str) -> int:
    """The index of the line after `key`'s value: before the next top-level key and the column-0 comments
    and blank lines leading up to it."""
    keys = list(data)
    following = keys[keys.index(key) + 1:]
    end = data.lc.key(following[0])[0] if following else len(lines)
    while end > 0 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return end


def _item_layout(lines: list[str], feeds: CommentedSeq) -> tuple[int, int]:
    """(column of the dash, columns from dash to key) of the list's first item."""
    line, col = feeds.lc.item(0)
    text = lines[line]
    dash = text.find("-")
    return (dash, col - dash) if 0 <= dash < col else (2, 2)


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all, keeping the file's mode (and a symbolic link a link)."""
    write_atomically(path, [text.encode("utf-8")])

