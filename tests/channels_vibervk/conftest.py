"""Fixtures of the Viber and VK channel tests: the providers' local peers (the registered
adapters allowed onto loopback), connections made through /api, the pipeline driven in
the test's thread, and the messages and attempts as stored."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import omnirelay.tasks  # noqa: F401  (registers the pipeline's handlers)
from omnirelay.channels.base import get_adapter
from omnirelay.db import Database
from omnirelay.messaging.models import InboundMessage, Message, MessageAttempt
from omnirelay.testing.viber import InfobipViberPeer, ViberBotPeer
from omnirelay.testing.vk import VkPeer
from omnirelay.webhooks.ssrf import parse_networks
from tests.conftest import Org
from tests.notify.conftest import (  # noqa: F401  (shared fixtures)
    advance,
    deliverer,
    drain,
    org,
    receiver,
    v3,
    wait_for,
)

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
PUBLIC_URL = "https://relay.example.test"
PHONE = "79161234567"


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Any:
    from omnirelay.config import Settings

    return Settings(
        database_url=database_url,
        media_dir=str(tmp_path / "media"),
        rate_limit_requests=10_000,
        webhook_allowed_networks="127.0.0.0/8,::1/128",
        public_url=PUBLIC_URL,
    )


def _loopback(provider: str) -> Iterator[None]:
    adapter: Any = get_adapter(provider)
    before = adapter.allowed_networks
    adapter.allowed_networks = LOOPBACK  # the peer is on loopback
    try:
        yield
    finally:
        adapter.allowed_networks = before


@pytest.fixture
def viber_peer() -> Iterator[ViberBotPeer]:
    for _ in _loopback("viber_bot"):
        with ViberBotPeer(lifetime=120) as peer:
            yield peer


@pytest.fixture
def infobip_peer() -> Iterator[InfobipViberPeer]:
    for _ in _loopback("infobip_viber"):
        with InfobipViberPeer(lifetime=120) as peer:
            yield peer


@pytest.fixture
def vk_peer() -> Iterator[VkPeer]:
    for _ in _loopback("vk"):
        with VkPeer(lifetime=120) as peer:
            yield peer


@pytest.fixture
def connect(client: TestClient, org: Org) -> Callable[..., dict[str, Any]]:  # noqa: F811
    """POST /api/connections; the created connection as answered."""

    def make(channel: str, provider: str, settings: dict[str, Any], senders: list[str]) -> Any:
        r = client.post(
            "/api/connections",
            json={
                "channel": channel,
                "provider": provider,
                "name": provider,
                "settings": settings,
                "senders": senders,
            },
            headers=org.headers(),
        )
        assert r.status_code == 201, r.text
        return r.json()

    return make


@pytest.fixture
def hook(client: TestClient) -> Callable[..., Any]:
    def post(path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        return client.post(f"/hooks/{path}", content=body, headers=headers or {})

    return post


@pytest.fixture
def stored(db: Database) -> Callable[[str], tuple[Message, list[MessageAttempt]]]:
    def get(message_id: str) -> tuple[Message, list[MessageAttempt]]:
        with db.transaction() as session:
            message = session.scalars(select(Message).where(Message.id == message_id)).one()
            attempts = list(
                session.scalars(
                    select(MessageAttempt)
                    .where(MessageAttempt.message_id == message_id)
                    .order_by(MessageAttempt.id)
                )
            )
            session.expunge_all()
            return message, attempts

    return get


@pytest.fixture
def inbound(db: Database) -> Callable[[], list[InboundMessage]]:
    def get() -> list[InboundMessage]:
        with db.transaction() as session:
            rows = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
            session.expunge_all()
            return rows

    return get


def replies(peer: Any) -> list[dict[str, Any]]:
    """The reply webhooks a Receiver got, decoded."""
    return [json.loads(r.body) for r in peer.received("/reply")]


def settle(run: Callable[[], int], jump: Callable[[float], None], rounds: int = 7) -> None:
    """Run the pipeline through every retry: each round makes the next retry due (a
    minute: the backoff's longest is shorter, and the step's 600 s ttl stays ahead)."""
    for _ in range(rounds):
        run()
        jump(60)
    run()
