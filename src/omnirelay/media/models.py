"""An upload slot: what was handed out by `media/upload`, and whether it was used."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow
from omnirelay.webhooks.models import BigId


class MediaSlot(Base):
    __tablename__ = "media_slots"
    # The sweep looks for expired slots that were never used.
    __table_args__ = (Index("ix_media_slots_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # in the upload URL
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    backend: Mapped[str] = mapped_column(String(8))  # "local" | "s3"
    # The local upload form's secret (`token` field), stored hashed; S3 signs its own.
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Where the file goes: "<digest of the link's token>/<filename>" under the local
    # storage folder, or the S3 object key.
    key: Mapped[str] = mapped_column(Text, unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)  # once uploaded (local)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InboundFetch(Base):
    """An inbound message's attachment still to download from its provider (a Telegram
    file id, ...): claimed by the ``inbound.attachments`` drain (media/fetch.py), removed
    once the file is stored or given up on."""

    __tablename__ = "inbound_fetches"
    __table_args__ = (Index("ix_inbound_fetches_due_at", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    inbound_id: Mapped[int] = mapped_column(BigInteger, index=True)
    connection_id: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(Text)  # the provider's reference of the file
    position: Mapped[int] = mapped_column(Integer)  # its place in the message's attachments
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    # For the provider's completion step (fetch.DONE), e.g. a held webhook's fields.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
