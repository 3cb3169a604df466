"""templates v2: integer ids (the UUID kept as `uuid`), the event name, groups, and one
entry per channel with its own content and moderation status (ADR 27)

The table is rebuilt: its primary key changes from the UUID to a number. Existing
templates are numbered in the order they were created; each channel of their `channels`
list becomes an entry whose status follows the template's.

Revision ID: 0015
Revises: 0019
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from omnirelay.db import UTCDateTime

revision = "0015"
down_revision = "0019"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
V3_CHANNELS = ("sms", "viber", "vk", "telegram")


def _entry_status(status: str) -> str:
    if status == "approved":
        return "approved"
    if status in ("rejected", "error", "exception", "cancel"):
        return "rejected"
    return "moderate"


def _set_sequences(tables: tuple[str, ...]) -> None:
    """PostgreSQL: rows were inserted with their ids; the next id follows the last."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )


def _set_aside_old_templates(kind: str) -> None:
    """Rename `templates` out of the way, with the names a new table would take."""
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_templates_organization_id"))
    op.rename_table("templates", f"templates_{kind}")
    if op.get_bind().dialect.name == "postgresql":  # constraint indexes are schema-wide
        op.execute(f"ALTER TABLE templates_{kind} RENAME CONSTRAINT pk_templates TO pk_t_{kind}")
        op.execute(
            f"ALTER TABLE templates_{kind} RENAME CONSTRAINT "
            f"fk_templates_organization_id_organizations TO fk_t_{kind}_org"
        )


def upgrade() -> None:
    _set_aside_old_templates("v1")
    op.create_table(
        "template_groups",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_template_groups_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_groups")),
    )
    with op.batch_alter_table("template_groups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_template_groups_organization_id"), ["organization_id"], unique=False
        )
    op.create_table(
        "templates",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("group_url", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("moderation_comment", sa.Text(), nullable=True),
        sa.Column("group_id", BIG_ID, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["template_groups.id"],
            name=op.f("fk_templates_group_id_template_groups"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_templates_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("uuid", name=op.f("uq_templates_uuid")),
    )
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_templates_group_id"), ["group_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_templates_organization_id"), ["organization_id"], unique=False
        )
    op.create_table(
        "template_channels",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("template_id", BIG_ID, nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("components", sa.JSON(), nullable=True),
        sa.Column("keyboard", sa.JSON(), nullable=True),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_template_channels_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_template_channels_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_channels")),
        sa.UniqueConstraint(
            "template_id", "channel", name=op.f("uq_template_channels_template_id_channel")
        ),
    )
    with op.batch_alter_table("template_channels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_template_channels_organization_id_channel_status"),
            ["organization_id", "channel", "status"],
            unique=False,
        )

    bind = op.get_bind()
    old = sa.table(
        "templates_v1",
        *(sa.column(c) for c in ("id", "organization_id", "name", "text", "group_url")),
        *(sa.column(c) for c in ("comment", "status", "moderation_comment")),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
        sa.column("channels", sa.JSON()),
    )
    rows = bind.execute(sa.select(old).order_by(old.c.created_at, old.c.id)).mappings().all()
    templates: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        data = dict(row)
        channels = data.pop("channels") or []
        templates.append({**data, "id": number, "uuid": data["id"]})
        entries += [
            {
                "template_id": number,
                "organization_id": data["organization_id"],
                "channel": channel,
                "status": _entry_status(data["status"]),
                "attachments": [],
                "revision": 1,
                "created_at": data["created_at"],
                "updated_at": data["updated_at"],
            }
            for channel in dict.fromkeys(channels)
        ]
    if templates:
        new = sa.table(
            "templates",
            *(sa.column(k) for k in templates[0] if k not in ("created_at", "updated_at")),
            sa.column("created_at", UTCDateTime()),
            sa.column("updated_at", UTCDateTime()),
        )
        bind.execute(new.insert(), templates)
    if entries:
        table = sa.table(
            "template_channels",
            *(
                sa.column(k)
                for k in entries[0]
                if k not in ("attachments", "created_at", "updated_at")
            ),
            sa.column("attachments", sa.JSON()),
            sa.column("created_at", UTCDateTime()),
            sa.column("updated_at", UTCDateTime()),
        )
        bind.execute(table.insert(), entries)
    op.drop_table("templates_v1")
    _set_sequences(("templates", "template_channels"))


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_templates_group_id"))
    _set_aside_old_templates("v2")
    op.create_table(
        "templates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("group_url", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("moderation_comment", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_templates_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
    )
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_templates_organization_id"), ["organization_id"], unique=False
        )
    cols = ("id", "uuid", "organization_id", "name", "text", "group_url", "comment", "status")
    v2 = sa.table(
        "templates_v2",
        *(sa.column(c) for c in (*cols, "moderation_comment")),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    ch = sa.table(
        "template_channels", sa.column("id"), sa.column("template_id"), sa.column("channel")
    )
    channels: dict[int, list[str]] = {}
    for template_id, channel in bind.execute(
        sa.select(ch.c.template_id, ch.c.channel).order_by(ch.c.id)
    ):
        if channel in V3_CHANNELS:  # seed 001 knows these four only
            channels.setdefault(template_id, []).append(channel)
    rows = []
    for row in bind.execute(sa.select(v2)).mappings():
        data = dict(row)
        number = data.pop("id")
        data["id"] = data.pop("uuid")
        data["channels"] = channels.get(number, [])
        rows.append(data)
    if rows:
        old = sa.table(
            "templates",
            *(sa.column(k) for k in rows[0] if k not in ("channels", "created_at", "updated_at")),
            sa.column("channels", sa.JSON()),
            sa.column("created_at", UTCDateTime()),
            sa.column("updated_at", UTCDateTime()),
        )
        bind.execute(old.insert(), rows)
    with op.batch_alter_table("template_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_template_channels_organization_id_channel_status"))
    op.drop_table("template_channels")
    op.drop_table("templates_v2")
    with op.batch_alter_table("template_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_template_groups_organization_id"))
    op.drop_table("template_groups")
