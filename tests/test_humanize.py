"""The words shared by every command: durations read, first lines quoted, text shortened, counts, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.humanize import first_line, iso_z, plural, seconds_of, shorten


@pytest.mark.parametrize(("text", "bare", "seconds"), [
    ("90s", False, 90.0), ("30m", False, 1800.0), ("6h", False, 21600.0), ("1d12h", False, 129600.0),
    ("1h 30m", False, 5400.0), (" 2W ", False, 1209600.0), ("1.5h", False, 5400.0),
    ("300", True, 300.0),           # a config interval may be a bare number of seconds ...
    ("300", False, None),           # ... an age (--since 300) may not: it reads as a date and fails
    ("1h30", True, None), ("30 days", True, None), ("-5m", True, None), ("", True, None), ("m", True, None),
])
def test_one_duration_grammar_for_config_intervals_and_ages(text: str, bare: bool, seconds: float | None) -> None:
    assert seconds_of(text, bare=bare) == seconds


@pytest.mark.parametrize(("text", "limit", "line"), [
    ("\n  \n  database is locked  \n[SQL: UPDATE feeds ...]", None, "database is locked"),
    ("x" * 300, 200, "x" * 200),
    ("", None, ""),
])
def test_first_line_quotes_the_first_line_that_says_something(text: str, limit: int | None, line: str) -> None:
    assert first_line(text, limit) == line


@pytest.mark.parametrize(("text", "limit", "strip", "short"), [
    ("short enough", 12, None, "short enough"),
    ("cut at a word boundary please", 12, None, "cut at a\u2026"),
    ("oneverylongwordwithoutspaces", 10, None, "oneverylo\u2026"),
    ("section a changed; section b", 20, ",;: ", "section a changed\u2026"),    # a summary loses the dangling ';'
])
def test_shorten_cuts_at_a_space_and_says_so(text: str, limit: int, strip: str | None, short: str) -> None:
    assert shorten(text, limit, strip=strip) == short
    assert len(shorten(text, limit, strip=strip)) <= limit


def test_plural_and_irregular_plural() -> None:
    assert [plural(n, "feed") for n in (0, 1, 2)] == ["0 feeds", "1 feed", "2 feeds"]
    assert plural(2, "dead delivery", "dead deliveries") == "2 dead deliveries"


def test_iso_z_is_utc_to_the_second_with_z() -> None:
    cet = timezone(timedelta(hours=1))
    assert iso_z(datetime(2026, 3, 1, 14, 5, 9, 999, tzinfo=cet)) == "2026-03-01T13:05:09Z"
    assert iso_z(datetime(2026, 3, 1, 13, 5, tzinfo=UTC)) == "2026-03-01T13:05:00Z"
