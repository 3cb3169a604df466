"""Messages, their attempts (one per route step tried) and per-organization settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow
from omnirelay.webhooks.models import BigId


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Seed 001 error 1018: custom_id is unique per organization; the database decides
        # between concurrent requests.
        UniqueConstraint("organization_id", "custom_id"),
        Index("ix_messages_org_created", "organization_id", "created_at"),
        # The dispatch drain's claim (messaging/dispatch.py): due messages only, by due
        # time and by organization (its fair shares).
        Index(
            "ix_messages_due",
            "due_at",
            sqlite_where=text("due_at IS NOT NULL"),
            postgresql_where=text("due_at IS NOT NULL"),
        ),
        Index(
            "ix_messages_org_due",
            "organization_id",
            "due_at",
            sqlite_where=text("due_at IS NOT NULL"),
            postgresql_where=text("due_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    custom_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    method: Mapped[str] = mapped_column(String(32))  # sendSMS, send, sendMixed, ...
    phone: Mapped[str] = mapped_column(String(20))  # E.164 digits, no '+'
    # The steps, each {channel, connection_id, sender, text, image, action, ttl, ...}.
    route: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    report_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    reply_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    daydelivery: Mapped[bool] = mapped_column(Boolean, default=False)
    send_after: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    step: Mapped[int] = mapped_column(Integer, default=0)  # the step being tried
    channel: Mapped[str] = mapped_column(String(32))  # the channel of that step
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    price: Mapped[int] = mapped_column(BigInteger, default=0)  # billing.models.UNIT
    parts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    final_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The message is its own dispatch job (ADR 18): when its current step is due to be
    # sent (None: nothing to send now), who claimed it and until when, and how many
    # retriable provider errors the step has had.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class MessageAttempt(Base):
    """One route step tried: what the provider was given and what it said."""

    __tablename__ = "message_attempts"
    __table_args__ = (
        # Provider events are matched by the provider's id. Not unique: SMSCs reuse ids
        # (after a restart, or when a counter wraps); the newest attempt wins.
        Index("ix_message_attempts_provider", "connection_id", "provider_message_id"),
        # The ttl sweep (pipeline.expire_due): attempts still waiting, by expiry.
        Index(
            "ix_message_attempts_waiting",
            "expires_at",
            sqlite_where=text("status IN ('queued', 'submitting', 'sent')"),
            postgresql_where=text("status IN ('queued', 'submitting', 'sent')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    organization_id: Mapped[str] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(32))
    connection_id: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str | None] = mapped_column(String(100), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    price: Mapped[int] = mapped_column(BigInteger, default=0)
    parts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class NotifySettings(Base):
    """Per-organization notification settings (the "Additional settings" of seed 001)."""

    __tablename__ = "notify_settings"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    daylight_start: Mapped[str] = mapped_column(String(5), default="09:00")
    daylight_end: Mapped[str] = mapped_column(String(5), default="20:00")
    # sendSimple's route: [{channel, sender?, ttl?}, ...]
    default_route: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class ProviderPart(Base):
    """One part of a multi-part message as the provider knows it (an SMPP submit_sm of a
    concatenated SMS has its own SMSC id): the attempt is delivered when all its parts are."""

    __tablename__ = "provider_parts"
    __table_args__ = (Index("ix_provider_parts_provider", "connection_id", "provider_message_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("message_attempts.id", ondelete="CASCADE"), index=True
    )
    connection_id: Mapped[int] = mapped_column(BigInteger)
    provider_message_id: Mapped[str] = mapped_column(String(100))
    part: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="sent")


class InboundMessage(Base):
    """A message from an end user (SMS MO, a reply); linked to the message it answers."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    connection_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(20))  # "" when the sender has no number
    # The sender on channels that do not address by phone: an email reply's From.
    address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    to: Mapped[str | None] = mapped_column(String(100), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    # Files it carried, as stored in the media storage (media/inbound.py): each
    # {mediaUrl, name, contentType, size} or {name, contentType, size, error}.
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PendingEvent(Base):
    """A provider event (a report, a reply) waiting to be applied: the inbox (ADR 40).
    Drained in batches by messaging/inbox.py when ``due_at`` comes; applied and deleted
    in one transaction, so an event is applied once or, after a crash, again (statuses
    only move forward: a repeat changes nothing)."""

    __tablename__ = "provider_events"
    __table_args__ = (Index("ix_provider_events_due", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(String(32))
    connection_id: Mapped[int] = mapped_column(BigInteger)
    provider_message_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # status, inbound
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Tries of an event that came before its attempt was recorded (pipeline.apply_event).
    tries: Mapped[int] = mapped_column(Integer, default=0)
