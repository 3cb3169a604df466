"""gateway_messages.file: the upload a message carries, so that housekeeping can tell
when no message needs it any more

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_gateway_messages_file"), ["file"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gateway_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_messages_file"))
        batch_op.drop_column("file")
