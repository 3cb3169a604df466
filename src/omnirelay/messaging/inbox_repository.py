"""The SQL of the provider events' inbox (messaging/inbox.py, ADR 40): one executemany
to add, one statement to take a batch, one to delete what was applied."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from omnirelay.messaging import fastsql
from omnirelay.messaging.models import PendingEvent

EVENTS = PendingEvent.metadata.tables[PendingEvent.__tablename__]
COLUMNS = (
    "organization_id",
    "connection_id",
    "provider_message_id",
    "kind",
    "status",
    "code",
    "error",
    "text",
    "due_at",
    "tries",
)
_INSERT = insert(EVENTS)
_LATER = (
    update(EVENTS)
    .where(EVENTS.c.id == bindparam("eid"))
    .values(due_at=bindparam("at"), tries=bindparam("n"))
)


def add_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Rows with every one of ``COLUMNS``, in one executemany INSERT."""
    fastsql.executemany(session, _INSERT, rows)


def due(session: Session, now: datetime, limit: int) -> list[Any]:
    """Up to ``limit`` events due by ``now``, in the order they came (PostgreSQL skips the
    rows another process's batch holds)."""
    query = (
        select(EVENTS)
        .where(EVENTS.c.due_at <= now)
        .order_by(EVENTS.c.due_at, EVENTS.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.execute(query))


def remove(session: Session, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), 500):  # bounded IN lists
        session.execute(delete(EVENTS).where(EVENTS.c.id.in_(list(ids[start : start + 500]))))


def later(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """``{eid, at, n}`` each: the event is due again at ``at``, its ``n``-th try."""
    fastsql.executemany(session, _LATER, rows)


def next_due(session: Session, now: datetime) -> datetime | None:
    at: datetime | None = session.scalar(
        select(func.min(EVENTS.c.due_at)).where(EVENTS.c.due_at > now)
    )
    return at
