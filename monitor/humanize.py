"""How times, durations and counts are shown to people and read from them, everywhere (history, status,
run, check, reports, the config).

Times follow one rule. They are stored and exchanged in UTC (``--json``, history files and Atom use RFC 3339
with ``Z``: :func:`iso_z`). Shown to a person they are in the local time zone — the machine's, or ``$TZ`` —
to the minute, with the zone named: "2026-03-01 14:05 CET". Input follows the same rule: a naive
``--since`` is local time (:func:`parse_when`). Durations have one grammar (:func:`seconds_of`): "90s",
"30m", "6h", "1d12h", "2w", for config intervals and for ages such as ``--since 30d``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from monitor.errors import UsageError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_z(t: datetime) -> str:
    """`t` in UTC as RFC 3339 to the second, with ``Z``: "2026-03-01T13:05:00Z"."""
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def stamp(t: datetime | None) -> str:
    """`t` in the local time zone, to the minute, with the zone's name; "-" for no time."""
    return t.astimezone().strftime("%Y-%m-%d %H:%M %Z").rstrip() if t else "-"


def zone_name(at: datetime) -> str:
    """The local time zone's name at `at` ("UTC", "CET", "CEST")."""
    return at.astimezone().strftime("%Z") or "local time"


def first_line(text: str, limit: int | None = None) -> str:
    """The first line of `text` that is not blank, stripped, at most `limit` characters ("" if none): what a
    one-line message quotes of a multi-line one (an exception's, a page's)."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if limit is None else line[:limit]


def shorten(text: str, limit: int, *, strip: str | None = None) -> str:
    """At most `limit` characters, cut at a space when there is one, with an ellipsis; the `strip` characters
    (default: whitespace) left at the cut are removed."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut.strip() else cut).rstrip(strip) + "\u2026"


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 feed", "2 feeds", "0 feeds" (`many` for irregular plurals: "1 entry", "2 entries")."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def seconds_of(text: str, *, bare: bool = False) -> float | None:
    """Seconds in a duration: '90s', '30m', '6h', '1d', '1h30m', '1d 12h' (case-insensitive); None if it is
    not one. With `bare`, a number alone is seconds (the config's intervals); an age never is one."""
    text = text.strip().lower()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos or (not m.group(2) and (not bare or pos or m.end() != len(text))):
            return None     # a bare number is seconds only when it is the whole value
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    return total if text and pos == len(text) else None


def parse_when(value: str, *, now: datetime, option: str = "--since", end: bool = False,
               command: str = "report") -> datetime:
    """An aware UTC datetime from an ISO date/date-time or an age before `now` ("30d", "12h", "1d12h").

    A naive date-time is local time. A date alone means the start of that (local) day, or with
    ``end=True`` (for --until) the end of it, so ``--until 2024-03-31`` includes the 31st.
    """
    text = value.strip()
    seconds = seconds_of(text)
    try:
        if seconds is not None:
            return now - timedelta(seconds=seconds)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(f"{command}: {option} {value!r}: not a date, date-time or age "
                             "(e.g. 2024-01-31, 2024-01-31T09:00Z, 30d, 12h)") from None
        if end and _DATE_ONLY.fullmatch(text):
            parsed += timedelta(days=1)
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()    # naive: the local time zone
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):     # past year 9999 or before year 1, once in UTC
        raise UsageError(f"{command}: {option} {value!r}: out of range (years 1 to 9999)") from None
