"""Retry and backoff as strategy objects, and the one parser of ``Retry-After`` (ADR 26).

A drain that retries asks its :class:`Backoff` how long to wait after a failure; a
receiver's or provider's ``Retry-After`` is a hint the strategy may use (the webhook
schedule only lets it lengthen a wait). Pure functions and frozen objects: no clock but
the one passed in, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

MAX_PROVIDER_RETRY_AFTER = 86400.0  # a provider asking for more than a day is capped


def parse_retry_after(
    value: str | None, *, cap: float, now: datetime | None = None
) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), between
    0 and ``cap``; None when absent or not understood."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is not one
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)


class Backoff(Protocol):
    def delay(self, failures: int, hint: float | None = None) -> float | None:
        """Seconds to wait after the ``failures``-th failure in a row (1-based), or None
        when there is no try left. ``hint``: what the other side asked for, if anything."""
        ...


@dataclass(frozen=True, slots=True)
class Schedule:
    """A fixed list of waits (seed 004's webhook schedule); a hint can only lengthen one."""

    waits: tuple[float, ...]

    def delay(self, failures: int, hint: float | None = None) -> float | None:
        if failures < 1 or failures > len(self.waits):
            return None
        wait = self.waits[failures - 1]
        return max(wait, hint) if hint is not None else wait
