"""messages.due_at, claimed_by, lease_until, tries: a message is its own dispatch job;
ttl watches are the attempts' expires_at, swept

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("tries", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.create_index(
        "ix_messages_due",
        "messages",
        ["due_at"],
        unique=False,
        sqlite_where=sa.text("due_at IS NOT NULL"),
        postgresql_where=sa.text("due_at IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_org_due",
        "messages",
        ["organization_id", "due_at"],
        unique=False,
        sqlite_where=sa.text("due_at IS NOT NULL"),
        postgresql_where=sa.text("due_at IS NOT NULL"),
    )
    # Dispatch jobs of a message's current step (waiting, running, or dead: the drain
    # tries a dead one's message once more) become due times of their messages.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        key, step = (
            "json_extract(jobs.payload, '$.message_id')",
            "json_extract(jobs.payload, '$.step')",
        )
    else:
        key = "(jobs.payload->>'message_id')"
        step = "CAST(jobs.payload->>'step' AS INTEGER)"
    match = (
        f"jobs.kind = 'messages.dispatch' AND {key} = messages.id AND {step} = messages.step "
        "AND jobs.status IN ('todo', 'doing', 'dead')"
    )
    op.execute(
        f"UPDATE messages SET due_at = (SELECT MIN(jobs.run_at) FROM jobs WHERE {match}) "
        f"WHERE final_at IS NULL AND EXISTS (SELECT 1 FROM jobs WHERE {match})"
    )
    op.execute("DELETE FROM jobs WHERE kind = 'messages.dispatch'")
    # Ttl watches are the attempts' expires_at, swept in batches: their jobs go.
    op.create_index(
        "ix_message_attempts_waiting",
        "message_attempts",
        ["expires_at"],
        unique=False,
        sqlite_where=sa.text("status IN ('queued', 'submitting', 'sent')"),
        postgresql_where=sa.text("status IN ('queued', 'submitting', 'sent')"),
    )
    op.execute("DELETE FROM jobs WHERE kind = 'messages.ttl'")


def downgrade() -> None:
    op.drop_index("ix_message_attempts_waiting", table_name="message_attempts")
    op.drop_index("ix_messages_org_due", table_name="messages")
    op.drop_index("ix_messages_due", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("tries")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("due_at")
