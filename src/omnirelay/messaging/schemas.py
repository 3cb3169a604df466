"""Admin API shapes of messages and notification settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    step: int
    channel: str
    connection_id: int
    provider: str
    sender: str | None
    provider_message_id: str | None
    status: str
    error: str | None
    code: int | None
    parts: int
    created_at: datetime
    status_at: datetime
    expires_at: datetime | None


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    custom_id: str | None
    method: str
    phone: str
    status: str
    step: int
    channel: str
    error: str | None
    code: int | None
    price: str
    parts: int
    daydelivery: bool
    send_after: datetime
    report_url: str | None
    reply_url: str | None
    created_at: datetime
    updated_at: datetime
    final_at: datetime | None


class MessageDetail(MessageOut):
    route: list[dict[str, Any]]
    attempts: list[AttemptOut]


class MessagePage(BaseModel):
    items: list[MessageOut]
    limit: int
    offset: int


class RouteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str
    sender: str | None = None
    ttl: int | None = Field(default=None, ge=60, le=86400)


class NotifySettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daylight_start: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    daylight_end: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    default_route: list[RouteEntry] | None = Field(default=None, max_length=10)


class NotifySettingsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    daylight_start: str
    daylight_end: str
    default_route: list[dict[str, Any]]
