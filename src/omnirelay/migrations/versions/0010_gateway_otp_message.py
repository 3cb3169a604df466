"""gateway_devices.otp_message_id: the delete code's message, woken when the device
connects

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("otp_message_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_devices", schema=None) as batch_op:
        batch_op.drop_column("otp_message_id")
