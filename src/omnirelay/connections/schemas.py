"""Admin API shapes of channel connections."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SECRET_KEYS = ("password", "secret", "token", "api_key", "apikey", "auth", "private_key")


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=32, examples=["sms"])
    provider: str = Field(default="sandbox", min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)
    settings: dict[str, Any] = Field(default_factory=dict)
    senders: list[str] = Field(default_factory=list, max_length=100)
    active: bool = True
    templates_only: bool = False


class ConnectionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    settings: dict[str, Any] | None = None
    senders: list[str] | None = Field(default=None, max_length=100)
    active: bool | None = None
    templates_only: bool | None = None


class ConnectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: str
    provider: str
    name: str
    settings: dict[str, Any]
    senders: list[str]
    active: bool
    templates_only: bool
    created_at: datetime
    updated_at: datetime
    session: SessionStatus | None = None


class SessionStatus(BaseModel):
    """A long-lived session's state (SMPP), as its owner last reported it."""

    model_config = ConfigDict(from_attributes=True)

    state: str
    last_error: str | None
    in_flight: int
    sent_per_second: float
    owner: str | None
    updated_at: datetime


class ConnectionList(BaseModel):
    items: list[ConnectionOut]


def masked(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as shown: secret values replaced, so that a read never leaks them."""
    return {
        k: ("***" if any(s in k.lower() for s in SECRET_KEYS) and v else v)
        for k, v in settings.items()
    }
