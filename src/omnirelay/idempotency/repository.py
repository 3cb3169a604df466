"""SQL of idempotency keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
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


def purge_before(session: Session, before: datetime) -> int:
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
