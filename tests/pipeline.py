"""Driving the pipeline from a test, in the test's thread: the dispatch drain and the job
worker, until neither finds anything due; and the clock jump that makes later work due."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

import omnirelay.tasks  # noqa: F401  (registers the pipeline's handlers)
from omnirelay.db import Database
from omnirelay.drain import Drain
from omnirelay.messaging.dispatch import DispatchStep
from omnirelay.messaging.expiry import ExpiryStep
from omnirelay.messaging.inbox import InboxStep
from omnirelay.messaging.models import Message, MessageAttempt, PendingEvent
from omnirelay.queue.models import Job
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker


class Pipeline:
    def __init__(self, db: Database, *, backoff: float = 0.01, lease_seconds: float = 30) -> None:
        self.worker = Worker(
            db, tasks, backoff_base=backoff, backoff_max=backoff, lease_seconds=lease_seconds
        )
        self.dispatcher = Drain(db, DispatchStep(lease_seconds=lease_seconds))
        self.expiry = Drain(db, ExpiryStep())
        self.inbox = Drain(db, InboxStep())

    def run_until_idle(self) -> int:
        """Dispatches and jobs run until nothing is due; how many ran."""
        total = 0
        while True:
            ran = (
                self.dispatcher.run_until_idle()
                + self.expiry.run_until_idle()
                + self.inbox.run_until_idle()
                + self.worker.run_until_idle(max_jobs=10_000)
            )
            total += ran
            if ran == 0:
                return total


def jump(db: Database, seconds: float) -> None:
    """The clock jumps forward for the queue: due times move back by ``seconds``."""
    delta = timedelta(seconds=seconds)
    with db.transaction() as session:  # row by row: date arithmetic in SQL is not portable
        for job in session.scalars(select(Job).where(Job.status == "todo")):
            job.run_at = job.run_at - delta
        for message in session.scalars(select(Message).where(Message.due_at.is_not(None))):
            assert message.due_at is not None
            message.due_at = message.due_at - delta
        for event in session.scalars(select(PendingEvent)):
            event.due_at = event.due_at - delta
        waiting = MessageAttempt.status.in_(("queued", "submitting", "sent"))
        for attempt in session.scalars(select(MessageAttempt).where(waiting)):
            if attempt.expires_at is not None:
                attempt.expires_at = attempt.expires_at - delta
