"""Telegram tests: a local Bot API peer, a ``telegram`` connection aimed at it, the
runner (connect, getUpdates) driven from the test, and the notify fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import omnirelay.tasks  # noqa: F401  (registers the handlers)
from omnirelay.channels.base import get_adapter
from omnirelay.channels.telegram import TelegramAdapter
from omnirelay.channels.telegram_updates import start_payload
from omnirelay.db import Database
from omnirelay.messaging.models import InboundMessage, Message, MessageAttempt
from omnirelay.net.ssrf import parse_networks
from omnirelay.telegram.runner import TelegramRunner
from omnirelay.testing.telegram import TelegramPeer
from tests.conftest import Org
from tests.notify import conftest as notify

# The notifications tests' fixtures: a fast sandbox, the pipeline run in the test's
# thread, the clock jump, a webhook receiver with the deliverer.
settings = notify.settings
org = notify.org
v3 = notify.v3
drain = notify.drain
advance = notify.advance
receiver = notify.receiver
deliverer = notify.deliverer

PHONE = "79161234567"
CHAT = 5550001


@pytest.fixture
def peer() -> Iterator[TelegramPeer]:
    adapter = get_adapter("telegram")
    assert isinstance(adapter, TelegramAdapter)
    before = adapter.allowed_networks
    adapter.allowed_networks = parse_networks("127.0.0.0/8")  # the peer is on loopback
    with TelegramPeer() as p:
        yield p
    adapter.allowed_networks = before


@dataclass
class Bot:
    id: int
    peer: TelegramPeer


@pytest.fixture
def make_bot(client: TestClient, org: Org, peer: TelegramPeer) -> Callable[..., Bot]:
    """Replace the sandbox Telegram connection with a ``telegram`` one at the peer."""

    def make(**settings: Any) -> Bot:
        rows = client.get("/api/connections?channel=telegram", headers=org.headers()).json()
        for row in rows["items"]:
            if row["provider"] == "sandbox":
                r = client.patch(
                    f"/api/connections/{row['id']}", json={"active": False}, headers=org.headers()
                )
                assert r.status_code == 200, r.text
        body = {
            "channel": "telegram",
            "provider": "telegram",
            "name": "Bot",
            "senders": ["omnirelay_test_bot"],
            "settings": peer.settings(**settings),
        }
        r = client.post("/api/connections", json=body, headers=org.headers())
        assert r.status_code == 201, r.text
        return Bot(int(r.json()["id"]), peer)

    return make


@pytest.fixture
def bot(make_bot: Callable[..., Bot]) -> Bot:
    return make_bot()


@pytest.fixture
def runner(db: Database, peer: TelegramPeer) -> TelegramRunner:
    return TelegramRunner(db, owner="test-runner")


@pytest.fixture
def linked(bot: Bot, runner: TelegramRunner, drain: Callable[[], int]) -> int:
    """The user of CHAT opened the bot with the organization's /start link for PHONE."""
    bot.peer.user_message(CHAT, "/start " + start_payload(bot.peer.token, phone=PHONE))
    assert runner.run_once() == 1
    drain()
    return CHAT


@pytest.fixture
def message(db: Database) -> Callable[[str], Message]:
    def get(message_id: str) -> Message:
        with db.read() as session:
            row = session.scalars(select(Message).where(Message.id == message_id)).one()
            session.expunge(row)
            return row

    return get


@pytest.fixture
def attempts(db: Database) -> Callable[[str], list[MessageAttempt]]:
    def get(message_id: str) -> list[MessageAttempt]:
        with db.read() as session:
            rows = session.scalars(
                select(MessageAttempt)
                .where(MessageAttempt.message_id == message_id)
                .order_by(MessageAttempt.id)
            ).all()
            for row in rows:
                session.expunge(row)
            return list(rows)

    return get


@pytest.fixture
def inbound(db: Database) -> Callable[[], list[InboundMessage]]:
    def get() -> list[InboundMessage]:
        with db.read() as session:
            rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
            for row in rows:
                session.expunge(row)
            return list(rows)

    return get
