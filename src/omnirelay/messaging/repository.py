"""SQL of messages and attempts, and the accept path's statements (at the end)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, literal_column, or_, select, tuple_, update
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


def claim_queued(session: Session, connection_id: int, limit: int) -> Sequence[MessageAttempt]:
    """Queued attempts of a session-based connection, marked ``submitting``, oldest first."""
    rows = session.scalars(
        select(MessageAttempt)
        .where(MessageAttempt.connection_id == connection_id, MessageAttempt.status == "queued")
        .order_by(MessageAttempt.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.status = "submitting"
    session.flush()
    return rows


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


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany INSERT (every row with the same keys); none is read back."""
    if rows:
        session.connection().execute(_INSERT_MESSAGES, list(rows))


# --- the dispatch drain (messaging/dispatch.py) ----------------------------------------


def claim_due(
    session: Session, claim_id: str, limit: int, now: datetime, until: datetime
) -> list[str]:
    """Lease up to ``limit`` due messages to ``claim_id``, earliest first, in one
    statement; a lease that passed (its process died) is taken over. PostgreSQL skips rows
    another claim holds; SQLite's write lock serialises claims anyway."""
    due = (
        select(MESSAGES.c.id)
        .where(
            MESSAGES.c.due_at.is_not(None),
            MESSAGES.c.due_at <= now,
            or_(MESSAGES.c.lease_until.is_(None), MESSAGES.c.lease_until <= now),
        )
        .order_by(MESSAGES.c.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    result = session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.id.in_(due.scalar_subquery()))
        .values(claimed_by=claim_id, lease_until=until)
        .returning(MESSAGES.c.id)
    )
    return [row[0] for row in result]


def claimed(session: Session, ids: Sequence[str]) -> Sequence[Message]:
    """The claimed messages as objects, in due order (one SELECT)."""
    rows = session.scalars(
        select(Message).where(Message.id.in_(list(ids))).execution_options(populate_existing=True)
    ).all()
    return sorted(rows, key=lambda m: (m.due_at or m.created_at, m.id))


def next_due(session: Session, now: datetime) -> datetime | None:
    """The earliest due time still ahead (the drain sleeps until then)."""
    return session.scalar(
        select(func.min(Message.due_at)).where(Message.due_at.is_not(None), Message.due_at > now)
    )


def bring_forward(session: Session, message_ids: Sequence[str], at: datetime) -> int:
    """Messages waiting past ``at`` (a held gateway message whose device connected) become
    due at ``at``."""
    moved = 0
    for start in range(0, len(message_ids), 500):  # bounded IN lists
        result = session.execute(
            update(MESSAGES)
            .where(
                MESSAGES.c.id.in_(list(message_ids[start : start + 500])),
                MESSAGES.c.due_at > at,
            )
            .values(due_at=at)
        )
        moved += int(getattr(result, "rowcount", 0) or 0)
    return moved


def still_claimed(session: Session, ids: Sequence[str], claim_id: str) -> set[str]:
    """Which of ``ids`` are still leased to ``claim_id`` (locked until the transaction
    ends on PostgreSQL; SQLite's write lock holds them already)."""
    query = select(MESSAGES.c.id).where(
        MESSAGES.c.id.in_(list(ids)), MESSAGES.c.claimed_by == claim_id
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return {row[0] for row in session.execute(query)}


_ATTEMPTS = _tables[MessageAttempt.__tablename__]
_INSERT_ATTEMPTS = insert(_ATTEMPTS)
_MARK_SENT = (
    update(MESSAGES)
    .where(MESSAGES.c.id == bindparam("mid"), MESSAGES.c.final_at.is_(None))
    .values(
        status="sent",
        channel=bindparam("channel"),
        updated_at=bindparam("now"),
        due_at=None,
        claimed_by=None,
        lease_until=None,
    )
)


def insert_attempts(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.connection().execute(_INSERT_ATTEMPTS, list(rows))


def mark_sent(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """``{mid, channel, now}`` each: the message's step was sent; its claim ends."""
    if rows:
        session.connection().execute(_MARK_SENT, list(rows))


WAITING_STATUSES = ("queued", "submitting", "sent")


def expired_attempts(session: Session, now: datetime, limit: int) -> list[int]:
    """Attempts still waiting for a final report whose ttl has passed, oldest first."""
    rows = session.execute(
        select(_ATTEMPTS.c.id)
        .where(
            _ATTEMPTS.c.status.in_([literal_column(f"'{s}'") for s in WAITING_STATUSES]),
            _ATTEMPTS.c.expires_at <= now,
        )
        .order_by(_ATTEMPTS.c.expires_at)
        .limit(limit)
    )
    return [int(r[0]) for r in rows]


def next_expiry(session: Session, now: datetime) -> datetime | None:
    return session.scalar(
        select(func.min(MessageAttempt.expires_at)).where(
            _ATTEMPTS.c.status.in_([literal_column(f"'{s}'") for s in WAITING_STATUSES]),
            _ATTEMPTS.c.expires_at > now,
        )
    )


# --- reports applied set-based (messaging/statuses.py) -----------------------------------


def attempts_for_reports(
    session: Session, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], dict[str, Any]]:
    """(connection id, provider message id) -> its newest attempt and that attempt's
    message, as plain values, in one read (messages locked on PostgreSQL)."""
    found: dict[tuple[int, str], dict[str, Any]] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), 500):  # bounded IN lists
        chunk = unique[start : start + 500]
        query = (
            select(
                _ATTEMPTS.c.id,
                _ATTEMPTS.c.connection_id,
                _ATTEMPTS.c.provider_message_id,
                _ATTEMPTS.c.step,
                _ATTEMPTS.c.status,
                _ATTEMPTS.c.parts,
                _ATTEMPTS.c.channel,
                _ATTEMPTS.c.price,
                MESSAGES.c.id.label("message_id"),
                MESSAGES.c.step.label("message_step"),
                MESSAGES.c.status.label("message_status"),
                MESSAGES.c.final_at,
                MESSAGES.c.method,
                MESSAGES.c.organization_id,
                MESSAGES.c.custom_id,
                MESSAGES.c.report_url,
            )
            .join(MESSAGES, MESSAGES.c.id == _ATTEMPTS.c.message_id)
            .where(tuple_(_ATTEMPTS.c.connection_id, _ATTEMPTS.c.provider_message_id).in_(chunk))
            .order_by(_ATTEMPTS.c.id)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=MESSAGES)
        for row in session.execute(query):
            # Ordered by id: the newest attempt with the id wins (SMSCs reuse ids).
            found[(int(row.connection_id), str(row.provider_message_id))] = {
                "attempt_id": int(row.id),
                "message_id": row.message_id,
                "attempt_step": int(row.step),
                "attempt_status": row.status,
                "parts": int(row.parts),
                "channel": row.channel,
                "price": int(row.price),
                "message_step": int(row.message_step),
                "message_status": row.message_status,
                "final": row.final_at is not None,
                "method": row.method,
                "organization_id": row.organization_id,
                "custom_id": row.custom_id,
                "report_url": row.report_url,
            }
    return found


_SET_ATTEMPT_STATUS = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("aid"))
    .values(status=bindparam("status"), status_at=bindparam("now"))
)
_SET_MESSAGE_STATUS = (
    update(MESSAGES)
    .where(MESSAGES.c.id == bindparam("mid"))
    .values(
        status=bindparam("status"),
        updated_at=bindparam("now"),
        final_at=func.coalesce(MESSAGES.c.final_at, bindparam("now")),
        error=None,
        code=None,
    )
)


def set_attempt_statuses(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.connection().execute(_SET_ATTEMPT_STATUS, list(rows))


def set_message_statuses(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.connection().execute(_SET_MESSAGE_STATUS, list(rows))


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
