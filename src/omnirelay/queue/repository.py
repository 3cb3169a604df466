"""All SQL of the job queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, literal_column, or_, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from omnirelay.queue.models import PRIORITIES, Job

# Literals, not bound parameters, so that the partial indexes apply.
TODO: ColumnElement[str] = literal_column("'todo'")
DOING: ColumnElement[str] = literal_column("'doing'")
# The predicate of the dedupe index in its own words: SQLite uses a partial index only
# when the query states its WHERE, and bound parameters do not count (a scan of the
# whole table per dedupe lookup, measured).
ACTIVE: ColumnElement[bool] = Job.status.in_([TODO, DOING])
NO_SYNC = {"synchronize_session": False}
JOBS = Job.metadata.tables[Job.__tablename__]  # the Table, for Core statements


def insert(session: Session, job: Job) -> Job:
    session.add(job)
    session.flush()
    return job


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany INSERT through Core: no Job objects, no identity map, no flush."""
    if rows:
        session.execute(sql_insert(JOBS), list(rows))


def bring_forward(
    session: Session, kind: str, key: str, values: Sequence[str], at: datetime
) -> int:
    """Jobs of ``kind`` waiting past ``at`` whose ``payload[key]`` is one of ``values``
    become due at ``at``."""
    moved = 0
    for start in range(0, len(values), 500):  # bounded IN lists
        result = session.execute(
            update(Job)
            .where(
                Job.kind == kind,
                Job.status == TODO,
                Job.run_at > at,
                Job.payload[key].as_string().in_(values[start : start + 500]),
            )
            .values(run_at=at)
            .execution_options(**NO_SYNC)
        )
        moved += int(getattr(result, "rowcount", 0) or 0)
    return moved


def delete_waiting(session: Session, dedupe_key: str) -> int:
    result = session.execute(
        delete(Job).where(Job.dedupe_key == dedupe_key, ACTIVE, Job.status == TODO),
        execution_options=NO_SYNC,
    )
    return int(getattr(result, "rowcount", 0) or 0)


def active_by_dedupe_key(session: Session, dedupe_key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.dedupe_key == dedupe_key, ACTIVE))


def claim(
    session: Session, worker_id: str, *, limit: int, lease_seconds: float, now: datetime
) -> list[Job]:
    """Lease up to ``limit`` jobs: first those whose worker died (lease passed), then due
    ones by priority, run_at, id. A job with a lock waits while its lock is held or an
    older job of the same lock waits."""
    other = aliased(Job)
    lock_free = or_(
        Job.lock.is_(None),
        and_(
            ~exists().where(other.lock == Job.lock, other.status == DOING),
            ~exists().where(other.lock == Job.lock, other.status == TODO, other.id < Job.id),
        ),
    )
    ids = list(
        session.scalars(
            select(Job.id)
            .where(Job.status == DOING, Job.lease_until < now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    # One query per priority, each a range of the due index that stops at ``now``: one
    # query over all of them would walk the future-dated rows of a higher priority first.
    for priority in PRIORITIES:
        if len(ids) >= limit:
            break
        ids += session.scalars(
            select(Job.id)
            .where(Job.status == TODO, Job.priority == priority, Job.run_at <= now, lock_free)
            .order_by(Job.run_at, Job.id)
            .limit(limit - len(ids))
            .with_for_update(skip_locked=True)
        )
    if not ids:
        return []
    claimed = session.scalars(
        update(Job)
        .where(Job.id.in_(ids))
        .values(
            status="doing",
            locked_by=worker_id,
            lease_until=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
            updated_at=now,
        )
        .returning(Job),
        execution_options=NO_SYNC,
    )
    return sorted(claimed, key=lambda j: (-j.priority, j.run_at, j.id))


def complete(session: Session, job_id: int, worker_id: str) -> bool:
    """Delete a finished job, only if this worker still holds it (else its lease was lost
    and the caller must roll back the handler's writes)."""
    result = session.execute(
        delete(Job).where(Job.id == job_id, Job.locked_by == worker_id, Job.status == DOING),
        execution_options=NO_SYNC,
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def complete_many(session: Session, job_ids: Sequence[int], worker_id: str) -> int:
    """Delete finished jobs this worker still holds; how many it did."""
    if not job_ids:
        return 0
    result = session.execute(
        delete(Job).where(
            Job.id.in_(list(job_ids)), Job.locked_by == worker_id, Job.status == DOING
        ),
        execution_options=NO_SYNC,
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def fail(
    session: Session,
    job_id: int,
    worker_id: str,
    *,
    error: str,
    retry_at: datetime | None,
    now: datetime,
) -> bool:
    values: dict[str, Any] = {
        "locked_by": None,
        "lease_until": None,
        "last_error": error[:4000],
        "updated_at": now,
    }
    if retry_at is None:
        values |= {"status": "dead", "finished_at": now}
    else:
        values |= {"status": "todo", "run_at": retry_at}
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker_id, Job.status == DOING)
        .values(**values),
        execution_options=NO_SYNC,
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew(session: Session, worker_id: str, job_ids: Sequence[int], lease_until: datetime) -> None:
    session.execute(
        update(Job)
        .where(Job.id.in_(list(job_ids)), Job.locked_by == worker_id, Job.status == DOING)
        .values(lease_until=lease_until),
        execution_options=NO_SYNC,
    )


def next_run_at(session: Session) -> datetime | None:
    return session.scalar(select(func.min(Job.run_at)).where(Job.status == TODO))


def list_jobs(
    session: Session,
    *,
    status: str | None,
    organization_id: str | None,
    limit: int,
    offset: int,
) -> list[Job]:
    query = select(Job)
    if status:
        query = query.where(Job.status == status)
    if organization_id is not None:
        query = query.where(Job.organization_id == organization_id)
    return list(session.scalars(query.order_by(Job.id.desc()).limit(limit).offset(offset)))


def get_job(session: Session, job_id: int, organization_id: str | None) -> Job | None:
    query = select(Job).where(Job.id == job_id)
    if organization_id is not None:
        query = query.where(Job.organization_id == organization_id)
    return session.scalar(query)
