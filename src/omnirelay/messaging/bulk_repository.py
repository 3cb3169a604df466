"""The set-based SQL of the drains (ADR 18): claiming due messages, recording a batch of
sends, the ttl sweep, reports applied many at a time. One statement per batch, not per
message; Core statements, no ORM objects, except where a caller needs them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from omnirelay.messaging import fastsql
from omnirelay.messaging.models import Message, MessageAttempt, ProviderPart

_tables = Message.metadata.tables
MESSAGES = _tables[Message.__tablename__]


# --- the dispatch drain (messaging/dispatch.py) ----------------------------------------


# Organizations served side by side in one claim (the rest wait for the next batch).
MAX_ORGS_PER_CLAIM = 64

# The organizations that have messages waiting, by a loose index scan of
# ix_messages_org_due: one index seek per organization, however long its backlog.
_ORGS_WITH_DUE = text(
    """
    WITH RECURSIVE orgs(id) AS (
        SELECT MIN(organization_id) FROM messages WHERE due_at IS NOT NULL
        UNION ALL
        SELECT (SELECT MIN(m.organization_id) FROM messages m
                WHERE m.due_at IS NOT NULL AND m.organization_id > orgs.id)
        FROM orgs WHERE orgs.id IS NOT NULL
    )
    SELECT id FROM orgs WHERE id IS NOT NULL LIMIT :n
    """
)


def _due(now: datetime, limit: int, organization_id: str | None = None) -> Any:
    query = select(MESSAGES.c.id).where(
        MESSAGES.c.due_at.is_not(None),
        MESSAGES.c.due_at <= now,
        or_(MESSAGES.c.lease_until.is_(None), MESSAGES.c.lease_until <= now),
    )
    if organization_id is not None:
        query = query.where(MESSAGES.c.organization_id == organization_id)
    return query.order_by(MESSAGES.c.due_at).limit(limit)


# What the dispatch claim reads of each message it leases (RETURNING of its UPDATE).
CLAIM_COLUMNS = (
    MESSAGES.c.id,
    MESSAGES.c.organization_id,
    MESSAGES.c.method,
    MESSAGES.c.route,
    MESSAGES.c.step,
    MESSAGES.c.tries,
    MESSAGES.c.price,
    MESSAGES.c.final_at,
    MESSAGES.c.daydelivery,
    MESSAGES.c.custom_id,
    MESSAGES.c.report_url,
    MESSAGES.c.due_at,
    MESSAGES.c.created_at,
)


def claim_due(
    session: Session, claim_id: str, limit: int, now: datetime, until: datetime
) -> list[str]:
    return [
        row[0] for row in claim_due_rows(session, claim_id, limit, now, until, (MESSAGES.c.id,))
    ]


def claim_due_rows(
    session: Session,
    claim_id: str,
    limit: int,
    now: datetime,
    until: datetime,
    columns: Sequence[Any] = CLAIM_COLUMNS,
) -> list[Any]:
    """Lease up to ``limit`` due messages to ``claim_id`` and return ``columns`` of each
    (one UPDATE ... RETURNING); a lease that passed (its process
    died) is taken over. Fair between organizations: each organization with messages
    waiting gets an equal share of the batch, earliest first, and what the shares leave
    goes to the earliest due of anyone; so one organization's backlog delays another's
    message by one batch at most. PostgreSQL skips rows another claim holds; SQLite's
    write lock serialises claims anyway."""
    postgresql = session.get_bind().dialect.name == "postgresql"

    def pick(query: Any) -> list[str]:
        if postgresql:
            query = query.with_for_update(skip_locked=True)
        return [row[0] for row in session.execute(query)]

    orgs = [row[0] for row in session.execute(_ORGS_WITH_DUE, {"n": MAX_ORGS_PER_CLAIM})]
    if len(orgs) <= 1:
        # One organization waiting (a backlog): the rows are chosen and leased in one
        # statement, no list of ids sent back and forth.
        query = _due(now, limit)
        if postgresql:
            query = query.with_for_update(skip_locked=True)
        return list(
            session.execute(
                update(MESSAGES)
                .where(MESSAGES.c.id.in_(query.scalar_subquery()))
                .values(claimed_by=claim_id, lease_until=until)
                .returning(*columns)
            )
        )
    chosen: list[str] = []
    if len(orgs) > 1:
        share = max(1, limit // len(orgs))
        for organization_id in orgs:
            chosen += pick(_due(now, share, organization_id))
    if len(chosen) < limit:
        taken = set(chosen)
        for message_id in pick(_due(now, limit)):
            if len(chosen) >= limit:
                break
            if message_id not in taken:
                chosen.append(message_id)
    if not chosen:
        return []
    result = session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.id.in_(chosen))
        .values(claimed_by=claim_id, lease_until=until)
        .returning(*columns)
    )
    return list(result)


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
        status=bindparam("status"),
        channel=bindparam("channel"),
        updated_at=bindparam("now"),
        final_at=bindparam("final"),
        due_at=None,
        claimed_by=None,
        lease_until=None,
    )
)


def insert_attempts(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    fastsql.executemany(session, _INSERT_ATTEMPTS, rows)


def mark_sent(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """``{mid, status, channel, now, final}`` each: the message's step was sent (status
    ``sent``, final None) or sent and reported at once (``delivered``/``read``, final
    now); its claim ends. A message final already is left alone."""
    fastsql.executemany(session, _MARK_SENT, rows)


WAITING_STATUSES = ("queued", "submitting", "sent")


def expired_attempts(session: Session, now: datetime, limit: int) -> list[int]:
    """Attempts still waiting for a final report whose ttl has passed, oldest first."""
    query = (
        select(_ATTEMPTS.c.id)
        .where(
            _ATTEMPTS.c.status.in_([literal_column(f"'{s}'") for s in WAITING_STATUSES]),
            _ATTEMPTS.c.expires_at <= now,
        )
        .order_by(_ATTEMPTS.c.expires_at, _ATTEMPTS.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # another process's sweep has them
    return [int(r[0]) for r in session.execute(query)]


def postpone_expiry(session: Session, attempt_id: int, at: datetime) -> None:
    session.execute(update(_ATTEMPTS).where(_ATTEMPTS.c.id == attempt_id).values(expires_at=at))


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
            # Both rows: after waiting for a lock, PostgreSQL re-reads what it locked, so
            # the attempt's status is the committed one, not the one before the wait.
            query = query.with_for_update(of=(MESSAGES, _ATTEMPTS))
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


def status_rank(column: Any) -> Any:
    """SQL for pipeline.rank: a failure 4, read 3, delivered 2, sent 1, the rest 0."""
    return case(
        (column.in_([literal_column(f"'{s}'") for s in FAILED_STATUSES]), literal_column("4")),
        (column == literal_column("'read'"), literal_column("3")),
        (column == literal_column("'delivered'"), literal_column("2")),
        (column == literal_column("'sent'"), literal_column("1")),
        else_=literal_column("0"),
    )


FAILED_STATUSES = ("undelivered", "expired", "rejected", "error", "deleted")
# Statuses only move forward, in the statement itself: a row whose status is already as
# far as this one (another transaction's report, applied since the read) is left alone.
_SET_ATTEMPT_STATUS = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("aid"), status_rank(_ATTEMPTS.c.status) < bindparam("rank"))
    .values(status=bindparam("status"), status_at=bindparam("now"))
)
_SET_MESSAGE_STATUS = (
    update(MESSAGES)
    .where(MESSAGES.c.id == bindparam("mid"), status_rank(MESSAGES.c.status) < bindparam("rank"))
    .values(
        status=bindparam("status"),
        updated_at=bindparam("now"),
        final_at=func.coalesce(MESSAGES.c.final_at, bindparam("now")),
        error=None,
        code=None,
    )
)


def set_attempt_statuses(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    fastsql.executemany(session, _SET_ATTEMPT_STATUS, rows)


def set_message_statuses(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    fastsql.executemany(session, _SET_MESSAGE_STATUS, rows)


# --- SMPP session owners (messaging/sessions.py) ------------------------------------------


def routes_of(session: Session, message_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Message id -> its route, in one read."""
    out: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(message_ids), 500):
        chunk = list(message_ids[start : start + 500])
        for mid, route in session.execute(
            select(Message.id, Message.route).where(Message.id.in_(chunk))
        ):
            out[mid] = route
    return out


def parts_done(session: Session, attempt_ids: Sequence[int]) -> dict[int, list[int]]:
    """Attempt id -> the parts of it the provider already took, in one read."""
    out: dict[int, list[int]] = {}
    for start in range(0, len(attempt_ids), 500):
        chunk = list(attempt_ids[start : start + 500])
        for attempt_id, part in session.execute(
            select(ProviderPart.attempt_id, ProviderPart.part).where(
                ProviderPart.attempt_id.in_(chunk)
            )
        ):
            out.setdefault(int(attempt_id), []).append(int(part))
    return out


def attempts_to_mark_sent(
    session: Session, attempt_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Attempt id -> the attempt and its message as plain values (messages locked on
    PostgreSQL), in one read."""
    out: dict[int, dict[str, Any]] = {}
    unique = list(dict.fromkeys(attempt_ids))
    for start in range(0, len(unique), 500):
        query = (
            select(
                _ATTEMPTS.c.id,
                _ATTEMPTS.c.step,
                _ATTEMPTS.c.status,
                _ATTEMPTS.c.channel,
                _ATTEMPTS.c.price,
                _ATTEMPTS.c.parts,
                MESSAGES.c.id.label("message_id"),
                MESSAGES.c.step.label("message_step"),
                MESSAGES.c.final_at,
                MESSAGES.c.method,
                MESSAGES.c.organization_id,
                MESSAGES.c.custom_id,
                MESSAGES.c.report_url,
            )
            .join(MESSAGES, MESSAGES.c.id == _ATTEMPTS.c.message_id)
            .where(_ATTEMPTS.c.id.in_(unique[start : start + 500]))
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=(MESSAGES, _ATTEMPTS))  # as attempts_for_reports
        for row in session.execute(query):
            out[int(row.id)] = {
                "step": int(row.step),
                "status": row.status,
                "channel": row.channel,
                "price": int(row.price),
                "parts": int(row.parts),
                "message_id": row.message_id,
                "message_step": int(row.message_step),
                "final": row.final_at is not None,
                "method": row.method,
                "organization_id": row.organization_id,
                "custom_id": row.custom_id,
                "report_url": row.report_url,
            }
    return out


_SET_ATTEMPT_SENT = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("aid"))
    .values(status="sent", status_at=bindparam("now"), provider_message_id=bindparam("pid"))
)
_SET_MESSAGE_SENT = (
    update(MESSAGES)
    .where(MESSAGES.c.id == bindparam("mid"), MESSAGES.c.final_at.is_(None))
    .values(status="sent", updated_at=bindparam("now"))
)


def set_attempts_sent(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    fastsql.executemany(session, _SET_ATTEMPT_SENT, rows)


def set_messages_sent(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    fastsql.executemany(session, _SET_MESSAGE_SENT, rows)
