"""Blocked phone numbers and blocked IP networks of an organization."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow
from omnirelay.webhooks.models import BigId


class BlockedPhone(Base):
    __tablename__ = "blocked_phones"
    # The accept path asks "which of these numbers are blocked?" per organization: the
    # unique index answers it.
    __table_args__ = (UniqueConstraint("organization_id", "phone"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))  # E.164 digits, no '+'
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The channel of an end user's opt-out ("sms", "telegram", ...); None: added through
    # /api. Only an opt-out is lifted by the user's START: an administrator's block stays.
    via: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OptOutSettings(Base):
    """An organization's opt-out keywords; no row: the defaults (blocklist/service.py)."""

    __tablename__ = "optout_settings"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    stop_words: Mapped[list[Any]] = mapped_column(JSON, default=list)
    start_words: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BlockedNetwork(Base):
    __tablename__ = "blocked_networks"
    __table_args__ = (UniqueConstraint("organization_id", "network"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    network: Mapped[str] = mapped_column(String(50))  # CIDR, normalised: "198.51.100.0/24"
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
