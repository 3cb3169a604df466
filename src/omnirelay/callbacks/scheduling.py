"""Scheduling windows of a profile, in its own time zone: is a start date inside one, and
which slots to offer (every ``offer_interval`` minutes, at most ``max_options``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")[:2]
    return time(int(hours), int(minutes))


def windows(entries: list[dict[str, Any]], day: int) -> list[tuple[time, time]]:
    """The active [start, end) ranges of a weekday (Monday 0)."""
    out: list[tuple[time, time]] = []
    for entry in entries:
        if entry.get("status", "active") != "active" or day not in entry.get("day_of_week", []):
            continue
        out.extend(
            (_hhmm(s), _hhmm(e))
            for s, e in zip(entry.get("start_time", []), entry.get("end_time", []), strict=False)
        )
    return sorted(out)


def inside(entries: list[dict[str, Any]], tz: ZoneInfo, at: datetime) -> bool:
    local = at.astimezone(tz)
    return any(s <= local.time() < e for s, e in windows(entries, local.weekday()))


def validate_entries(entries: list[dict[str, Any]]) -> None:
    for i, entry in enumerate(entries):
        days = entry.get("day_of_week", [])
        if not isinstance(days, list) or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            raise ValueError(f"entries[{i}].day_of_week must be a list of 0..6 (Monday 0)")
        starts, ends = entry.get("start_time", []), entry.get("end_time", [])
        if not isinstance(starts, list) or not isinstance(ends, list) or len(starts) != len(ends):
            raise ValueError(f"entries[{i}]: start_time and end_time are lists of equal length")
        for s, e in zip(starts, ends, strict=True):
            try:
                if _hhmm(s) >= _hhmm(e):
                    raise ValueError(f"entries[{i}]: {s} is not before {e}")
            except (AttributeError, ValueError) as exc:
                raise ValueError(f"entries[{i}]: times are HH:MM, start before end") from exc
        if entry.get("status", "active") not in ("active", "inactive"):
            raise ValueError(f"entries[{i}].status is active or inactive")


def within_days(tz: ZoneInfo, now: datetime, at: datetime, max_days: int) -> bool:
    """``max_scheduled`` counts calendar days in the profile's zone: today and the next
    ``max_days`` days, whole (the days whose slots are offered)."""
    return (at.astimezone(tz).date() - now.astimezone(tz).date()).days <= max_days


def slots(
    entries: list[dict[str, Any]],
    tz: ZoneInfo,
    now: datetime,
    *,
    interval_minutes: int,
    max_days: int,
    max_options: int,
    overflow: bool,
) -> list[datetime]:
    """Start times to offer, in UTC. Without ``overflow`` only today's (profile time)."""
    out: list[datetime] = []
    for slot in _candidates(entries, tz, now, interval_minutes, max_days if overflow else 0):
        out.append(slot)
        if len(out) >= max_options:
            break
    return out


def _candidates(
    entries: list[dict[str, Any]], tz: ZoneInfo, now: datetime, step: int, days: int
) -> Iterator[datetime]:
    today = now.astimezone(tz).date()
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        for start, end in windows(entries, day.weekday()):
            t = datetime.combine(day, start, tzinfo=tz)
            stop = datetime.combine(day, end, tzinfo=tz)
            while t < stop:
                if t > now:
                    yield t.astimezone(UTC)
                t += timedelta(minutes=max(1, step))
