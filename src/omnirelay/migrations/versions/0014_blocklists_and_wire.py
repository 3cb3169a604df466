"""Block lists (blocked_phones, blocked_networks); gateway_messages ids never reused on
SQLite (AUTOINCREMENT); the sandbox Telegram connection's bot as a sender

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import omnirelay.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _blocklist(name: str, column: sa.Column[str]) -> None:
    op.create_table(
        name,
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        column,
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", omnirelay.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f(f"fk_{name}_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint(
            "organization_id",
            str(column.name),
            name=op.f(f"uq_{name}_organization_id_{column.name}"),
        ),
    )


def _recreate_gateway_messages(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL: a SERIAL's sequence never hands an id out twice
    # The copy keeps every id; SQLite then starts sqlite_sequence at the highest one.
    with op.batch_alter_table(
        "gateway_messages",
        recreate="always",
        table_kwargs={"sqlite_autoincrement": autoincrement},
    ):
        pass


def upgrade() -> None:
    _blocklist("blocked_phones", sa.Column("phone", sa.String(length=20), nullable=False))
    _blocklist("blocked_networks", sa.Column("network", sa.String(length=50), nullable=False))
    _recreate_gateway_messages(True)
    # Existing organizations' sandbox Telegram bot gets the sender new ones start with.
    connections = sa.table(
        "channel_connections",
        sa.column("id", sa.Integer()),
        sa.column("channel", sa.String()),
        sa.column("provider", sa.String()),
        sa.column("senders", sa.JSON()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(connections.c.id, connections.c.senders).where(
            connections.c.channel == "telegram", connections.c.provider == "sandbox"
        )
    ).all()
    for row_id, senders in rows:
        if not senders:
            bind.execute(
                connections.update().where(connections.c.id == row_id).values(senders=["SANDBOX"])
            )


def downgrade() -> None:
    _recreate_gateway_messages(False)
    op.drop_table("blocked_networks")
    op.drop_table("blocked_phones")
