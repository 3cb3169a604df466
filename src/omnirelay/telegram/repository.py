"""SQL of the Telegram bots' state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from omnirelay.connections.models import ChannelConnection
from omnirelay.telegram.models import TelegramState


def connections(session: Session) -> Sequence[ChannelConnection]:
    """Every live ``telegram`` connection, of every organization (the runner's list)."""
    return session.scalars(
        select(ChannelConnection)
        .where(
            ChannelConnection.provider == "telegram",
            ChannelConnection.deleted_at.is_(None),
            ChannelConnection.active.is_(True),
        )
        .order_by(ChannelConnection.id)
    ).all()


def states(session: Session, connection_ids: Sequence[int]) -> dict[int, TelegramState]:
    if not connection_ids:
        return {}
    rows = session.scalars(
        select(TelegramState).where(TelegramState.connection_id.in_(connection_ids))
    )
    return {r.connection_id: r for r in rows}


def get(session: Session, connection_id: int) -> TelegramState | None:
    return session.get(TelegramState, connection_id)


def add(session: Session, row: TelegramState) -> None:
    session.add(row)
    session.flush()


def take_lease(
    session: Session, connection_id: int, owner: str, now: datetime, until: datetime
) -> bool:
    """One statement: the lease is this owner's if it was free, lapsed or already its."""
    result = session.execute(
        update(TelegramState)
        .where(
            TelegramState.connection_id == connection_id,
            or_(
                TelegramState.owner.is_(None),
                TelegramState.owner == owner,
                TelegramState.lease_until.is_(None),
                TelegramState.lease_until < now,
            ),
        )
        .values(owner=owner, lease_until=until)
    )
    return bool(getattr(result, "rowcount", 0))


def release(session: Session, connection_id: int, owner: str) -> None:
    session.execute(
        update(TelegramState)
        .where(TelegramState.connection_id == connection_id, TelegramState.owner == owner)
        .values(owner=None, lease_until=None)
    )


def held(session: Session, connection_id: int, owner: str) -> TelegramState | None:
    """The state row, locked, if ``owner`` still holds its lease."""
    row = session.scalar(
        select(TelegramState)
        .where(TelegramState.connection_id == connection_id, TelegramState.owner == owner)
        .with_for_update()
    )
    return row
