"""Job handlers of the message pipeline."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.messaging import pipeline
from omnirelay.messaging.service import DISPATCH
from omnirelay.queue import JobContext, tasks


@tasks.task(DISPATCH)
def dispatch(session: Session, job: JobContext) -> None:
    pipeline.dispatch(session, job.payload["message_id"], int(job.payload["step"]), job.attempts)


@tasks.task(pipeline.EVENT)
def provider_event(session: Session, job: JobContext) -> None:
    pipeline.apply_event(session, job.payload, job.attempts)


@tasks.task(pipeline.TTL)
def ttl(session: Session, job: JobContext) -> None:
    pipeline.expire(session, int(job.payload["attempt_id"]))
