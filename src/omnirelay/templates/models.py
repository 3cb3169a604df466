"""Templates: one object seen through two surfaces (ADR 27).

Seed 001 (`/v3/template/*`) knows a template by its UUID, with a template-wide moderation
status and a list of channels; seed 004 (`/user/template2/*`) by a number, with a display
name, the event it belongs to, a group, and one entry per channel with its own content
and moderation status. The per-channel entries are the one record of a template's
channels for both: /v3's `channels` are the entries of its four channels.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from omnirelay.db import Base, UTCDateTime, utcnow
from omnirelay.webhooks.models import BigId

# The template-wide status of seed 001.
STATUSES = ("new", "send", "approved", "rejected", "error", "exception", "cancel", "deleted")
# A channel entry's status (seed 004): under moderation, then approved or rejected.
ENTRY_STATUSES = ("moderate", "approved", "rejected")


class TemplateGroup(Base):
    """Templates sent as alternatives of one another: no two share a channel."""

    __tablename__ = "template_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Template(Base):
    __tablename__ = "templates"

    # Integer ids: seed 004 references templates as numbers; seed 001 by `uuid`.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))  # /v3 `name`, /user `displayName`
    event: Mapped[str | None] = mapped_column(String(200), nullable=True)  # /user `name`
    text: Mapped[str] = mapped_column(Text)
    group_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    moderation_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # At most one group per template: a column, not a link table.
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("template_groups.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    entries: Mapped[list[TemplateChannel]] = relationship(
        order_by="TemplateChannel.id", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def designations(self) -> list[str]:
        return [e.channel for e in self.entries]


class TemplateChannel(Base):
    """One channel of a template: its content there and its moderation there."""

    __tablename__ = "template_channels"
    __table_args__ = (
        UniqueConstraint("template_id", "channel"),
        # The sender's one query: an organization's approved entries of one channel.
        Index(None, "organization_id", "channel", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"))
    # Copied from the template so that the match query needs no join to filter.
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))  # a seed 004 designation
    status: Mapped[str] = mapped_column(String(16), default="moderate")
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it was rejected
    components: Mapped[Any] = mapped_column(JSON, nullable=True)
    keyboard: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attachments: Mapped[list[str]] = mapped_column(JSON, default=list)
    sender: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Bumped whenever moderation is asked again: a late answer to an older request
    # (the text changed since) is ignored.
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
