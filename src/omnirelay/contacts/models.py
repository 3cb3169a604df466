"""Contacts (one digital profile per person), their variables and variable values.

Values are typed EAV (ADR 19): one row per (contact, variable) with the value in the
column of the variable's type, each column indexed with the variable id in front, so a
filter condition is one index range and the lookup by a channel id is one unique index.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow

# Wire name -> column of each channel id a contact can have (seed 004's table).
CHANNEL_IDS: dict[str, str] = {
    "phone": "phone",
    "vkId": "vk_id",
    "viberId": "viber_id",
    "telegramId": "telegram_id",
    "fbId": "fb_id",
    "instagramId": "instagram_id",
    "webchatId": "webchat_id",
}
VALIDATE_AS = ("STRING", "NUMBER", "DATE")


def object_id() -> str:
    """24 hex digits, the shape of the seed's ids."""
    return uuid.uuid4().hex[:24]


class Contact(Base):
    __tablename__ = "contacts"
    # One unique index per channel id: the lookup by channel id (inbound messages, sends
    # by phone, merging) is one index probe, and two contacts can never share an id.
    __table_args__ = (
        UniqueConstraint("organization_id", "phone"),
        UniqueConstraint("organization_id", "vk_id"),
        UniqueConstraint("organization_id", "viber_id"),
        UniqueConstraint("organization_id", "telegram_id"),
        UniqueConstraint("organization_id", "fb_id"),
        UniqueConstraint("organization_id", "instagram_id"),
        UniqueConstraint("organization_id", "webchat_id"),
        Index(None, "organization_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=object_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)  # E.164
    vk_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    viber_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    telegram_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fb_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    instagram_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    webchat_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The channels' public data about the person, by channel designation ({"vk": {...}}).
    sources: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Variable(Base):
    __tablename__ = "contact_variables"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=object_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    validate_as: Mapped[str] = mapped_column(String(8))  # STRING | NUMBER | DATE
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactValue(Base):
    """A contact's value of one variable, in the column of the variable's type."""

    __tablename__ = "contact_values"
    __table_args__ = (
        Index(None, "variable_id", "value_text"),
        Index(None, "variable_id", "value_num"),
        Index(None, "variable_id", "value_date"),
    )

    contact_id: Mapped[str] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    variable_id: Mapped[str] = mapped_column(
        ForeignKey("contact_variables.id", ondelete="CASCADE"), primary_key=True
    )
    value_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    value_num: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_date: Mapped[date | None] = mapped_column(Date, nullable=True)
