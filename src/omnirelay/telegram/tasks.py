"""Job handlers of the Telegram bots."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.queue import JobContext, tasks
from omnirelay.telegram import service


@tasks.task(service.UPDATE, batched=True)
def update(session: Session, job: JobContext) -> None:
    """One update a bot received (database only: many run to a transaction)."""
    assert job.organization_id is not None
    p = job.payload
    service.apply_update(session, job.organization_id, int(p["connection_id"]), p["update"])
