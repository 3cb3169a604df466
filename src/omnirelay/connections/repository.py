"""SQL of channel connections."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnirelay.connections.models import ChannelConnection, ConnectionStatus


def add(session: Session, row: ChannelConnection) -> ChannelConnection:
    session.add(row)
    session.flush()
    return row


def get(session: Session, organization_id: str, connection_id: int) -> ChannelConnection | None:
    row = session.get(ChannelConnection, connection_id)
    if row is None or row.organization_id != organization_id or row.deleted_at is not None:
        return None
    return row


def list_for(
    session: Session, organization_id: str, channel: str | None = None
) -> Sequence[ChannelConnection]:
    query = select(ChannelConnection).where(
        ChannelConnection.organization_id == organization_id,
        ChannelConnection.deleted_at.is_(None),
    )
    if channel is not None:
        query = query.where(ChannelConnection.channel == channel)
    return session.scalars(query.order_by(ChannelConnection.id)).all()


def by_id_any(session: Session, connection_id: int) -> ChannelConnection | None:
    """For workers, which act on rows already checked against their organization."""
    return session.get(ChannelConnection, connection_id)


def status(session: Session, connection_id: int) -> ConnectionStatus | None:
    return session.get(ConnectionStatus, connection_id)
