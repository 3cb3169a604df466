"""SMPP tests: an organization whose SMS goes through an ``smpp`` connection, the session
manager running in this process, and a pump that runs due jobs until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import omnirelay.tasks  # noqa: F401
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.net.ssrf import parse_networks
from omnirelay.smpp.manager import SessionManager
from tests.conftest import Org
from tests.pipeline import Pipeline

PHONE = "79161234567"
# A loaded 2-core CI machine can take well over half a second to answer: tests give the
# SMSC a realistic time to answer, and only the tests of a timeout itself (SHORT) less.
SHORT_TIMEOUT = {"response_timeout": 0.5}
FAST = {
    "response_timeout": 5.0,
    "enquire_link_interval": 5,
    "reconnect_max": 0.3,
    "throttle_pause": 0.2,
}


@pytest.fixture
def settings(database_url: str) -> Any:
    from omnirelay.config import Settings

    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        webhook_allowed_networks="127.0.0.0/8",
    )


@pytest.fixture
def connect(client: TestClient, org: Org) -> Callable[..., int]:
    """Replace the sandbox SMS connection with an smpp one (sender ACME) to ``port``."""

    def make(port: int, **settings: Any) -> int:
        sms = client.get("/api/connections?channel=sms", headers=org.headers()).json()["items"]
        for row in sms:
            if row["provider"] == "sandbox":
                client.patch(
                    f"/api/connections/{row['id']}", json={"active": False}, headers=org.headers()
                )
        body = {
            "channel": "sms",
            "provider": "smpp",
            "name": "SMSC",
            "senders": ["ACME"],
            "settings": {
                "host": "127.0.0.1",
                "port": port,
                "system_id": "acme",
                "password": "secret",
                **FAST,
                **settings,
            },
        }
        r = client.post("/api/connections", json=body, headers=org.headers())
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    return make


@pytest.fixture
def manager(db: Database) -> Iterator[SessionManager]:
    m = SessionManager(db, refresh=0.2, allowed_networks=parse_networks("127.0.0.0/8")).start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def pump(db: Database) -> Callable[..., Any]:
    """Run due jobs until ``predicate()`` is true (the session works in its threads)."""
    pipeline = Pipeline(db, backoff=0.05)

    def run(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pipeline.run_until_idle()
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout} s")

    return run


@pytest.fixture
def send(client: TestClient, org: Org) -> Callable[..., str]:
    def post(text: str = "hello", phone: str = PHONE, **extra: Any) -> str:
        body = {"sender": "ACME", "phone": phone, "text": text, **extra}
        r = client.post("/v3/message/sendSMS", json=body, headers=org.token)
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    return post


@pytest.fixture
def status(db: Database) -> Callable[[str], str]:
    def get(message_id: str) -> str:
        with db.transaction() as session:
            return str(
                session.scalars(select(Message.status).where(Message.id == message_id)).one()
            )

    return get
