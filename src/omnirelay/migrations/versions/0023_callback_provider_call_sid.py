"""callback_calls.provider_call_sid: the telephony provider's id of the current call
(Twilio's CallSid), for bridging and hanging up (ADR 33)

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callback_calls") as batch:
        batch.add_column(sa.Column("provider_call_sid", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callback_calls") as batch:
        batch.drop_column("provider_call_sid")
