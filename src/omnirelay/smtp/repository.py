"""SQL of the inbound email listener."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnirelay.connections.models import ChannelConnection
from omnirelay.messaging.models import MessageAttempt


def email_connections(session: Session) -> Sequence[ChannelConnection]:
    """Every organization's active email connections: the addresses the listener takes."""
    return session.scalars(
        select(ChannelConnection)
        .where(
            ChannelConnection.channel == "email",
            ChannelConnection.deleted_at.is_(None),
            ChannelConnection.active.is_(True),
        )
        .order_by(ChannelConnection.id)
    ).all()


def attempt_by_provider_id(
    session: Session, connection_ids: Sequence[int], provider_message_ids: Sequence[str]
) -> MessageAttempt | None:
    """The newest attempt through one of these connections (an organization's email
    connections) with one of these Message-IDs, in the order given (the first id that
    matches wins). (connection_id, provider_message_id) is an index."""
    if not provider_message_ids or not connection_ids:
        return None
    rows = session.scalars(
        select(MessageAttempt)
        .where(
            MessageAttempt.connection_id.in_(list(connection_ids)),
            MessageAttempt.provider_message_id.in_(list(provider_message_ids)),
        )
        .order_by(MessageAttempt.id.desc())
    ).all()
    for pid in provider_message_ids:
        for row in rows:
            if row.provider_message_id == pid:
                return row
    return None
