"""media_slots: upload slots of the media storage (seed 004)

Revision ID: 0013
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnirelay.db import UTCDateTime

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_slots",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("backend", sa.String(length=8), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_media_slots_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_slots")),
        sa.UniqueConstraint("key", name=op.f("uq_media_slots_key")),
    )
    op.create_index("ix_media_slots_expires_at", "media_slots", ["expires_at"])
    op.create_index(op.f("ix_media_slots_organization_id"), "media_slots", ["organization_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_media_slots_organization_id"), table_name="media_slots")
    op.drop_index("ix_media_slots_expires_at", table_name="media_slots")
    op.drop_table("media_slots")
