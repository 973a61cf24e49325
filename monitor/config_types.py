"""Check config values against the config's typed schema, reporting *every* problem in YAML's terms.

msgspec converts a valid document in one call, but stops at the first error and speaks JSON ("Expected
`array`, got `object`"). This walks the YAML data and the schema's types side by side instead and
collects one message per problem, keyed by its path (``feeds[2].interval``): unknown keys (with a "did
you mean"), missing required keys, wrong kinds of value ("expected a list, got a mapping"), values that
are not among an enum's choices ("'pdf' is not one of: text, markdown, html") and numbers out of range.
Data without problems converts with msgspec exactly as before.
"""

from __future__ import annotations

import difflib
import functools
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import msgspec

_KINDS: dict[type, str] = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
                           type(None): "nothing (null)"}


def problems(value: Any, typ: Any, path: str) -> Iterator[tuple[str, str]]:
    """(key path, message) for every way `value` does not fit `typ`; nothing when it fits."""
    origin = get_origin(typ)
    if origin is Annotated:
        base = get_args(typ)[0]
        found = list(problems(value, base, path))
        yield from found
        if not found:
            yield from _constraints(value, typ, path)
    elif isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        yield from _struct(value, typ, path)
    elif origin in (tuple, list):
        if not isinstance(value, list):
            yield path, f"expected a list, got {describe(value)}"
            return
        inner = get_args(typ)[0]
        for i, item in enumerate(value):
            yield from problems(item, inner, f"{path}[{i}]")
    elif origin is dict:
        if not isinstance(value, dict):
            yield path, f"expected a mapping (key: value), got {describe(value)}"
            return
        inner = get_args(typ)[1]
        for key, item in value.items():
            yield from problems(item, inner, f"{path}.{key}" if path else str(key))
    elif origin is Literal:
        choices = get_args(typ)
        if value not in choices:
            shown = f"'{value}'" if isinstance(value, str) else describe(value)
            yield path, f"{shown} is not one of: {', '.join(map(str, choices))}"
    elif origin in (Union, types.UnionType):
        yield from _union(value, typ, path)
    elif typ is Any:
        return
    elif not _converts(value, typ):
        yield path, f"expected {expected(typ)}, got {describe(value)}"


def _struct(value: Any, typ: type[msgspec.Struct], path: str) -> Iterator[tuple[str, str]]:
    if not isinstance(value, dict):
        yield path, f"expected a mapping (key: value), got {describe(value)}"
        return
    hints = _hints(typ)
    fields = typ.__struct_fields__
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(str(key), sorted(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            yield f"{path}.{key}" if path else str(key), f"unknown key{hint}"
    required = set(fields[:len(fields) - len(typ.__struct_defaults__)])
    for key in fields:
        if key in value:
            yield from problems(value[key], hints[key], f"{path}.{key}" if path else key)
        elif key in required:
            yield path, f"missing required key '{key}'"


def _union(value: Any, typ: Any, path: str) -> Iterator[tuple[str, str]]:
    arms = [a for a in get_args(typ) if a is not type(None)]
    if value is None and len(arms) < len(get_args(typ)):
        return
    if len(arms) == 1:            # X | None: X's own, precise problems
        yield from problems(value, arms[0], path)
        return
    if not any(not list(problems(value, arm, path)) for arm in arms):
        yield path, f"expected {' or '.join(expected(a) for a in arms)}, got {describe(value)}"


def _constraints(value: Any, typ: Any, path: str) -> Iterator[tuple[str, str]]:
    try:
        msgspec.convert(value, typ)
    except msgspec.ValidationError:
        meta = next((m for m in get_args(typ)[1:] if isinstance(m, msgspec.Meta)), None)
        if meta is not None and meta.ge is not None:
            yield path, f"must be {meta.ge} or more, got {value}"
        else:
            yield path, f"{describe(value)} is not allowed here"


def _converts(value: Any, typ: Any) -> bool:
    try:
        msgspec.convert(value, typ)
    except msgspec.ValidationError:
        return False
    return True


def expected(typ: Any) -> str:
    """What a type is called in YAML's terms: "a string", "a list", "a mapping (key: value)"."""
    origin = get_origin(typ)
    if origin is Annotated:
        return expected(get_args(typ)[0])
    if origin in (tuple, list):
        return "a list"
    if origin is dict or (isinstance(typ, type) and issubclass(typ, msgspec.Struct)):
        return "a mapping (key: value)"
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(typ)))
    return _KINDS.get(typ, getattr(typ, "__name__", str(typ)))


def describe(value: Any) -> str:
    """A YAML value as a user would name it: "a mapping", "a list", "the string 'three'", "true"."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    text = str(value)
    return f"the string '{text if len(text) <= 60 else text[:57] + '...'}'"


@functools.cache
def _hints(typ: type) -> dict[str, Any]:
    """A struct's field types (evaluating annotations is slow: once per type)."""
    return get_type_hints(typ, include_extras=True)
