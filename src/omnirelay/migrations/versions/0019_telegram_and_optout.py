"""Telegram bot state (telegram_state); opt-out keywords (optout_settings); which
channel's opt-out put a number on the block list (blocked_phones.via)

Revision ID: 0019
Revises: 0012b
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import omnirelay.db

revision = "0019"
down_revision = "0012b"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("blocked_phones", sa.Column("via", sa.String(length=32), nullable=True))
    op.create_table(
        "optout_settings",
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("stop_words", sa.JSON(), nullable=False),
        sa.Column("start_words", sa.JSON(), nullable=False),
        sa.Column("updated_at", omnirelay.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_optout_settings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_optout_settings")),
    )
    op.create_table(
        "telegram_state",
        sa.Column("connection_id", BigId, nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("connected", sa.String(length=64), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", omnirelay.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", omnirelay.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["channel_connections.id"],
            name=op.f("fk_telegram_state_connection_id_channel_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_telegram_state_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_telegram_state")),
    )


def downgrade() -> None:
    op.drop_table("telegram_state")
    op.drop_table("optout_settings")
    with op.batch_alter_table("blocked_phones") as batch:
        batch.drop_column("via")
