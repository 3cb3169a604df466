"""Wire models of the webhook part of the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from omnirelay.tenancy.schemas import Page, Wire

EventStatus = Literal["pending", "delivered", "failed", "disabled"]


class AttemptOut(Wire):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    outcome: str


class EventOut(Wire):
    id: str
    url: str
    event_type: str
    status: EventStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class EventDetail(EventOut):
    payload: dict[str, Any]
    attempt_log: list[AttemptOut]


class EventPage(Page):
    items: list[EventOut]


class ReplaySince(Wire):
    since: datetime


class ReplayCount(Wire):
    replayed: int


class EndpointOut(Wire):
    id: int
    url: str
    disabled_at: datetime | None
    disabled_reason: str | None


class WebhookSettingsOut(Wire):
    callback_url: str | None
    retry_schedule: list[float]
    signing_secret: str
    previous_signing_secret_expires_at: datetime | None


class WebhookSettingsUpdate(Wire):
    retry_schedule: list[float] = Field(min_length=1, max_length=20)
