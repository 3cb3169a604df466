"""Webhook rules: emitting events (in the caller's transaction), settings, replays."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.db import utcnow
from omnirelay.errors import Conflict, InvalidInput, NotFound
from omnirelay.webhooks import bulk_repository as bulk
from omnirelay.webhooks import repository as repo
from omnirelay.webhooks.models import (
    DEFAULT_RETRY_SCHEDULE,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSettings,
)
from omnirelay.webhooks.signing import new_signing_secret

NOTIFY_CHANNEL = "omnirelay_webhooks"
ROTATION_OVERLAP = timedelta(hours=24)
MAX_SCHEDULE_STEPS = 20


def new_event_id() -> str:
    return "msg_" + uuid.uuid4().hex


Row = TypeVar("Row", WebhookSettings, WebhookEndpoint)


def _get_or_add(session: Session, find: Callable[[], Row | None], make: Callable[[], Row]) -> Row:
    """The row, created if missing. Two transactions may both find none: the second's
    INSERT then waits for the first and fails on the unique key, and takes the first's
    row instead of failing the whole job or request."""
    row = find()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = repo.add(session, make())
    except IntegrityError:
        row = find()
        if row is None:
            raise
    return row


def settings(session: Session, organization_id: str) -> WebhookSettings:
    return _get_or_add(
        session,
        lambda: repo.get_settings(session, organization_id),
        lambda: WebhookSettings(
            organization_id=organization_id,
            retry_schedule=list(DEFAULT_RETRY_SCHEDULE),
            signing_secret=new_signing_secret(),
        ),
    )


def _endpoint(session: Session, organization_id: str, url: str) -> WebhookEndpoint:
    return _get_or_add(
        session,
        lambda: repo.get_endpoint_by_url(session, organization_id, url),
        lambda: WebhookEndpoint(organization_id=organization_id, url=url),
    )


def emit(
    session: Session,
    organization_id: str,
    url: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    ordering_key: str | None = None,
) -> WebhookEvent:
    """Record an event for delivery; it is sent only if the caller's transaction commits.
    ``url`` must have passed ``ssrf.validate_url`` when the user gave it."""
    endpoint = _endpoint(session, organization_id, url)
    ev = WebhookEvent(
        id=new_event_id(),
        organization_id=organization_id,
        endpoint_id=endpoint.id,
        url=url,
        event_type=event_type,
        payload=payload,
        ordering_key=ordering_key,
        status="disabled" if endpoint.disabled_at else "pending",
        attempts=0,
        schedule_step=0,
        next_attempt_at=utcnow(),
    )
    session.add(ev)
    session.flush()
    _wake(session)
    return ev


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event of ``emit_many``."""

    organization_id: str
    url: str
    event_type: str
    payload: dict[str, Any]
    ordering_key: str | None = None


def emit_many(session: Session, events: Sequence[NewEvent]) -> list[str]:
    """``emit`` for a batch (the set-based status paths make many at once): the endpoints
    in one read (a new URL's is made once), the events in one executemany INSERT, in
    the order given (events sharing an ordering key are delivered in that order), one
    wake-up. The events' ids, in order."""
    if not events:
        return []
    pairs = list(dict.fromkeys((ev.organization_id, ev.url) for ev in events))
    endpoints = bulk.endpoints_for(session, pairs)
    for pair in pairs:
        if pair not in endpoints:
            made = _endpoint(session, *pair)
            endpoints[pair] = (made.id, made.disabled_at is not None)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for ev in events:
        endpoint_id, disabled = endpoints[(ev.organization_id, ev.url)]
        rows.append(
            {
                "id": new_event_id(),
                "organization_id": ev.organization_id,
                "endpoint_id": endpoint_id,
                "url": ev.url,
                "event_type": ev.event_type,
                "payload": ev.payload,
                "ordering_key": ev.ordering_key,
                "status": "disabled" if disabled else "pending",
                "attempts": 0,
                "schedule_step": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    bulk.insert_events(session, rows)
    _wake(session)
    return [str(row["id"]) for row in rows]


def emit_callback(
    session: Session,
    organization_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    ordering_key: str | None = None,
) -> WebhookEvent | None:
    """Seed 004's callback server: ``{name, data, secret}`` to the organization's URL."""
    row = repo.get_settings(session, organization_id)
    if row is None or not row.callback_url:
        return None
    body: dict[str, Any] = {"name": event_type, "data": data}
    if row.callback_secret is not None:
        body["secret"] = row.callback_secret
    return emit(
        session, organization_id, row.callback_url, event_type, body, ordering_key=ordering_key
    )


def _wake(session: Session) -> None:
    wakeup.notify(session, NOTIFY_CHANNEL)


# --- settings ---------------------------------------------------------------------


def set_callback_server(
    session: Session, organization_id: str, url: str, secret: str | None
) -> WebhookSettings:
    row = settings(session, organization_id)
    row.callback_url = url
    if secret is not None:
        row.callback_secret = secret
    _revive_endpoint(session, organization_id, url)
    session.flush()
    return row


def set_retry_schedule(
    session: Session, organization_id: str, schedule: Sequence[float]
) -> WebhookSettings:
    if not schedule or len(schedule) > MAX_SCHEDULE_STEPS or any(s < 0 for s in schedule):
        raise InvalidInput(
            "invalid_schedule",
            f"retrySchedule must hold 1..{MAX_SCHEDULE_STEPS} non-negative delays in seconds",
            field="retrySchedule",
        )
    row = settings(session, organization_id)
    row.retry_schedule = [float(s) for s in schedule]
    session.flush()
    return row


def rotate_signing_secret(session: Session, organization_id: str) -> WebhookSettings:
    """A new secret; the old one keeps signing too (two signatures) for 24 hours."""
    row = settings(session, organization_id)
    row.previous_signing_secret = row.signing_secret
    row.previous_expires_at = utcnow() + ROTATION_OVERLAP
    row.signing_secret = new_signing_secret()
    session.flush()
    return row


def signing_secrets(row: WebhookSettings, now: datetime | None = None) -> list[str]:
    now = now or utcnow()
    keys = [row.signing_secret]
    if row.previous_signing_secret and row.previous_expires_at and row.previous_expires_at > now:
        keys.append(row.previous_signing_secret)
    return keys


def _revive_endpoint(session: Session, organization_id: str, url: str) -> None:
    endpoint = repo.get_endpoint_by_url(session, organization_id, url)
    if endpoint is not None and endpoint.disabled_at is not None:
        endpoint.disabled_at = None
        endpoint.disabled_reason = None


def enable_endpoint(session: Session, organization_id: str, endpoint_id: int) -> WebhookEndpoint:
    endpoint = repo.get_endpoint(session, organization_id, endpoint_id)
    if endpoint is None:
        raise NotFound("endpoint_not_found", f"webhook endpoint {endpoint_id} not found")
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    session.flush()
    return endpoint


def list_endpoints(session: Session, organization_id: str) -> list[WebhookEndpoint]:
    return repo.list_endpoints(session, organization_id)


# --- events -------------------------------------------------------------------------


def get_event(
    session: Session, organization_id: str, event_id: str
) -> tuple[WebhookEvent, list[WebhookAttempt]]:
    ev = repo.get_event(session, organization_id, event_id)
    if ev is None:
        raise NotFound("event_not_found", f"webhook event {event_id!r} not found")
    return ev, repo.list_attempts(session, ev.seq)


def list_events(
    session: Session,
    organization_id: str,
    *,
    status: str | None,
    since: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[WebhookEvent], int]:
    return repo.list_events(
        session, organization_id, status=status, since=since, limit=limit, offset=offset
    )


def replay(session: Session, organization_id: str, event_id: str) -> WebhookEvent:
    """Send an event again, same webhook-id, with the retry schedule started over."""
    ev, _ = get_event(session, organization_id, event_id)
    if ev.status == "pending":
        raise Conflict("event_pending", "the event is still being delivered")
    endpoint = repo.get_endpoint(session, organization_id, ev.endpoint_id)
    if endpoint is not None and endpoint.disabled_at is not None:
        raise Conflict(
            "endpoint_disabled",
            "the endpoint is disabled (it answered 410); enable it before replaying",
        )
    _requeue(ev)
    session.flush()
    _wake(session)
    return ev


def replay_failed_since(session: Session, organization_id: str, since: datetime) -> int:
    events = repo.failed_events_since(session, organization_id, since)
    for ev in events:
        _requeue(ev)
    session.flush()
    if events:
        _wake(session)
    return len(events)


def _requeue(ev: WebhookEvent) -> None:
    ev.status = "pending"
    ev.schedule_step = 0
    ev.next_attempt_at = utcnow()
    ev.claimed_by = None
    ev.lease_until = None
    ev.delivered_at = None
