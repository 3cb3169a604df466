"""jobs: the queue (the outbox)

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import omnirelay.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("run_at", omnirelay.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lock", sa.String(length=200), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", omnirelay.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", omnirelay.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", omnirelay.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", omnirelay.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_due",
            [sa.literal_column("priority DESC"), "run_at", "id"],
            unique=False,
            sqlite_where=sa.text("status = 'todo'"),
            postgresql_where=sa.text("status = 'todo'"),
        )
        batch_op.create_index(
            "ix_jobs_lease",
            ["lease_until"],
            unique=False,
            sqlite_where=sa.text("status = 'doing'"),
            postgresql_where=sa.text("status = 'doing'"),
        )
        batch_op.create_index(
            "ix_jobs_lock_todo",
            ["lock", "id"],
            unique=False,
            sqlite_where=sa.text("status = 'todo'"),
            postgresql_where=sa.text("status = 'todo'"),
        )
        batch_op.create_index("ix_jobs_org_status", ["organization_id", "status"], unique=False)
        batch_op.create_index(
            "uq_jobs_dedupe_active",
            ["dedupe_key"],
            unique=True,
            sqlite_where=sa.text("status IN ('todo', 'doing')"),
            postgresql_where=sa.text("status IN ('todo', 'doing')"),
        )
        batch_op.create_index(
            "uq_jobs_lock_doing",
            ["lock"],
            unique=True,
            sqlite_where=sa.text("status = 'doing'"),
            postgresql_where=sa.text("status = 'doing'"),
        )


def downgrade() -> None:
    op.drop_table("jobs")
