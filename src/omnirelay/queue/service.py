"""Enqueueing (inside the caller's transaction) and the dead-letter operations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.config import get_settings
from omnirelay.db import utcnow
from omnirelay.queue import repository as repo
from omnirelay.queue.models import PRIORITIES, Job

NOTIFY_CHANNEL = "omnirelay_jobs"


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    run_at: datetime | None = None,
    priority: int = 0,
    lock: str | None = None,
    dedupe_key: str | None = None,
    organization_id: str | None = None,
    max_attempts: int | None = None,
) -> Job:
    """Add a job in the caller's transaction: it exists if and only if that commits."""
    _check_priority(priority)
    if dedupe_key is not None:
        existing = repo.active_by_dedupe_key(session, dedupe_key)
        if existing is not None:
            return existing
    job = Job(
        kind=kind,
        payload=payload,
        run_at=run_at or utcnow(),
        priority=priority,
        lock=lock,
        dedupe_key=dedupe_key,
        organization_id=organization_id,
        max_attempts=max_attempts or get_settings().job_max_attempts,
        status="todo",
        attempts=0,
    )
    if dedupe_key is None:
        repo.insert(session, job)
    else:
        # A concurrent transaction may insert the same key first: keep ours intact.
        try:
            with session.begin_nested():
                repo.insert(session, job)
        except IntegrityError:
            existing = repo.active_by_dedupe_key(session, dedupe_key)
            if existing is None:
                raise
            return existing
    wakeup.notify(session, NOTIFY_CHANNEL)
    return job


def _check_priority(priority: int) -> None:
    if priority not in PRIORITIES:
        raise ValueError(f"a job's priority is one of {PRIORITIES}, not {priority}")


@dataclass(frozen=True)
class NewJob:
    payload: dict[str, Any]
    run_at: datetime | None = None
    organization_id: str | None = None


def enqueue_many(
    session: Session,
    kind: str,
    jobs: Sequence[NewJob],
    priority: int = 0,
    max_attempts: int | None = None,
) -> None:
    """Many jobs of one kind in the caller's transaction: one INSERT executemany and one
    wake-up, for writers of thousands of jobs a second (the accept path). No dedupe keys
    or locks here (those need the per-job path above), and no ids are returned."""
    _check_priority(priority)
    if not jobs:
        return
    now = utcnow()
    attempts = max_attempts or get_settings().job_max_attempts
    repo.insert_many(
        session,
        [
            {
                "kind": kind,
                "payload": job.payload,
                "organization_id": job.organization_id,
                "status": "todo",
                "priority": priority,
                "run_at": job.run_at or now,
                "attempts": 0,
                "max_attempts": attempts,
                "created_at": now,
                "updated_at": now,
            }
            for job in jobs
        ],
    )
    wakeup.notify(session, NOTIFY_CHANNEL)


def cancel_job(session: Session, dedupe_key: str) -> bool:
    """Drop the waiting job of ``dedupe_key`` (not one already running), in the caller's
    transaction; True if there was one."""
    return repo.delete_waiting(session, dedupe_key) > 0


def bring_forward(session: Session, kind: str, key: str, values: Sequence[str]) -> int:
    """Make waiting jobs due now (a held message whose reason to wait has gone), in the
    caller's transaction; returns how many."""
    moved = repo.bring_forward(session, kind, key, values, utcnow())
    if moved:
        wakeup.notify(session, NOTIFY_CHANNEL)
    return moved


def list_jobs(
    session: Session,
    *,
    status: str | None = None,
    organization_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Job]:
    return repo.list_jobs(
        session, status=status, organization_id=organization_id, limit=limit, offset=offset
    )


def get_job(session: Session, job_id: int, organization_id: str | None = None) -> Job | None:
    return repo.get_job(session, job_id, organization_id)


def retry_job(session: Session, job_id: int, organization_id: str | None = None) -> Job | None:
    """Send a dead letter back to the queue with fresh attempts."""
    job = repo.get_job(session, job_id, organization_id)
    if job is None or job.status != "dead":
        return None
    job.status = "todo"
    job.run_at = utcnow()
    job.attempts = 0
    job.finished_at = None
    session.flush()
    wakeup.notify(session, NOTIFY_CHANNEL)
    return job
