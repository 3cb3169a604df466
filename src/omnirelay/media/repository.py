"""SQL of upload slots."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from omnirelay.media.models import MediaSlot


def add(session: Session, row: MediaSlot) -> MediaSlot:
    session.add(row)
    session.flush()
    return row


def get(session: Session, slot_id: str) -> MediaSlot | None:
    """Any organization's: the upload form is authenticated by its own token."""
    return session.get(MediaSlot, slot_id)


def by_key(session: Session, key: str) -> MediaSlot | None:
    return session.scalars(select(MediaSlot).where(MediaSlot.key == key)).first()


def claim(session: Session, slot_id: str, now: datetime, size: int) -> bool:
    """Mark the slot used, if it is still unused and unexpired: one conditional UPDATE,
    so that of two concurrent uploads with the same slot exactly one wins."""
    result = session.execute(
        update(MediaSlot)
        .where(
            MediaSlot.id == slot_id,
            MediaSlot.used_at.is_(None),
            MediaSlot.expires_at > now,
        )
        .values(used_at=now, size=size)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def delete_expired_unused(session: Session, before: datetime, limit: int) -> int:
    """At most ``limit`` slots that expired before ``before`` unused; their count."""
    ids = session.scalars(
        select(MediaSlot.id)
        .where(MediaSlot.used_at.is_(None), MediaSlot.expires_at < before)
        .order_by(MediaSlot.expires_at)
        .limit(limit)
    ).all()
    if not ids:
        return 0
    session.execute(
        delete(MediaSlot)
        .where(MediaSlot.id.in_(ids), MediaSlot.used_at.is_(None))
        .execution_options(synchronize_session=False)
    )
    return len(ids)
