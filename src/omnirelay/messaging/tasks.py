"""Job handlers of the message pipeline. (Dispatch is not a job: the message is its own,
drained by messaging/dispatch.py.)"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from omnirelay.messaging import pipeline, statuses
from omnirelay.queue import JobContext, tasks


@tasks.task(pipeline.EVENT, batched=True)
def provider_event(session: Session, job: JobContext) -> None:
    pipeline.apply_event(session, job.payload, job.attempts)


@tasks.batch(pipeline.EVENT)
def provider_events(
    session: Session, jobs: list[JobContext], one: Callable[[JobContext], None]
) -> None:
    """Many reports at once, set-based; the rest one by one (messaging/statuses.py)."""
    statuses.apply_many(session, [j.payload for j in jobs], lambda i, _: one(jobs[i]))


@tasks.task(pipeline.TTL, batched=True)
def ttl(session: Session, job: JobContext) -> None:
    pipeline.expire(session, int(job.payload["attempt_id"]))


@tasks.task("messages.inbound", batched=True)
def inbound(session: Session, job: JobContext) -> None:
    from omnirelay.messaging import sessions

    p = job.payload
    assert job.organization_id is not None
    row = sessions.inbound(
        session,
        job.organization_id,
        int(p["connection_id"]),
        p["phone"],
        p["to"],
        p["text"],
        channel=p.get("channel", "sms"),
        reply_to=p.get("reply_to"),
        address=p.get("address"),
        provider_message_id=p.get("provider_message_id"),
        attachments=p.get("attachments"),
    )
    if p.get("fetch"):
        # Files the provider only names: downloaded after this transaction (ADR 37).
        from omnirelay.media import fetch

        refs = list(enumerate(p["fetch"]["refs"]))
        fetch.add(
            session, job.organization_id, row.id, row.connection_id, p["fetch"]["provider"], refs
        )
