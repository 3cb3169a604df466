"""Fixed-window rate limiting per subscription (seed 000: 429 when the call rate is exceeded)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from omnirelay.ratelimit import repository as repo


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds until the window resets


def hit(
    session: Session, organization_id: str, *, limit: int, window: int, now: float | None = None
) -> Decision:
    now = time.time() if now is None else now
    window_start = int(now // window) * window
    count = repo.increment(session, organization_id, window_start)
    if count == 1:
        # First hit of a new window: drop the old ones so the table stays tiny.
        repo.delete_before(session, organization_id, window_start)
    retry_after = max(1, math.ceil(window_start + window - now))
    return Decision(count <= limit, limit, max(0, limit - count), retry_after)
