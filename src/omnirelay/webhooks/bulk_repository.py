"""The set-based SQL of the webhook drain (webhooks/step.py, ADR 26) and of emitting many
events at once: one statement per batch, not per event (SQLAlchemy Core, executemany)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy import (
    Table,
    Text,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from omnirelay.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookEvent

EVENTS = cast(Table, WebhookEvent.__table__)
ATTEMPTS = cast(Table, WebhookAttempt.__table__)
ENDPOINTS = cast(Table, WebhookEndpoint.__table__)
PENDING: ColumnElement[str] = literal_column("'pending'")  # a literal: the partial indexes apply
MAX_ORGS_PER_CLAIM = 64

# Organizations with pending events: a loose index scan of ix_webhook_events_org_due (one
# index probe per organization, however many events each has waiting).
_ORGS_WITH_PENDING = text(
    """
    WITH RECURSIVE orgs(id) AS (
        SELECT MIN(organization_id) FROM webhook_events WHERE status = 'pending'
        UNION ALL
        SELECT (SELECT MIN(e.organization_id) FROM webhook_events e
                WHERE e.status = 'pending' AND e.organization_id > orgs.id)
        FROM orgs WHERE orgs.id IS NOT NULL
    )
    SELECT id FROM orgs WHERE id IS NOT NULL LIMIT :n
    """
)


# --- emitting many ------------------------------------------------------------------------


def endpoints_for(
    session: Session, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, bool]]:
    """(organization, url) -> (endpoint id, disabled) of the pairs that have an endpoint."""
    if not pairs:
        return {}
    rows = session.execute(
        select(
            ENDPOINTS.c.organization_id,
            ENDPOINTS.c.url,
            ENDPOINTS.c.id,
            ENDPOINTS.c.disabled_at.is_not(None),
        ).where(tuple_(ENDPOINTS.c.organization_id, ENDPOINTS.c.url).in_(list(set(pairs))))
    )
    return {(r[0], r[1]): (int(r[2]), bool(r[3])) for r in rows}


def insert_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(EVENTS), list(rows))


# --- the claim ----------------------------------------------------------------------------


class Claimed(NamedTuple):
    """A claimed event as the deliverer needs it (no ORM object; a tuple: cheap to make)."""

    seq: int
    id: str
    organization_id: str
    endpoint_id: int
    url: str
    body: str  # the stored JSON text, sent as it is
    attempts: int
    schedule_step: int


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    e = EVENTS
    earlier = EVENTS.alias("earlier")
    # The oldest pending event of its ordering key (one at a time, in order).
    head = ~exists().where(
        earlier.c.ordering_key == e.c.ordering_key,
        earlier.c.status == PENDING,
        earlier.c.seq < e.c.seq,
    )
    return (
        e.c.status == PENDING,
        e.c.next_attempt_at <= now,
        or_(e.c.lease_until.is_(None), e.c.lease_until < now),
        or_(e.c.ordering_key.is_(None), head),
    )


def claim_due(
    session: Session,
    claim_id: str,
    *,
    limit: int,
    now: datetime,
    until: datetime,
    per_url: int,
    url_room: dict[str, int],
    exclude_urls: Sequence[str] = (),
) -> list[Claimed]:
    """Lease up to ``limit`` due events to ``claim_id``, earliest first, at most ``per_url``
    per URL (``url_room[url]`` for a URL the caller already holds some of). Fair between
    organizations: each organization with events waiting gets an equal share of the batch
    and what the shares leave goes to the earliest due, so one organization's backlog (or
    its receiver that is down) delays another's event by one batch at most. PostgreSQL
    skips rows another claim holds; SQLite's write lock serialises claims anyway."""
    e = EVENTS
    postgresql = session.get_bind().dialect.name == "postgresql"
    conds = list(_claimable(now))
    if exclude_urls:
        conds.append(e.c.url.not_in(list(exclude_urls)))
    room = dict(url_room)
    chosen: list[int] = []
    taken: set[int] = set()

    def pick(n: int, organization_id: str | None = None) -> None:
        query = select(e.c.seq, e.c.url).where(*conds)
        if organization_id is not None:
            query = query.where(e.c.organization_id == organization_id)
        # Over-fetch a little: rows beyond a URL's room, or taken by a share, are skipped.
        query = query.order_by(e.c.next_attempt_at, e.c.seq).limit(n * 2 + len(taken))
        if postgresql:
            query = query.with_for_update(of=e, skip_locked=True)
        for seq, url in session.execute(query):
            if len(chosen) >= limit or n <= 0:
                break
            left = room.get(url, per_url)
            if seq in taken or left <= 0:
                continue
            room[url] = left - 1
            chosen.append(seq)
            taken.add(seq)
            n -= 1

    orgs = [r[0] for r in session.execute(_ORGS_WITH_PENDING, {"n": MAX_ORGS_PER_CLAIM})]
    if len(orgs) > 1:
        share = max(1, limit // len(orgs))
        for organization_id in orgs:
            pick(share, organization_id)
    if len(chosen) < limit:
        pick(limit - len(chosen))
    if not chosen:
        return []
    rows = session.execute(
        update(e)
        .where(seq_in(e.c.seq, postgresql))
        .values(claimed_by=bindparam("b_claim"), lease_until=bindparam("b_until"))
        .returning(
            e.c.seq,
            e.c.id,
            e.c.organization_id,
            e.c.endpoint_id,
            e.c.url,
            sa.cast(e.c.payload, Text),
            e.c.attempts,
            e.c.schedule_step,
        ),
        {"b_seqs": seq_list(chosen, postgresql), "b_claim": claim_id, "b_until": until},
    )
    return sorted(map(Claimed._make, rows), key=lambda c: c.seq)


def next_due(session: Session, now: datetime) -> datetime | None:
    """When the next pending event not yet due falls due (a retry, mostly). Due events
    that are not claimable now (in flight, their host full) wake the drain themselves."""
    at = session.scalar(
        select(func.min(EVENTS.c.next_attempt_at)).where(
            EVENTS.c.status == PENDING, EVENTS.c.next_attempt_at > now
        )
    )
    return cast(datetime | None, at)


def release(session: Session, held: Sequence[tuple[int, str]]) -> None:
    """Give back (seq, claim id) leases untried: due again at once."""
    if held:
        session.execute(
            update(EVENTS)
            .where(EVENTS.c.seq == bindparam("b_seq"), EVENTS.c.claimed_by == bindparam("b_claim"))
            .values(claimed_by=None, lease_until=None),
            [{"b_seq": s, "b_claim": c} for s, c in held],
        )


def renew(session: Session, held: Sequence[tuple[int, str]], until: datetime) -> None:
    if held:
        session.execute(
            update(EVENTS)
            .where(EVENTS.c.seq == bindparam("b_seq"), EVENTS.c.claimed_by == bindparam("b_claim"))
            .values(lease_until=until),
            [{"b_seq": s, "b_claim": c} for s, c in held],
        )


# --- the record -----------------------------------------------------------------------------


class AttemptResult(NamedTuple):
    seq: int
    claim_id: str
    endpoint_id: int
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    outcome: str  # delivered | retry | failed | disabled
    next_attempt_at: datetime | None  # for retry


def seq_in(column: ColumnElement[int], postgresql: bool) -> ColumnElement[bool]:
    """``column IN`` the list bound as ``b_seqs``: one parameter however long the list
    (an array on PostgreSQL, a JSON array read by ``json_each`` on SQLite), so the
    statement is compiled once and binds one value, not one per row."""
    if postgresql:
        return column == sa.any_(bindparam("b_seqs", type_=ARRAY(sa.BigInteger)))
    values = func.json_each(bindparam("b_seqs", type_=Text)).table_valued("value")
    return column.in_(select(values.c.value))


def seq_list(seqs: list[int], postgresql: bool) -> Any:
    return seqs if postgresql else json.dumps(seqs)


def record(session: Session, results: Sequence[AttemptResult], now: datetime) -> None:
    """A batch of attempts in few statements: the events delivered in one UPDATE per
    (claim, status code) (usually one for the whole batch), the others' new states in
    one executemany UPDATE (both only where the lease is still ours: an event taken over
    after its lease passed is left to its new owner), every attempt in one executemany
    INSERT, and the endpoints a 410 disabled (their waiting events with them)."""
    if not results:
        return
    e = EVENTS
    postgresql = session.get_bind().dialect.name == "postgresql"
    delivered: defaultdict[tuple[str, int | None], list[int]] = defaultdict(list)
    others: list[AttemptResult] = []
    for r in results:
        if r.outcome == "delivered":
            delivered[(r.claim_id, r.status_code)].append(r.seq)
        else:
            others.append(r)
    for (claim_id, code), seqs in delivered.items():
        session.execute(
            update(e)
            .where(e.c.claimed_by == bindparam("b_claim"), seq_in(e.c.seq, postgresql))
            .values(
                attempts=e.c.attempts + 1,
                status="delivered",
                delivered_at=bindparam("b_now"),
                last_status_code=bindparam("b_code"),
                last_error=None,
                claimed_by=None,
                lease_until=None,
            ),
            {
                "b_claim": claim_id,
                "b_seqs": seq_list(seqs, postgresql),
                "b_now": now,
                "b_code": code,
            },
        )
    if others:
        _record_others(session, others)
    _insert_attempts(session, results)
    disabled = {r.endpoint_id: r.status_code for r in results if r.outcome == "disabled"}
    if disabled:
        disable_endpoints(session, disabled, now)


def _record_others(session: Session, results: Sequence[AttemptResult]) -> None:
    e = EVENTS
    session.execute(
        update(e)
        .where(e.c.seq == bindparam("b_seq"), e.c.claimed_by == bindparam("b_claim"))
        .values(
            attempts=e.c.attempts + 1,
            schedule_step=e.c.schedule_step + bindparam("b_step"),
            status=bindparam("b_status"),
            next_attempt_at=func.coalesce(bindparam("b_next"), e.c.next_attempt_at),
            delivered_at=None,  # a replayed event's earlier delivery no longer holds
            last_status_code=bindparam("b_code"),
            last_error=bindparam("b_error"),
            claimed_by=None,
            lease_until=None,
        ),
        [
            {
                "b_seq": r.seq,
                "b_claim": r.claim_id,
                "b_step": 1 if r.outcome == "retry" else 0,
                "b_status": "pending" if r.outcome == "retry" else r.outcome,
                "b_next": r.next_attempt_at,
                "b_code": r.status_code,
                "b_error": r.error,
            }
            for r in results
        ],
    )


_ATTEMPT_COLUMNS = "event_seq, attempt, started_at, duration_ms, status_code, error, outcome"
# Every attempt of a batch in one statement binding one value per column (PostgreSQL:
# arrays, unnest) or one for all (SQLite: a JSON array of rows, json_each): no per-row
# parameter processing, which was half the record's time as an executemany.
_INSERT_ATTEMPTS_PG = text(
    f"INSERT INTO webhook_attempts ({_ATTEMPT_COLUMNS}) SELECT * FROM unnest("
    "CAST(:seq AS BIGINT[]), CAST(:attempt AS INTEGER[]), CAST(:started AS TIMESTAMPTZ[]), "
    "CAST(:ms AS INTEGER[]), CAST(:code AS INTEGER[]), CAST(:error AS TEXT[]), "
    "CAST(:outcome AS TEXT[]))"
)
_INSERT_ATTEMPTS_SQLITE = text(
    f"INSERT INTO webhook_attempts ({_ATTEMPT_COLUMNS}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(7))
    + " FROM json_each(:rows)"
)


def _sqlite_time(at: datetime) -> str:
    """As SQLAlchemy's SQLite DATETIME stores a UTCDateTime: naive UTC, microseconds."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert_attempts(session: Session, results: Sequence[AttemptResult]) -> None:
    # Every attempt is logged, even one whose lease was lost (it did reach the receiver).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _INSERT_ATTEMPTS_PG,
            {
                "seq": [r.seq for r in results],
                "attempt": [r.attempt for r in results],
                "started": [r.started_at for r in results],
                "ms": [r.duration_ms for r in results],
                "code": [r.status_code for r in results],
                "error": [r.error for r in results],
                "outcome": [r.outcome for r in results],
            },
        )
        return
    rows = [
        (
            r.seq,
            r.attempt,
            _sqlite_time(r.started_at),
            r.duration_ms,
            r.status_code,
            r.error,
            r.outcome,
        )
        for r in results
    ]
    session.execute(_INSERT_ATTEMPTS_SQLITE, {"rows": json.dumps(rows)})


def disable_endpoints(session: Session, codes: dict[int, int | None], now: datetime) -> None:
    ids = list(codes)
    session.execute(
        update(ENDPOINTS)
        .where(ENDPOINTS.c.id == bindparam("b_id"), ENDPOINTS.c.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=bindparam("b_reason")),
        [{"b_id": i, "b_reason": f"receiver answered {codes[i]}"} for i in ids],
    )
    # Events still waiting for these endpoints are not attempted (a replay revives them).
    session.execute(
        update(EVENTS)
        .where(and_(EVENTS.c.endpoint_id.in_(ids), EVENTS.c.status == PENDING))
        .values(status="disabled", last_error="endpoint disabled")
    )
