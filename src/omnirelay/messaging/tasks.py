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


@tasks.task("messages.inbound")
def inbound(session: Session, job: JobContext) -> None:
    from omnirelay.messaging import sessions

    p = job.payload
    assert job.organization_id is not None
    sessions.inbound(
        session, job.organization_id, int(p["connection_id"]), p["phone"], p["to"], p["text"]
    )
