"""What an attempt's answer means, and when to try again. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from omnirelay.retry import Schedule, parse_retry_after

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
        retry_after = parse_retry_after(headers.get("retry-after"), cap=MAX_RETRY_AFTER)
    return Verdict("retry", retry_after)


def schedule(waits: Sequence[float]) -> Schedule:
    """An organization's retry schedule as the drain's backoff strategy."""
    return Schedule(tuple(float(w) for w in waits))
