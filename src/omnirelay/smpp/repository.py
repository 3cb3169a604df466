"""SQL of session ownership and connection status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnirelay.connections.models import ChannelConnection, ConnectionLease, ConnectionStatus


def session_connections(session: Session, provider: str) -> Sequence[ChannelConnection]:
    return session.scalars(
        select(ChannelConnection).where(
            ChannelConnection.provider == provider,
            ChannelConnection.active.is_(True),
            ChannelConnection.deleted_at.is_(None),
        )
    ).all()


def acquire(
    session: Session, connection_id: int, owner: str, until: datetime, now: datetime
) -> bool:
    """Take or renew the lease; False while another live owner holds it."""
    row = session.get(ConnectionLease, connection_id, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    ConnectionLease(connection_id=connection_id, owner=owner, lease_until=until)
                )
        except IntegrityError:
            return False  # another process inserted it first
        return True
    if row.owner != owner and row.lease_until > now:
        return False
    row.owner, row.lease_until = owner, until
    return True


def release(session: Session, connection_id: int, owner: str) -> None:
    row = session.get(ConnectionLease, connection_id, with_for_update=True)
    if row is not None and row.owner == owner:
        session.delete(row)


def save_status(session: Session, row: ConnectionStatus) -> None:
    session.merge(row)


def status(session: Session, connection_id: int) -> ConnectionStatus | None:
    return session.get(ConnectionStatus, connection_id)
