"""Migration 0015 rebuilds `templates` with integer ids: existing templates keep their
UUID (the /v3 id), get numbers in the order they were created, and their channels become
entries whose status follows the template's; the downgrade gives the old table back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from omnirelay.db import Database
from omnirelay.migrate import alembic_config, upgrade
from tests.conftest import Org

OLD = (
    ("33333333-0000-0000-0000-000000000003", "Late", '["vk"]', "rejected", "2026-01-03"),
    ("11111111-0000-0000-0000-000000000001", "Code", '["sms", "viber"]', "approved", "2026-01-01"),
    ("22222222-0000-0000-0000-000000000002", "Empty", "[]", "new", "2026-01-02"),
)


def test_existing_templates_are_numbered_and_their_channels_become_entries(
    db: Database, database_url: str, make_org: Callable[..., Org]
) -> None:
    org = make_org()
    command.downgrade(alembic_config(database_url), "0019")
    with db.engine.begin() as conn:
        for uuid, name, channels, status, day in OLD:
            conn.execute(
                text(
                    "INSERT INTO templates (id, organization_id, name, text, channels, status, "
                    "created_at, updated_at) VALUES (:id, :org, :name, :text, :channels, "
                    ":status, :at, :at)"
                ),
                {
                    "id": uuid,
                    "org": org.id,
                    "name": name,
                    "text": f"{name} #X#",
                    "channels": channels,
                    "status": status,
                    "at": datetime.fromisoformat(day).replace(tzinfo=UTC),
                },
            )
    upgrade(database_url)
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, uuid, name, status FROM templates ORDER BY id")).all()
        entries = conn.execute(
            text("SELECT template_id, channel, status FROM template_channels ORDER BY id")
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, OLD[1][0], "Code", "approved"),
        (2, OLD[2][0], "Empty", "new"),
        (3, OLD[0][0], "Late", "rejected"),
    ]
    assert [tuple(e) for e in entries] == [
        (1, "sms", "approved"),
        (1, "viber", "approved"),
        (3, "vk", "rejected"),
    ]
    # New rows follow the copied ids (PostgreSQL's sequences were moved on).
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO templates (uuid, organization_id, name, text, status, created_at, "
                "updated_at) VALUES ('new', :org, 'N', 'N', 'new', :at, :at)"
            ),
            {"org": org.id, "at": datetime.now(UTC)},
        )
        assert conn.execute(text("SELECT id FROM templates WHERE uuid = 'new'")).scalar() == 4
        conn.execute(text("DELETE FROM templates WHERE uuid = 'new'"))

    command.downgrade(alembic_config(database_url), "0019")
    with db.engine.connect() as conn:
        back = conn.execute(text("SELECT id, channels, status FROM templates ORDER BY name")).all()
    assert [(r[0], json.loads(r[1]) if isinstance(r[1], str) else r[1], r[2]) for r in back] == [
        (OLD[1][0], ["sms", "viber"], "approved"),
        (OLD[2][0], [], "new"),
        (OLD[0][0], ["vk"], "rejected"),
    ]
    upgrade(database_url)
