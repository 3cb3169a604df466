"""Job handlers of the call engine."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.callbacks import engine, remote
from omnirelay.db import Database
from omnirelay.queue import JobContext, tasks


@tasks.task(engine.ASSIGN)
def assign(session: Session, job: JobContext) -> None:
    engine.assign(session, job.payload["option_sid"])


@tasks.task(engine.EVENT)
def event(session: Session, job: JobContext) -> None:
    p = job.payload
    engine.apply_event(session, p["call_sid"], p["kind"], int(p["attempt"]))


@tasks.task(engine.START)
def start(session: Session, job: JobContext) -> None:
    engine.start_scheduled(session, job.payload["call_sid"])


@tasks.task(engine.REQUEUE)
def requeue(session: Session, job: JobContext) -> None:
    engine.requeue(session, job.payload["call_sid"])


@tasks.io_task(engine.TELEPHONY)
def telephony(db: Database, job: JobContext) -> None:
    remote.run(db, job)  # HTTP with no transaction open
