"""The web chat's SQL: connections by widget key, a visitor's waiting sends."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from omnirelay.connections.models import ChannelConnection
from omnirelay.messaging.models import Message, MessageAttempt

PENDING_LIMIT = 200


def connections(session: Session, organization_id: str | None = None) -> list[ChannelConnection]:
    """Every live ``webchat`` connection, or the organization's (few per organization;
    the key is in settings)."""
    query = select(ChannelConnection).where(
        ChannelConnection.provider == "webchat",
        ChannelConnection.deleted_at.is_(None),
    )
    if organization_id is not None:
        query = query.where(ChannelConnection.organization_id == organization_id)
    return list(session.scalars(query.order_by(ChannelConnection.id)))


def waiting(
    session: Session, connection_id: int, now: datetime
) -> list[tuple[MessageAttempt, Message]]:
    """Sends of the connection still ``sent`` (no socket took them) and not expired."""
    rows = session.execute(
        select(MessageAttempt, Message)
        .join(Message, Message.id == MessageAttempt.message_id)
        .where(
            MessageAttempt.connection_id == connection_id,
            MessageAttempt.status == "sent",
            or_(MessageAttempt.expires_at.is_(None), MessageAttempt.expires_at > now),
        )
        .order_by(MessageAttempt.id)
        .limit(PENDING_LIMIT)
    ).all()
    return [(a, m) for a, m in rows]


def message(session: Session, message_id: str) -> Message | None:
    return session.get(Message, message_id)
