"""Contacts (one digital profile per person), their variables and variable values.

Values are typed EAV (ADR 19): one row per (contact, variable) with the value in the
column of the variable's type, each column indexed with the variable id in front, so a
filter condition is one index range and the lookup by a channel id is one unique index.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
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
# Column -> its bit in ``ContactValue.channels`` (which of the contact's channel ids are
# set; ADR 39); migration 0030's triggers keep it in the same bits.
CHANNEL_BITS: dict[str, int] = {column: 1 << i for i, column in enumerate(CHANNEL_IDS.values())}


def mask_of(ids: Mapping[str, object]) -> int:
    """The mask of a contact whose channel ids are ``ids`` (column -> value or None)."""
    return sum(bit for column, bit in CHANNEL_BITS.items() if ids.get(column) is not None)


def _unique_when_set(column: str) -> Index:
    where = text(f"{column} IS NOT NULL")
    return Index(
        f"uq_contacts_organization_id_{column}",
        "organization_id",
        column,
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def _typed_index(column: str) -> Index:
    """(variable, value) for the values in ``column`` only: each value row is in the one
    index of its type; a comparison on the column implies the NOT NULL, so both engines
    use it for a filter condition."""
    where = text(f"{column} IS NOT NULL")
    return Index(
        f"ix_contact_values_variable_id_{column}",
        "variable_id",
        column,
        "contact_id",  # a filter's range reads its contacts from the index alone
        "channels",  # and tests their channels there too (ADR 39)
        sqlite_where=where,
        postgresql_where=where,
    )


_PROCESS = os.urandom(5).hex()
_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))


def object_id() -> str:
    """24 hex digits in the shape of the seed's ids (MongoDB ObjectIds): seconds, a
    per-process random part, a counter. Ids made one after another sort together, so
    a bulk import appends to the primary-key indexes instead of writing all over them."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{_PROCESS}{next(_counter) & 0xFFFFFF:06x}"


class Contact(Base):
    __tablename__ = "contacts"
    # One unique index per channel id: the lookup by channel id (inbound messages, sends
    # by phone, merging) is one index probe, and two contacts can never share an id.
    # Partial (only the contacts that have the id), so a bulk import writes no index
    # entries for the ids it does not give.
    __table_args__ = (
        *(_unique_when_set(column) for column in CHANNEL_IDS.values()),
        # With the id: the default order (createdAt DESC, then id) is one index walk.
        Index(None, "organization_id", "created_at", "id"),
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
        _typed_index("value_text"),
        _typed_index("value_num"),
        _typed_index("value_date"),
        # SQLite: the rows are the primary key's b-tree (one b-tree less per value
        # written; migration 0017, ADR 29).
        {"sqlite_with_rowid": False},
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
    # The contact's channel ids as a mask (CHANNEL_BITS), copied here so that a filter's
    # "has sms" next to a variable's condition is read from the variable's index, not a
    # probe of each contact (ADR 39). An insert names it (``repository``); database
    # triggers keep it after that (migration 0030): a move to another contact (a merge)
    # and a change of the contact's channel ids rewrite it.
    channels: Mapped[int] = mapped_column(Integer)


class ContactMerge(Base):
    """A merged-away contact's id and the contact it went into (ADR 29): a later call
    with the old id finds the kept contact. Merging into a contact that was itself merged
    later re-points the older redirects, so each is one step."""

    __tablename__ = "contact_merges"

    deleted_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    preserved_id: Mapped[str] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactImport(Base):
    """An import run as jobs (``/user/contacts/import``): the file, and how far it got.
    Each job takes the next batch of rows, so progress is committed batch by batch."""

    __tablename__ = "contact_imports"
    __table_args__ = (Index(None, "organization_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=object_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done
    format: Mapped[str] = mapped_column(String(8))  # csv | jsonl
    data: Mapped[str | None] = mapped_column(Text, nullable=True)  # dropped when done
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    merged: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
