"""Blocked phone numbers and blocked IP networks of an organization."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BlockedNetwork(Base):
    __tablename__ = "blocked_networks"
    __table_args__ = (UniqueConstraint("organization_id", "network"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    network: Mapped[str] = mapped_column(String(50))  # CIDR, normalised: "198.51.100.0/24"
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
