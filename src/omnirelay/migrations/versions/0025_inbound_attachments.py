"""inbound_messages.attachments: the files an inbound message carried, as stored in the
media storage (direct link, name, content type, size; or why one was not stored)

Revision ID: 0025
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnirelay.db import UTCDateTime

revision = "0025"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("attachments", sa.JSON(), nullable=True))
    op.create_table(
        "inbound_fetches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "organization_id",
            sa.String(length=32),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("inbound_id", sa.BigInteger(), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("due_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
    )
    op.create_index("ix_inbound_fetches_due_at", "inbound_fetches", ["due_at"])
    op.create_index("ix_inbound_fetches_inbound_id", "inbound_fetches", ["inbound_id"])
    op.create_index("ix_inbound_fetches_organization_id", "inbound_fetches", ["organization_id"])


def downgrade() -> None:
    op.drop_table("inbound_fetches")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("attachments")
