"""SQL of messages and attempts, and the accept path's statements (at the end)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from omnirelay.billing.models import Balance, Price
from omnirelay.connections.models import ChannelConnection
from omnirelay.messaging.models import (
    InboundMessage,
    Message,
    MessageAttempt,
    NotifySettings,
    ProviderPart,
)


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
        select(MessageAttempt)
        .where(
            MessageAttempt.connection_id == connection_id,
            MessageAttempt.provider_message_id == provider_message_id,
        )
        .order_by(MessageAttempt.id.desc())
        .limit(1)
    ).first()


def get_settings(session: Session, organization_id: str) -> NotifySettings | None:
    return session.get(NotifySettings, organization_id)


def add_settings(session: Session, row: NotifySettings) -> None:
    session.add(row)
    session.flush()


def part_by_provider_id(
    session: Session, connection_id: int, provider_message_id: str
) -> ProviderPart | None:
    return session.scalars(
        select(ProviderPart)
        .where(
            ProviderPart.connection_id == connection_id,
            ProviderPart.provider_message_id == provider_message_id,
        )
        .order_by(ProviderPart.id.desc())
        .limit(1)
    ).first()


def parts_of(session: Session, attempt_id: int) -> Sequence[ProviderPart]:
    return session.scalars(
        select(ProviderPart)
        .where(ProviderPart.attempt_id == attempt_id)
        .order_by(ProviderPart.part)
    ).all()


def mark_part_delivered(
    session: Session, attempt_id: int, connection_id: int, provider_message_id: str
) -> bool:
    """Mark one part delivered; True when every part of the attempt now is."""
    parts = parts_of(session, attempt_id)
    if not parts:
        return True  # the provider reports the message as a whole
    for p in parts:
        if p.connection_id == connection_id and p.provider_message_id == provider_message_id:
            p.status = "delivered"
    session.flush()
    attempt = session.get(MessageAttempt, attempt_id)
    expected = attempt.parts if attempt is not None else len(parts)
    return len(parts) >= expected and all(p.status == "delivered" for p in parts)


def add_parts(session: Session, rows: Sequence[ProviderPart]) -> None:
    session.add_all(rows)
    session.flush()


def add_inbound(session: Session, row: InboundMessage) -> None:
    session.add(row)
    session.flush()


def last_message_to(
    session: Session, organization_id: str, connection_id: int, phone: str
) -> MessageAttempt | None:
    """The latest attempt sent to ``phone`` through a connection: what an MO answers."""
    return session.scalars(
        select(MessageAttempt)
        .join(Message, Message.id == MessageAttempt.message_id)
        .where(
            MessageAttempt.organization_id == organization_id,
            MessageAttempt.connection_id == connection_id,
            Message.phone == phone,
        )
        .order_by(MessageAttempt.id.desc())
        .limit(1)
    ).first()


def requeue_submitting(session: Session, connection_id: int) -> int:
    """A new session owner sends again what its predecessor had in flight."""
    rows = session.scalars(
        select(MessageAttempt).where(
            MessageAttempt.connection_id == connection_id, MessageAttempt.status == "submitting"
        )
    ).all()
    for row in rows:
        row.status = "queued"
    session.flush()
    return len(rows)


# --- the accept path ----------------------------------------------------------------
# It runs these once per transaction of up to hundreds of messages, so per-transaction
# cost is what counts: Core statements built once (SQLAlchemy memoizes their cache key),
# executed on the session's connection, no ORM objects. Connections, prices and the
# balance are other domains' tables; only what accepting needs of them is read here.

_tables = Message.metadata.tables
MESSAGES = _tables[Message.__tablename__]
_CONNECTIONS = _tables[ChannelConnection.__tablename__]
_PRICES = _tables[Price.__tablename__]
_BALANCES = _tables[Balance.__tablename__]


class AcceptConnection(NamedTuple):
    id: int
    channel: str
    provider: str
    senders: list[str]
    active: bool
    templates_only: bool


_SELECT_CONNECTIONS = (
    select(
        _CONNECTIONS.c.id,
        _CONNECTIONS.c.channel,
        _CONNECTIONS.c.provider,
        _CONNECTIONS.c.senders,
        _CONNECTIONS.c.active,
        _CONNECTIONS.c.templates_only,
    )
    .where(_CONNECTIONS.c.organization_id == bindparam("org"), _CONNECTIONS.c.deleted_at.is_(None))
    .order_by(_CONNECTIONS.c.id)
)
_SELECT_PRICES = select(_PRICES.c.channel, _PRICES.c.amount).where(
    _PRICES.c.organization_id == bindparam("org")
)
_LOCK_BALANCE = (
    select(_BALANCES.c.amount).where(_BALANCES.c.organization_id == bindparam("org"))
).with_for_update()
_DEBIT = (
    update(_BALANCES)
    .where(_BALANCES.c.organization_id == bindparam("org"), _BALANCES.c.amount >= bindparam("d"))
    .values(amount=_BALANCES.c.amount - bindparam("d"), updated_at=bindparam("now"))
)
_TAKEN_CUSTOM_IDS = select(MESSAGES.c.custom_id).where(
    MESSAGES.c.organization_id == bindparam("org"),
    MESSAGES.c.custom_id.in_(bindparam("ids", expanding=True)),
)
_INSERT_MESSAGES = insert(MESSAGES)


def connections_for_accept(session: Session, organization_id: str) -> list[AcceptConnection]:
    """The organization's live connections, in id order (the first active one is the
    default of a channel)."""
    rows = session.connection().execute(_SELECT_CONNECTIONS, {"org": organization_id})
    return [AcceptConnection(*row) for row in rows]


def own_prices(session: Session, organization_id: str) -> dict[str, int]:
    rows = session.connection().execute(_SELECT_PRICES, {"org": organization_id})
    return {channel: amount for channel, amount in rows}


def lock_balance_amount(session: Session, organization_id: str) -> int | None:
    """The balance, its row locked until the transaction ends (SQLite's write lock
    already is). A column read, not an ORM object: the identity map would hand back an
    amount that an earlier debit in the same transaction left stale."""
    amount = session.connection().execute(_LOCK_BALANCE, {"org": organization_id}).scalar()
    return None if amount is None else int(amount)


def debit(session: Session, organization_id: str, amount: int, now: datetime) -> bool:
    """Take ``amount`` if the balance covers it (as billing's debit does)."""
    params = {"org": organization_id, "d": amount, "now": now}
    return bool(session.connection().execute(_DEBIT, params).rowcount)


def existing_custom_ids(
    session: Session, organization_id: str, custom_ids: Sequence[str]
) -> set[str]:
    if not custom_ids:
        return set()
    params = {"org": organization_id, "ids": list(custom_ids)}
    return {c for (c,) in session.connection().execute(_TAKEN_CUSTOM_IDS, params) if c}


def methods_of(
    session: Session, message_ids: Sequence[str], methods: Sequence[str]
) -> dict[str, str]:
    """Those of ``message_ids`` whose method is one of ``methods``: id -> method (one
    read; none when ``methods`` is empty)."""
    if not message_ids or not methods:
        return {}
    query = select(MESSAGES.c.id, MESSAGES.c.method).where(
        MESSAGES.c.id.in_(list(message_ids)), MESSAGES.c.method.in_(list(methods))
    )
    return {str(mid): str(method) for mid, method in session.connection().execute(query)}


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany INSERT (every row with the same keys); none is read back."""
    if rows:
        session.connection().execute(_INSERT_MESSAGES, list(rows))


# --- status by id (POST /v3/message/status) ---------------------------------------------


def messages_for(
    session: Session, organization_id: str, *, ids: Sequence[str], custom_ids: Sequence[str]
) -> list[Message]:
    """The organization's messages among ``ids`` and ``custom_ids`` (others' are absent)."""
    rows: list[Message] = []
    for column, wanted in ((Message.id, ids), (Message.custom_id, custom_ids)):
        if wanted:
            rows.extend(
                session.scalars(
                    select(Message).where(
                        Message.organization_id == organization_id, column.in_(list(wanted))
                    )
                )
            )
    return rows


def attempts_of(session: Session, message_ids: Sequence[str]) -> Sequence[MessageAttempt]:
    if not message_ids:
        return []
    return session.scalars(
        select(MessageAttempt)
        .where(MessageAttempt.message_id.in_(list(message_ids)))
        .order_by(MessageAttempt.id)
    ).all()
