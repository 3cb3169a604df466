"""All SQL of the webhook engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar, cast

from sqlalchemy import Table, bindparam, exists, func, insert, literal_column, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from omnirelay.db import utcnow
from omnirelay.webhooks.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSettings,
)

R = TypeVar("R", WebhookSettings, WebhookEndpoint)


def add(session: Session, row: R) -> R:
    session.add(row)
    session.flush()
    return row


def get_settings(session: Session, organization_id: str) -> WebhookSettings | None:
    return session.get(WebhookSettings, organization_id)


def settings_for(session: Session, organization_ids: Sequence[str]) -> dict[str, WebhookSettings]:
    rows = session.scalars(
        select(WebhookSettings).where(WebhookSettings.organization_id.in_(set(organization_ids)))
    )
    return {r.organization_id: r for r in rows}


def get_endpoint_by_url(session: Session, organization_id: str, url: str) -> WebhookEndpoint | None:
    return session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.organization_id == organization_id, WebhookEndpoint.url == url
        )
    )


def get_endpoint(
    session: Session, organization_id: str, endpoint_id: int
) -> WebhookEndpoint | None:
    return session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.organization_id == organization_id, WebhookEndpoint.id == endpoint_id
        )
    )


def list_endpoints(session: Session, organization_id: str) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.organization_id == organization_id)
            .order_by(WebhookEndpoint.id)
        )
    )


def get_event(session: Session, organization_id: str, event_id: str) -> WebhookEvent | None:
    return session.scalar(
        select(WebhookEvent).where(
            WebhookEvent.organization_id == organization_id, WebhookEvent.id == event_id
        )
    )


def list_events(
    session: Session,
    organization_id: str,
    *,
    status: str | None,
    since: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[WebhookEvent], int]:
    conds = [WebhookEvent.organization_id == organization_id]
    if status:
        conds.append(WebhookEvent.status == status)
    if since:
        conds.append(WebhookEvent.created_at >= since)
    total = session.scalar(select(func.count()).select_from(WebhookEvent).where(*conds)) or 0
    rows = session.scalars(
        select(WebhookEvent)
        .where(*conds)
        .order_by(WebhookEvent.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def list_attempts(session: Session, event_seq: int) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_seq == event_seq)
            .order_by(WebhookAttempt.attempt)
        )
    )


def failed_events_since(
    session: Session, organization_id: str, since: datetime
) -> list[WebhookEvent]:
    return list(
        session.scalars(
            select(WebhookEvent)
            .where(
                WebhookEvent.organization_id == organization_id,
                WebhookEvent.status == "failed",
                WebhookEvent.created_at >= since,
            )
            .order_by(WebhookEvent.seq)
        )
    )


# --- the deliverer's side --------------------------------------------------------


PENDING: ColumnElement[str] = literal_column("'pending'")  # a literal, so the partial indexes apply


def claim(
    session: Session,
    deliverer_id: str,
    *,
    limit: int,
    per_url: int,
    lease_seconds: float,
    exclude_urls: Sequence[str] = (),
) -> list[WebhookEvent]:
    """Due events, at most one per ordering key (its oldest pending one) and ``per_url``
    per URL, leased to us."""
    now = utcnow()
    e = WebhookEvent
    earlier = aliased(WebhookEvent)
    is_head = ~exists().where(
        earlier.ordering_key == e.ordering_key, earlier.status == PENDING, earlier.seq < e.seq
    )
    claimable = (
        e.status == PENDING,
        e.next_attempt_at <= now,
        or_(e.lease_until.is_(None), e.lease_until < now),
    )
    # Step 1, no locks: the earliest due events, ranked within their URL.
    window = select(e.seq, e.url, e.next_attempt_at).where(
        *claimable, or_(e.ordering_key.is_(None), is_head)
    )
    if exclude_urls:
        window = window.where(e.url.not_in(list(exclude_urls)))
    early = window.order_by(e.next_attempt_at, e.seq).limit(limit * 4).subquery()
    ranked = select(
        early.c.seq,
        early.c.next_attempt_at,
        func.row_number()
        .over(partition_by=early.c.url, order_by=(early.c.next_attempt_at, early.c.seq))
        .label("rn"),
    ).subquery()
    candidates = (
        select(ranked.c.seq)
        .where(ranked.c.rn <= per_url)
        .order_by(ranked.c.next_attempt_at, ranked.c.seq)
        .limit(limit)
    )
    # Step 2: lock what is still claimable; rows another deliverer holds are skipped.
    seqs = list(
        session.scalars(
            select(e.seq).where(e.seq.in_(candidates), *claimable).with_for_update(skip_locked=True)
        )
    )
    if not seqs:
        return []
    claimed = session.scalars(
        update(e)
        .where(e.seq.in_(seqs))
        .values(claimed_by=deliverer_id, lease_until=now + timedelta(seconds=lease_seconds))
        .returning(e),
        execution_options={"synchronize_session": False},
    )
    return sorted(claimed, key=lambda ev: ev.seq)


def release(session: Session, deliverer_id: str, seqs: Sequence[int]) -> None:
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.seq.in_(list(seqs)), WebhookEvent.claimed_by == deliverer_id)
        .values(claimed_by=None, lease_until=None)
    )


def renew(session: Session, deliverer_id: str, seqs: Sequence[int], lease_seconds: float) -> None:
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.seq.in_(list(seqs)), WebhookEvent.claimed_by == deliverer_id)
        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
    )


def next_due_at(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(WebhookEvent.next_attempt_at)).where(WebhookEvent.status == PENDING)
    )


@dataclass(frozen=True)
class AttemptResult:
    seq: int
    endpoint_id: int
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    outcome: str  # delivered | retry | failed | disabled
    next_attempt_at: datetime | None  # for retry


def record_results(session: Session, deliverer_id: str, results: Sequence[AttemptResult]) -> None:
    """Write a batch of attempts in a few statements. An event whose lease we lost is left
    to its new owner (the guard on ``claimed_by``); its attempt is still logged."""
    if not results:
        return
    now = utcnow()
    ev = cast(Table, WebhookEvent.__table__)
    guard = (ev.c.seq == bindparam("b_seq"), ev.c.claimed_by == deliverer_id)
    released = {"claimed_by": None, "lease_until": None}
    retries = [r for r in results if r.outcome == "retry"]
    finals = [r for r in results if r.outcome != "retry"]
    if retries:
        session.execute(
            update(ev)
            .where(*guard)
            .values(
                attempts=ev.c.attempts + 1,
                schedule_step=ev.c.schedule_step + 1,
                next_attempt_at=bindparam("b_next"),
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
                **released,
            ),
            [
                {
                    "b_seq": r.seq,
                    "b_next": r.next_attempt_at,
                    "b_code": r.status_code,
                    "b_error": r.error,
                }
                for r in retries
            ],
        )
    if finals:
        session.execute(
            update(ev)
            .where(*guard)
            .values(
                attempts=ev.c.attempts + 1,
                status=bindparam("b_status"),
                delivered_at=bindparam("b_delivered"),
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
                **released,
            ),
            [
                {
                    "b_seq": r.seq,
                    "b_status": r.outcome,
                    "b_code": r.status_code,
                    "b_error": r.error,
                    "b_delivered": now if r.outcome == "delivered" else None,
                }
                for r in finals
            ],
        )
    session.execute(
        insert(WebhookAttempt),
        [
            {
                "event_seq": r.seq,
                "attempt": r.attempt,
                "started_at": r.started_at,
                "duration_ms": r.duration_ms,
                "status_code": r.status_code,
                "error": r.error,
                "outcome": r.outcome,
            }
            for r in results
        ],
    )
    for r in finals:
        if r.outcome == "disabled":
            disable_endpoint(session, r.endpoint_id, f"receiver answered {r.status_code}")


def disable_endpoint(session: Session, endpoint_id: int, reason: str) -> None:
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.disabled_at.is_(None))
        .values(disabled_at=utcnow(), disabled_reason=reason)
    )
    # Events still waiting for this endpoint will not be attempted (a replay revives them).
    session.execute(
        update(WebhookEvent)
        .where(
            WebhookEvent.endpoint_id == endpoint_id,
            WebhookEvent.status == "pending",
        )
        .values(status="disabled", last_error="endpoint disabled")
    )
