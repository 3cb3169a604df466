"""The job queue: a table in the application database, written in the same transaction
as the business rows (an outbox), run by workers. See docs/queue.md."""

from omnirelay.queue.registry import JobContext, PermanentFailure, Retry, TaskRegistry, tasks
from omnirelay.queue.service import (
    bring_forward,
    cancel_job,
    enqueue,
    get_job,
    list_jobs,
    retry_job,
)

__all__ = [
    "JobContext",
    "PermanentFailure",
    "Retry",
    "TaskRegistry",
    "bring_forward",
    "cancel_job",
    "enqueue",
    "get_job",
    "list_jobs",
    "retry_job",
    "tasks",
]
