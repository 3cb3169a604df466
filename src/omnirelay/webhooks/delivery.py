"""What an attempt's answer means, and when to try again. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

from omnirelay.db import utcnow

Kind = Literal["delivered", "retry", "disabled", "failed"]
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class Verdict:
    kind: Kind  # "failed" here means: not worth retrying (e.g. the URL was refused)
    retry_after: float | None = None


def classify(status_code: int | None, headers: Mapping[str, str] | None = None) -> Verdict:
    """Only 2xx is success; 410 disables the endpoint; everything else, including
    redirects (never followed), timeouts and refused connections (None), is retried."""
    if status_code is not None and 200 <= status_code < 300:
        return Verdict("delivered")
    if status_code == 410:
        return Verdict("disabled")
    retry_after = None
    if status_code in (429, 503) and headers is not None:
        retry_after = parse_retry_after(headers.get("retry-after"))
    return Verdict("retry", retry_after)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, min((when - utcnow()).total_seconds(), MAX_RETRY_AFTER))


def next_delay(schedule: Sequence[float], step: int, retry_after: float | None) -> float | None:
    """Seconds until the next attempt after the ``step``-th failure (0-based), or None when
    the schedule is spent. A receiver's Retry-After can only lengthen the wait."""
    if step >= len(schedule):
        return None
    delay = float(schedule[step])
    return max(delay, retry_after) if retry_after is not None else delay
