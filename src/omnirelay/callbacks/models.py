"""Call-back configuration and call-back requests.

SIDs are a two-letter kind and 32 hex characters, as the seed's service shows them
(``CA...`` for a call-back): PF profile, OP option, QU question, CA call, AG agent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow

SID = String(34)


class CallbackAccount(Base):
    """The HTTP Basic credentials of /3.0: account SID (not secret) and auth token (hashed)."""

    __tablename__ = "callback_accounts"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    account_sid: Mapped[str] = mapped_column(SID, unique=True)
    auth_token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Profile(Base):
    __tablename__ = "callback_profiles"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | paused
    sms: Mapped[bool] = mapped_column(Boolean, default=False)
    questions: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduling: Mapped[bool] = mapped_column(Boolean, default=False)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Scheduling: minutes between offered slots, days ahead, slots offered, overflow.
    offer_interval: Mapped[int] = mapped_column(Integer, default=15)
    max_scheduled: Mapped[int] = mapped_column(Integer, default=7)
    max_options: Mapped[int] = mapped_column(Integer, default=10)
    daily_overflow: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{status, day_of_week: [0..6 (Monday 0)], start_time: ["09:00"], end_time: ["17:00"]}]
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Retries when the customer does not answer or is busy.
    retry_attempts: Mapped[int] = mapped_column(Integer, default=2)
    retry_interval: Mapped[int] = mapped_column(Integer, default=120)  # seconds
    # Settings of the telephony adapter (the sandbox's delays; docs/api/callbacks.md).
    telephony: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Option(Base):
    """A call option: one queue of the profile, served by its agents."""

    __tablename__ = "callback_options"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    profile_sid: Mapped[str] = mapped_column(
        ForeignKey("callback_profiles.sid", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|paused|closed
    destination: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Question(Base):
    __tablename__ = "callback_questions"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    profile_sid: Mapped[str] = mapped_column(
        ForeignKey("callback_profiles.sid", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="text")  # text | number | choice
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=1)


class Agent(Base):
    __tablename__ = "callback_agents"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    option_sid: Mapped[str] = mapped_column(
        ForeignKey("callback_options.sid", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="available")  # available|busy|away
    call_sid: Mapped[str | None] = mapped_column(SID, nullable=True)  # the call being handled
    busy_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Call(Base):
    """A call-back request and its life: see docs/api/callbacks.md for the statuses."""

    __tablename__ = "callback_calls"
    __table_args__ = (Index("ix_callback_calls_queue", "option_sid", "status", "queued_at"),)

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    profile_sid: Mapped[str] = mapped_column(String(34))
    option_sid: Mapped[str] = mapped_column(String(34))
    number: Mapped[str] = mapped_column(String(20))  # E.164 digits
    status: Mapped[str] = mapped_column(String(24))
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sms_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    agent_sid: Mapped[str | None] = mapped_column(String(34), nullable=True)
    # The provider's id of the current attempt's call (Twilio's CallSid), for bridge and
    # hang-up; None with the sandbox.
    provider_call_sid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
