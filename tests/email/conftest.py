"""Fixtures of the email channel's tests: a real SMTP server (aiosmtpd, STARTTLS with a
throwaway certificate, AUTH) the smtp adapter sends to, omnirelay's own SMTP listener,
an organization with an email connection made through /api, the pipeline run in the
test's thread, a webhook receiver with the deliverer running."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import omnirelay.tasks  # noqa: F401  (registers the pipeline's handlers)
from omnirelay.channels.base import get_adapter
from omnirelay.channels.smtp.adapter import SmtpAdapter
from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.net.ssrf import parse_networks
from omnirelay.smtp.listener import MailListener
from omnirelay.testing.receiver import Receiver
from omnirelay.testing.smtppeer import SmtpPeer
from omnirelay.webhooks import service as webhooks
from omnirelay.webhooks.deliverer import Deliverer
from tests.conftest import Org
from tests.pipeline import Pipeline, jump

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
TO = "ann@example.com"


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Settings:
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        rate_limit_anonymous_requests=10_000,
        allowed_networks="127.0.0.0/8,::1/128",
        media_dir=str(tmp_path / "media"),
    )


@pytest.fixture(autouse=True)
def smtp_adapter(settings: Settings) -> Iterator[SmtpAdapter]:
    """The registered smtp adapter, allowed to reach loopback (the server's settings
    are the environment's, which do not allow it)."""
    adapter = get_adapter("smtp")
    assert isinstance(adapter, SmtpAdapter)
    before = adapter.allowed_networks, adapter.media_dir
    adapter.allowed_networks, adapter.media_dir = LOOPBACK, settings.media_dir
    yield adapter
    adapter.close()  # its pooled connections go with this test's peer
    adapter.allowed_networks, adapter.media_dir = before


@pytest.fixture
def peer() -> Iterator[SmtpPeer]:
    with SmtpPeer() as p:
        yield p


@pytest.fixture
def org(make_org: Callable[..., Org], db: Database) -> Org:
    created = make_org()
    with db.transaction() as session:
        webhooks.set_retry_schedule(session, created.id, [0.2, 0.4])
    return created


def create_connection(client: TestClient, org: Org, settings: dict[str, Any], **body: Any) -> Any:
    return client.post(
        "/api/connections",
        json={"channel": "email", "provider": "smtp", "name": "Mail", "settings": settings, **body},
        headers=org.headers(),
    )


@pytest.fixture
def connection(client: TestClient, org: Org, peer: SmtpPeer) -> dict[str, Any]:
    r = create_connection(client, org, peer.settings(reply_to="support@shop.example"))
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
def v3(client: TestClient, org: Org) -> Callable[..., Any]:
    def call(path: str, body: Any = None) -> Any:
        return client.post(f"/v3/{path}", json=body, headers=org.token)

    return call


@pytest.fixture
def drain(db: Database) -> Callable[[], int]:
    return Pipeline(db).run_until_idle


@pytest.fixture
def advance(db: Database) -> Callable[[float], None]:
    return lambda seconds: jump(db, seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def deliverer(db: Database, org: Org) -> Iterator[Deliverer]:
    d = Deliverer(db, allowed_networks=LOOPBACK, timeout=2.0, poll_interval=0.2)
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def listener(db: Database, settings: Settings) -> Iterator[MailListener]:
    with MailListener(db, settings, host="127.0.0.1", port=0) as mail:
        yield mail


def deliver(listener: MailListener, mail_from: str, to: list[str], data: bytes) -> None:
    """Hand a message to omnirelay's listener as an MTA would (smtplib: another client)."""
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.sendmail(mail_from, to, data)


def bodies(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received(path)]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")
