"""provider_events: the inbox of provider events (reports, replies) waiting to be
applied, drained in batches (ADR 40) instead of a job per event

Revision ID: 0026
Revises: 0030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnirelay.db import UTCDateTime

revision = "0026"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_message_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("due_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
    )
    op.create_index("ix_provider_events_due", "provider_events", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_events_due", table_name="provider_events")
    op.drop_table("provider_events")
