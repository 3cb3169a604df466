"""SQL of messages and attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnirelay.messaging.models import Message, MessageAttempt, NotifySettings


def add(session: Session, row: Message) -> None:
    session.add(row)


def get(session: Session, message_id: str) -> Message | None:
    return session.get(Message, message_id)


def lock(session: Session, message_id: str) -> Message | None:
    """The message, locked until the transaction ends: the jobs of one message (dispatch,
    provider events, ttl) then apply one after the other on every engine."""
    return session.scalars(
        select(Message)
        .where(Message.id == message_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def get_for(session: Session, organization_id: str, message_id: str) -> Message | None:
    row = session.get(Message, message_id)
    return row if row is not None and row.organization_id == organization_id else None


def existing_custom_ids(
    session: Session, organization_id: str, custom_ids: Sequence[str]
) -> set[str]:
    if not custom_ids:
        return set()
    found = session.scalars(
        select(Message.custom_id).where(
            Message.organization_id == organization_id, Message.custom_id.in_(custom_ids)
        )
    )
    return {c for c in found if c is not None}


def list_for(
    session: Session,
    organization_id: str,
    *,
    status: str | None = None,
    channel: str | None = None,
    custom_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Message]:
    query = select(Message).where(Message.organization_id == organization_id)
    if status:
        query = query.where(Message.status == status)
    if channel:
        query = query.where(Message.channel == channel)
    if custom_id:
        query = query.where(Message.custom_id == custom_id)
    if since:
        query = query.where(Message.created_at >= since)
    if until:
        query = query.where(Message.created_at < until)
    query = query.order_by(Message.created_at.desc(), Message.id).limit(limit).offset(offset)
    return session.scalars(query).all()


def changed_since(
    session: Session, after: datetime, organization_id: str | None, limit: int = 500
) -> Sequence[Message]:
    query = select(Message).where(Message.updated_at > after)
    if organization_id:
        query = query.where(Message.organization_id == organization_id)
    return session.scalars(query.order_by(Message.updated_at).limit(limit)).all()


def attempts(session: Session, message_id: str) -> Sequence[MessageAttempt]:
    return session.scalars(
        select(MessageAttempt)
        .where(MessageAttempt.message_id == message_id)
        .order_by(MessageAttempt.id)
    ).all()


def add_attempt(session: Session, row: MessageAttempt) -> MessageAttempt:
    session.add(row)
    session.flush()
    return row


def get_attempt(session: Session, attempt_id: int) -> MessageAttempt | None:
    return session.get(MessageAttempt, attempt_id)


def attempt_by_provider_id(
    session: Session, connection_id: int, provider_message_id: str
) -> MessageAttempt | None:
    return session.scalars(
        select(MessageAttempt).where(
            MessageAttempt.connection_id == connection_id,
            MessageAttempt.provider_message_id == provider_message_id,
        )
    ).first()


def get_settings(session: Session, organization_id: str) -> NotifySettings | None:
    return session.get(NotifySettings, organization_id)


def add_settings(session: Session, row: NotifySettings) -> None:
    session.add(row)
    session.flush()
