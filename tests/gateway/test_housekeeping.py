"""Uploads to /send are removed by the housekeeping timer once no message that is not
final carries them; young files, files of held messages and foreign files stay."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.db import Database
from omnirelay.gateway.models import GatewayMessage
from omnirelay.housekeeping.tasks import Housekeeper
from omnirelay.messaging.models import Message
from tests.gateway.conftest import DeviceRef
from tests.notify.conftest import wait_for

PHOTO = {"file": ("photo.jpg", b"\xff\xd8\xff", "image/jpeg")}


def _file_and_status(db: Database) -> dict[str, str]:
    with db.transaction() as session:
        rows = session.execute(
            select(GatewayMessage.file, Message.status).join(
                Message, Message.id == GatewayMessage.message_id
            )
        ).all()
    return {str(name): status for name, status in rows}


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _sweep(db: Database, settings: Any, done: Callable[[], bool]) -> None:
    """Run the timer of a worker process, fast, until ``done``."""
    keeper = Housekeeper(db, settings.model_copy(update={"housekeeping_interval_seconds": 0.05}))
    keeper.start()
    try:
        wait_for(done)
    finally:
        keeper.stop()


def test_an_upload_goes_when_its_messages_are_final_and_not_before(
    client: TestClient,
    add_device: Callable[..., DeviceRef],
    gw: Callable[..., Any],
    db: Database,
    drain: Callable[[], int],
    advance: Callable[[float], None],
    settings: Any,
) -> None:
    device = add_device()  # not connected yet: its messages wait for it
    fields = {"target": "6281234567890,6281234567891", "message": "see", "connectOnly": "false"}
    answer = client.post("/send", headers=device.auth, data=fields, files=PHOTO).json()
    assert answer["status"] is True, answer
    drain()
    files = _file_and_status(db)
    assert len(files) == 1 and set(files.values()) == {"accepted"}  # both targets, one file
    (upload,) = files

    media = Path(settings.media_dir)
    stray = media / f"{uuid.uuid4().hex}-stray.jpg"  # its request never committed
    fresh = media / f"{uuid.uuid4().hex}-fresh.jpg"  # its request may still be in flight
    foreign = media / "keep-me.txt"  # not named as an upload: never touched
    for path in (stray, fresh, foreign):
        path.write_bytes(b"x")
    for path in (media / upload, stray, foreign):
        _age(path, 2 * 3600)

    _sweep(db, settings, lambda: not stray.exists())
    assert sorted(p.name for p in media.iterdir()) == sorted([upload, fresh.name, foreign.name])

    from tests.gateway.test_devices import _scan

    gw("/qr", device.token)
    _scan(db, device)  # connected: the held messages go, then their reports come
    drain()
    advance(5)
    drain()
    assert set(_file_and_status(db).values()) <= {"delivered", "read"}
    _sweep(db, settings, lambda: not (media / upload).exists())
    assert sorted(p.name for p in media.iterdir()) == sorted([fresh.name, foreign.name])
