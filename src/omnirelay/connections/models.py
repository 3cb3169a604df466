"""A channel connection: one provider account of one channel, with its sender IDs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow
from omnirelay.webhooks.models import BigId

CHANNELS = ("sms", "viber", "vk", "telegram")  # each organization gets a sandbox of each
# WhatsApp is sent through gateway devices, each with its own connection (gateway/).
DEVICE_CHANNELS = ("whatsapp",)
# Channels an organization connects itself (no sandbox connection is made for it).
OWN_CHANNELS = ("email", "webchat")


class ChannelConnection(Base):
    __tablename__ = "channel_connections"

    # Integer ids: the APIs reference connections as numbers (`connections: [1, 2]`).
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    # Provider settings; secrets in here must stay readable to log in to the provider,
    # so they are masked on output instead of hashed.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    senders: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Channels such as WhatsApp Business or Russian SMS take approved templates only.
    templates_only: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConnectionLease(Base):
    """Which process runs a connection's long-lived session (SMPP): one owner at a time,
    across every process on PostgreSQL; a lapsed lease is taken over."""

    __tablename__ = "connection_leases"

    connection_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime)


class ConnectionStatus(Base):
    """What the session owner last reported: shown in /api/connections/{id}."""

    __tablename__ = "connection_status"

    connection_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    in_flight: Mapped[int] = mapped_column(default=0)
    sent_per_second: Mapped[float] = mapped_column(default=0.0)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
