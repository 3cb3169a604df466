"""All SQL of the webhook engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
