"""The set-based SQL of a dispatch claim's decisions and of the SMPP session owners'
claims (ADR 25): one statement for the batch, executemany for its rows, no ORM objects."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from omnirelay.messaging import fastsql
from omnirelay.messaging.models import Message, MessageAttempt, ProviderPart

_tables = Message.metadata.tables
MESSAGES = _tables[Message.__tablename__]
ATTEMPTS = _tables[MessageAttempt.__tablename__]
PARTS = _tables[ProviderPart.__tablename__]

# The claim ends with nothing to send (a message already final): not due until a handover.
_RELEASE = (
    update(MESSAGES)
    .where(MESSAGES.c.id == bindparam("mid"))
    .values(due_at=None, claimed_by=None, lease_until=None)
)
# The step went to a session owner (SMPP): the claim ends, the message is on its channel.
_QUEUED = (
    update(MESSAGES)
    .where(MESSAGES.c.id == bindparam("mid"))
    .values(
        channel=bindparam("channel"),
        updated_at=bindparam("now"),
        due_at=None,
        claimed_by=None,
        lease_until=None,
    )
)
_INSERT_ATTEMPTS = insert(ATTEMPTS)


def release(session: Session, message_ids: Sequence[str]) -> None:
    fastsql.executemany(session, _RELEASE, [{"mid": m} for m in message_ids])


def queue_attempts(
    session: Session, attempts: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]]
) -> None:
    """The attempts (``status`` queued, ``expires_at`` set) in one executemany INSERT,
    their messages (``{mid, channel, now}``) released in one executemany UPDATE."""
    fastsql.executemany(session, _INSERT_ATTEMPTS, attempts)
    fastsql.executemany(session, _QUEUED, messages)


class ConnectionRow(NamedTuple):
    id: int
    provider: str
    active: bool
    deleted: bool
    settings: dict[str, Any]


def connections(session: Session, ids: Iterable[int]) -> dict[int, ConnectionRow]:
    from omnirelay.connections.models import ChannelConnection

    table = _tables[ChannelConnection.__tablename__]
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(
            table.c.id, table.c.provider, table.c.active, table.c.deleted_at, table.c.settings
        ).where(table.c.id.in_(wanted))
    )
    return {
        int(r.id): ConnectionRow(
            int(r.id), r.provider, bool(r.active), r.deleted_at is not None, dict(r.settings or {})
        )
        for r in rows
    }


# --- SMPP session owners (smpp/runner.py) --------------------------------------------


class QueuedAttempt(NamedTuple):
    id: int
    message_id: str
    step: int


def claim_queued(session: Session, connection_id: int, limit: int) -> list[QueuedAttempt]:
    """Up to ``limit`` queued attempts of a session-based connection marked ``submitting``
    in one UPDATE ... RETURNING, oldest first (PostgreSQL skips rows another owner holds)."""
    pick = (
        select(ATTEMPTS.c.id)
        .where(ATTEMPTS.c.connection_id == connection_id, ATTEMPTS.c.status == "queued")
        .order_by(ATTEMPTS.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    result = session.execute(
        update(ATTEMPTS)
        .where(ATTEMPTS.c.id.in_(pick.scalar_subquery()), ATTEMPTS.c.status == "queued")
        .values(status="submitting")
        .returning(ATTEMPTS.c.id, ATTEMPTS.c.message_id, ATTEMPTS.c.step)
    )
    rows = [QueuedAttempt(int(r[0]), r[1], int(r[2])) for r in result]
    rows.sort(key=lambda r: r.id)  # RETURNING has no order
    return rows


def known_provider_ids(session: Session, connection_id: int, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` an attempt or a part of this connection was given by the provider
    (two reads for a batch of receipts)."""
    found: set[str] = set()
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        for table in (ATTEMPTS, PARTS):
            found.update(
                row[0]
                for row in session.execute(
                    select(table.c.provider_message_id).where(
                        table.c.connection_id == connection_id,
                        table.c.provider_message_id.in_(chunk),
                    )
                )
            )
    return found
