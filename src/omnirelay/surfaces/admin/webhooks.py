"""Admin API: webhook deliveries and attempts, replays, endpoints, signing settings."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from omnirelay.surfaces.admin.deps import Caller, Ctx, Limit, Offset, RowId
from omnirelay.tenancy.auth import require_admin
from omnirelay.webhooks import service
from omnirelay.webhooks.models import WebhookEvent, WebhookSettings
from omnirelay.webhooks.schemas import (
    AttemptOut,
    EndpointOut,
    EventDetail,
    EventOut,
    EventPage,
    EventStatus,
    ReplayCount,
    ReplaySince,
    WebhookSettingsOut,
    WebhookSettingsUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _event(ev: WebhookEvent) -> EventOut:
    out = EventOut.model_validate(ev)
    if ev.status != "pending":
        out.next_attempt_at = None
    return out


def _settings(row: WebhookSettings) -> WebhookSettingsOut:
    return WebhookSettingsOut(
        callback_url=row.callback_url,
        retry_schedule=[float(s) for s in row.retry_schedule],
        signing_secret=row.signing_secret,
        previous_signing_secret_expires_at=row.previous_expires_at
        if row.previous_signing_secret
        else None,
    )


@router.get("/events", response_model=EventPage)
def list_events(
    ctx: Ctx,
    caller: Caller,
    status: EventStatus | None = None,
    since: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> EventPage:
    """Deliveries, newest first: status, attempts, last response code, next retry."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        events, total = service.list_events(
            session, caller.organization_id, status=status, since=since, limit=limit, offset=offset
        )
        items = [_event(e) for e in events]
    return EventPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/events/{event_id}", response_model=EventDetail)
def get_event(ctx: Ctx, caller: Caller, event_id: str) -> EventDetail:
    """One event with its body and every attempt (response code, latency, error)."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        ev, attempts = service.get_event(session, caller.organization_id, event_id)
        return EventDetail(
            **_event(ev).model_dump(),
            payload=ev.payload,
            attempt_log=[AttemptOut.model_validate(a) for a in attempts],
        )


@router.post("/events/{event_id}/replay", response_model=EventOut)
def replay_event(ctx: Ctx, caller: Caller, event_id: str) -> EventOut:
    """Deliver again with the same webhook-id; the retry schedule starts over."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        return _event(service.replay(session, caller.organization_id, event_id))


@router.post("/replay", response_model=ReplayCount)
def replay_failed(ctx: Ctx, caller: Caller, body: ReplaySince) -> ReplayCount:
    """Replay every failed event created since a time."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        n = service.replay_failed_since(session, caller.organization_id, body.since)
    return ReplayCount(replayed=n)


@router.get("/endpoints", response_model=list[EndpointOut])
def list_endpoints(ctx: Ctx, caller: Caller) -> list[EndpointOut]:
    require_admin(caller)
    with ctx.db.transaction() as session:
        return [
            EndpointOut.model_validate(e)
            for e in service.list_endpoints(session, caller.organization_id)
        ]


@router.post("/endpoints/{endpoint_id}/enable", response_model=EndpointOut)
def enable_endpoint(ctx: Ctx, caller: Caller, endpoint_id: RowId) -> EndpointOut:
    """Re-enable an endpoint that answered 410."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        return EndpointOut.model_validate(
            service.enable_endpoint(session, caller.organization_id, endpoint_id)
        )


@router.get("/settings", response_model=WebhookSettingsOut)
def get_settings(ctx: Ctx, caller: Caller) -> WebhookSettingsOut:
    """The retry schedule and the signing secret receivers verify `webhook-signature` with."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        return _settings(service.settings(session, caller.organization_id))


@router.patch("/settings", response_model=WebhookSettingsOut)
def update_settings(ctx: Ctx, caller: Caller, body: WebhookSettingsUpdate) -> WebhookSettingsOut:
    require_admin(caller)
    with ctx.db.transaction() as session:
        row = service.set_retry_schedule(session, caller.organization_id, body.retry_schedule)
        return _settings(row)


@router.post("/settings/rotate-secret", response_model=WebhookSettingsOut)
def rotate_secret(ctx: Ctx, caller: Caller) -> WebhookSettingsOut:
    """A new signing secret; the previous one also signs for 24 hours."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        return _settings(service.rotate_signing_secret(session, caller.organization_id))
