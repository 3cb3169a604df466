"""The jobs table: the outbox every domain writes its later work to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow

STATUSES = ("todo", "doing", "succeeded", "dead")


class Job(Base):
    __tablename__ = "jobs"
    # Never reuse an id on SQLite (finished jobs are deleted; ids appear in logs and APIs).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Plain column, no foreign key: the queue is infrastructure below the domains.
    organization_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="todo")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # Jobs sharing a lock run one at a time, in id order.
    lock: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # While a job with this key waits or runs, enqueueing the key again returns it.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    locked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# The priorities a job may have, highest first (the claim asks for each in turn).
PRIORITIES = (1, 0)

_ACTIVE = "status IN ('todo', 'doing')"
Index(
    "ix_jobs_due",
    Job.priority.desc(),
    Job.run_at,
    Job.id,
    sqlite_where=text("status = 'todo'"),
    postgresql_where=text("status = 'todo'"),
)
Index(
    "ix_jobs_lease",
    Job.lease_until,
    sqlite_where=text("status = 'doing'"),
    postgresql_where=text("status = 'doing'"),
)
Index(
    "uq_jobs_lock_doing",
    Job.lock,
    unique=True,
    sqlite_where=text("status = 'doing'"),
    postgresql_where=text("status = 'doing'"),
)
Index(
    "ix_jobs_lock_todo",
    Job.lock,
    Job.id,
    sqlite_where=text("status = 'todo'"),
    postgresql_where=text("status = 'todo'"),
)
Index(
    "uq_jobs_dedupe_active",
    Job.dedupe_key,
    unique=True,
    sqlite_where=text(_ACTIVE),
    postgresql_where=text(_ACTIVE),
)
Index("ix_jobs_org_status", Job.organization_id, Job.status)
