"""SQL of call-backs. Lookups by SID are always filtered by organization."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnirelay.callbacks.models import Agent, Call, CallbackAccount, Option, Profile, Question

T = TypeVar("T", Profile, Option, Question, Agent, Call)
ACTIVE = ("queued", "calling", "waiting", "connected", "retrying")


def add(session: Session, row: Any) -> None:
    session.add(row)
    session.flush()


def get(session: Session, model: type[T], organization_id: str, sid: str) -> T | None:
    row = session.get(model, sid)
    return row if row is not None and row.organization_id == organization_id else None


def lock_call(session: Session, sid: str) -> Call | None:
    return session.scalars(
        select(Call)
        .where(Call.sid == sid)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def account_by_sid(session: Session, account_sid: str) -> CallbackAccount | None:
    return session.scalars(
        select(CallbackAccount).where(CallbackAccount.account_sid == account_sid)
    ).first()


def account_of(session: Session, organization_id: str) -> CallbackAccount | None:
    return session.get(CallbackAccount, organization_id)


def profiles(session: Session, organization_id: str) -> Sequence[Profile]:
    return session.scalars(
        select(Profile)
        .where(Profile.organization_id == organization_id)
        .order_by(Profile.created_at)
    ).all()


def options(session: Session, profile_sid: str) -> Sequence[Option]:
    return session.scalars(
        select(Option)
        .where(Option.profile_sid == profile_sid)
        .order_by(Option.position, Option.sid)
    ).all()


def questions(session: Session, profile_sid: str) -> Sequence[Question]:
    return session.scalars(
        select(Question)
        .where(Question.profile_sid == profile_sid)
        .order_by(Question.position, Question.sid)
    ).all()


def agents(session: Session, option_sid: str, *, lock: bool = False) -> Sequence[Agent]:
    query = select(Agent).where(Agent.option_sid == option_sid).order_by(Agent.joined_at, Agent.sid)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).all()


def calls_in(
    session: Session, option_sid: str, statuses: Sequence[str], *, lock: bool = False
) -> Sequence[Call]:
    query = (
        select(Call)
        .where(Call.option_sid == option_sid, Call.status.in_(statuses))
        .order_by(Call.queued_at, Call.sid)
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).all()


def recent_handle_times(session: Session, option_sid: str, limit: int = 20) -> list[float]:
    rows = session.execute(
        select(Call.connected_at, Call.ended_at)
        .where(
            Call.option_sid == option_sid,
            Call.status == "completed",
            Call.connected_at.is_not(None),
        )
        .order_by(Call.ended_at.desc())
        .limit(limit)
    ).all()
    return [(e - c).total_seconds() for c, e in rows if c and e]


def list_calls(
    session: Session,
    organization_id: str,
    *,
    statuses: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 500,
    sms_opt_in: bool | None = None,
) -> Sequence[Call]:
    query = select(Call).where(Call.organization_id == organization_id)
    if sms_opt_in is not None:
        query = query.where(Call.sms_opt_in.is_(sms_opt_in))
    if statuses:
        query = query.where(Call.status.in_(statuses))
    if since:
        query = query.where(Call.created_at >= since)
    if until:
        query = query.where(Call.created_at < until)
    return session.scalars(query.order_by(Call.created_at.desc()).limit(limit)).all()


def counts_by_option(session: Session, organization_id: str) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(Call.option_sid, Call.status, func.count())
        .where(Call.organization_id == organization_id, Call.status.in_((*ACTIVE, "scheduled")))
        .group_by(Call.option_sid, Call.status)
    ).all()
    return {(o, s): int(n) for o, s, n in rows}
