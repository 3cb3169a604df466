"""inbound_fetches.context: what the provider's completion step needs once a message's
files are in (a WhatsApp Cloud API message's held device webhook fields)

Revision ID: 0029
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_fetches") as batch:
        batch.add_column(sa.Column("context", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_fetches") as batch:
        batch.drop_column("context")
