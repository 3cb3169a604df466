"""Job handlers of the gateway; importing this also registers its pipeline hooks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.gateway import service
from omnirelay.queue import JobContext, tasks


@tasks.task(service.AUTOSCAN)
def autoscan(session: Session, job: JobContext) -> None:
    """The sandbox phone scans the QR (or enters the code) it was shown."""
    service.scanned(session, int(job.payload["device_id"]), utcnow())
