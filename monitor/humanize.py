"""How times and counts are shown to people, everywhere (history, status, run, check, reports).

Times follow one rule. They are stored and exchanged in UTC (``--json``, history files and Atom use RFC 3339
with ``Z``). Shown to a person they are in the local time zone — the machine's, or ``$TZ`` — to the minute,
with the zone named: "2026-03-01 14:05 CET". Input follows the same rule: a naive ``--since`` is local time.
"""

from __future__ import annotations

from datetime import datetime


def stamp(t: datetime | None) -> str:
    """`t` in the local time zone, to the minute, with the zone's name; "-" for no time."""
    return t.astimezone().strftime("%Y-%m-%d %H:%M %Z").rstrip() if t else "-"


def zone_name(at: datetime) -> str:
    """The local time zone's name at `at` ("UTC", "CET", "CEST")."""
    return at.astimezone().strftime("%Z") or "local time"


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 feed", "2 feeds", "0 feeds" (`many` for irregular plurals: "1 entry", "2 entries")."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
