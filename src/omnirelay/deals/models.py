"""Deals (seed 004): attributes of deals and of their products, deals of a contact, the
products of a deal. Attribute values are kept with their deal or product as one JSON
object ``{attribute id: value}``: a deal is written and read whole (the seed's update
replaces all of its attributes), so one row each is what the access pattern wants."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.contacts.models import object_id
from omnirelay.db import Base, UTCDateTime, utcnow

TYPES = ("STRING", "NUMBER", "DATE", "DATETIME", "BOOLEAN", "SELECT", "MULTISELECT", "URL")
ENTITIES = ("deal", "product")


class DealAttribute(Base):
    __tablename__ = "deal_attributes"
    __table_args__ = (UniqueConstraint("organization_id", "entity", "name"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=object_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    options: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    entity: Mapped[str] = mapped_column(String(8), default="deal")
    api_field: Mapped[str | None] = mapped_column(String(500), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (Index(None, "organization_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=object_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    contact_id: Mapped[str] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(500))
    attribute_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DealProduct(Base):
    __tablename__ = "deal_products"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=object_id)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    attribute_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
