"""The ttl sweep as a drain (ADR 18): an attempt's ``expires_at`` is its ttl watch.

Each batch expires, in one transaction, the attempts still waiting for a final report
whose ttl has passed; the next route step takes over (or the message fails). No job per
attempt: a message sent and delivered leaves nothing behind to run later.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.messaging import bulk_repository as bulk
from omnirelay.messaging import pipeline


class ExpiryStep:
    name = "expiry"
    channel: str | None = None  # nothing wakes it: it sleeps until the next expiry

    def claim(self, session: Session, claim_id: str, limit: int, now: datetime) -> int:
        # No I/O: the expiries are decided and written in this one transaction.
        return pipeline.expire_due(session, now, limit)

    def size(self, batch: int) -> int:
        return batch

    def io(self, batch: int) -> None:
        return None

    def record(self, session: Session, batch: int, outcomes: object, claim_id: str) -> None:
        return None

    def next_due(self, session: Session) -> datetime | None:
        return bulk.next_expiry(session, utcnow())
