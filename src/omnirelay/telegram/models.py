"""The state of a Telegram connection's bot in omnirelay: where long polling stopped,
which settings the bot was last connected with, and which process polls it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow
from omnirelay.webhooks.models import BigId


class TelegramState(Base):
    __tablename__ = "telegram_state"

    connection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("channel_connections.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # getUpdates ``offset``: the first update not yet stored as a job. Written in the
    # transaction that stores the updates, so a restart neither loses nor repeats them.
    next_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # The settings fingerprint the bot was last connected with (setWebhook/deleteWebhook).
    connected: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # One poller per bot across processes (Telegram answers 409 to a second getUpdates).
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
