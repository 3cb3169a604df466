"""SQL of idempotency keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from omnirelay.idempotency.models import IdempotencyKey


def get(session: Session, organization_id: str, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, (organization_id, key))


def add(session: Session, row: IdempotencyKey) -> None:
    session.add(row)
    session.flush()


def remove(session: Session, row: IdempotencyKey) -> None:
    session.delete(row)
    session.flush()


def purge_before(session: Session, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` keys created before ``before`` (the oldest first)."""
    keys = session.execute(
        select(IdempotencyKey.organization_id, IdempotencyKey.key)
        .where(IdempotencyKey.created_at < before)
        .order_by(IdempotencyKey.created_at)
        .limit(limit)
    ).all()
    if keys:
        session.execute(
            delete(IdempotencyKey).where(
                tuple_(IdempotencyKey.organization_id, IdempotencyKey.key).in_(
                    [tuple(k) for k in keys]
                )
            )
        )
    return len(keys)
