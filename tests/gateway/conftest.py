"""Fixtures of the WhatsApp gateway tests: an account token, devices, a clock the test
moves, a synchronous worker, and a webhook receiver with the deliverer running."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import omnirelay.tasks  # noqa: F401  (registers the handlers and the gateway's hooks)
from omnirelay.db import Database, utcnow
from omnirelay.gateway import service
from omnirelay.messaging.models import Message
from tests.conftest import Org
from tests.notify.conftest import (  # noqa: F401  (fixtures shared with the pipeline tests)
    advance,
    deliverer,
    drain,
    receiver,
    wait_for,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Any:
    from omnirelay.config import Settings

    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        webhook_allowed_networks="127.0.0.0/8,::1/128",
        media_dir=str(tmp_path / "media"),
    )


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(client: TestClient) -> Clock:
    c = Clock()
    client.app.state.ctx.clock = c  # type: ignore[attr-defined]
    return c


@dataclass
class Account:
    org: Org
    token: str


@pytest.fixture
def account(db: Database, org: Org) -> Account:
    with db.transaction() as session:
        return Account(org, service.rotate_account_token(session, org.id))


@dataclass
class DeviceRef:
    number: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": self.token}


@pytest.fixture
def gw(client: TestClient) -> Callable[..., Any]:
    """POST a seed-002 method: ``gw("/send", token, data={...})`` (form by default)."""

    def call(path: str, token: str | None, **kwargs: Any) -> Any:
        headers = {"Authorization": token} if token is not None else {}
        r = client.post(path, headers=headers, **kwargs)
        assert r.status_code == 200, r.text
        return r.json()

    return call


@pytest.fixture
def add_device(gw: Callable[..., Any], account: Account) -> Callable[..., DeviceRef]:
    def add(number: str = "6281234567001", name: str = "Sales", **fields: Any) -> DeviceRef:
        body = gw("/add-device", account.token, data={"name": name, "device": number, **fields})
        assert body["status"] is True, body
        return DeviceRef(number, body["token"])

    return add


@pytest.fixture
def connected(
    add_device: Callable[..., DeviceRef], gw: Callable[..., Any], db: Database
) -> DeviceRef:
    """A device that has scanned its QR (the sandbox phone scans on the admin's word)."""
    device = add_device()
    assert gw("/qr", device.token, data={"type": "qr"})["status"] is True
    with db.transaction() as session:
        row = service.device_by_token(session, device.token)
        assert row is not None
        assert service.scanned(session, row.id, utcnow())
    return device


@pytest.fixture
def messages(db: Database) -> Callable[[], list[Message]]:
    def get() -> list[Message]:
        with db.transaction() as session:
            rows = list(session.scalars(select(Message).order_by(Message.created_at)))
            for row in rows:
                session.expunge(row)
            return rows

    return get
