"""Expired Idempotency-Keys (older than 24 h, no longer replayed) are deleted by the
housekeeping sweep, in batches; a key still within its 24 h stays and still replays."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from omnirelay.config import Settings
from omnirelay.db import Database, utcnow
from omnirelay.housekeeping import service
from omnirelay.housekeeping.tasks import run_once
from omnirelay.idempotency.models import IdempotencyKey
from tests.notify.conftest import DELIVERED


def _keys(db: Database) -> list[str]:
    with db.transaction() as session:
        return sorted(session.scalars(select(IdempotencyKey.key)))


def test_expired_idempotency_keys_are_removed_and_live_ones_still_replay(
    v3: Any, db: Database, database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "BATCH", 4)  # so that 10 expired keys take three batches
    body = {"sender": "SANDBOX", "phone": DELIVERED, "text": "x"}
    old = [f"old-{i}" for i in range(10)]
    for key in [*old, "live"]:
        assert v3("message/sendSMS", body, headers={"Idempotency-Key": key}).status_code == 200
    live = v3("message/sendSMS", body, headers={"Idempotency-Key": "live"})
    with db.transaction() as session:
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key.in_(old))
            .values(created_at=utcnow() - timedelta(hours=24, minutes=1))
        )
    settings = Settings(database_url=database_url, media_dir=str(tmp_path / "media"))
    swept = run_once(db, settings)
    assert (swept.idempotency_keys, swept.files) == (10, 0)
    assert _keys(db) == ["live"]
    again = v3("message/sendSMS", body, headers={"Idempotency-Key": "live"})
    assert again.json() == live.json() and again.headers["Idempotent-Replayed"] == "true"
    assert run_once(db, settings).idempotency_keys == 0
