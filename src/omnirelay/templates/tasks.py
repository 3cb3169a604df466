"""Job handlers of templates: moderation of a channel entry."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.queue import JobContext, tasks
from omnirelay.templates import moderation


# Database only (the sandbox decides here; a real provider's hook queues its own I/O).
@tasks.task(moderation.MODERATE, batched=True)
def moderate(session: Session, job: JobContext) -> None:
    moderation.run(session, int(job.payload["entry_id"]), int(job.payload["revision"]))
