"""Atomic counter increments; correct across processes because the database does the +1."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from omnirelay.ratelimit.models import RateLimitCounter


def increment(session: Session, organization_id: str, window_start: int) -> int:
    insert = (
        postgresql.insert(RateLimitCounter)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(RateLimitCounter)
    )
    stmt = (
        insert.values(organization_id=organization_id, window_start=window_start, count=1)
        .on_conflict_do_update(
            index_elements=["organization_id", "window_start"],
            set_={"count": RateLimitCounter.count + 1},
        )
        .returning(RateLimitCounter.count)
    )
    return int(session.execute(stmt).scalar_one())


def delete_before(session: Session, organization_id: str, window_start: int) -> None:
    session.execute(
        delete(RateLimitCounter).where(
            RateLimitCounter.organization_id == organization_id,
            RateLimitCounter.window_start < window_start,
        )
    )
