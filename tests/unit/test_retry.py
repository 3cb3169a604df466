"""The one Retry-After parser and the schedule strategy (omnirelay/retry.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from omnirelay.retry import Schedule, parse_retry_after

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def test_delta_seconds_and_dates() -> None:
    assert parse_retry_after("120", cap=3600) == 120.0
    assert parse_retry_after(" 2.5 ", cap=3600) == 2.5
    assert parse_retry_after("Tue, 01 Dec 2026 12:01:30 GMT", cap=3600, now=NOW) == 90.0


def test_capped_and_never_negative() -> None:
    assert parse_retry_after("999999", cap=3600) == 3600.0
    assert parse_retry_after("-5", cap=3600) == 0.0
    assert parse_retry_after("Tue, 01 Dec 2026 11:00:00 GMT", cap=3600, now=NOW) == 0.0


def test_not_understood_is_none() -> None:
    for value in (None, "", "soon", "nan", "inf", "Tue, 01 Dec 2026 12:01:30"):
        assert parse_retry_after(value, cap=3600, now=NOW) is None, value


def test_schedule_waits_then_gives_up_and_a_hint_only_lengthens() -> None:
    seed = Schedule((10, 30, 90, 270, 810, 2430, 3600))
    assert [seed.delay(n) for n in range(1, 9)] == [10, 30, 90, 270, 810, 2430, 3600, None]
    assert seed.delay(1, hint=120) == 120
    assert seed.delay(2, hint=5) == 30
