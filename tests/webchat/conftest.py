"""Web chat tests: a ``webchat`` connection, sockets through Starlette's TestClient, the
notify fixtures (the pipeline run in the test's thread, a reply receiver)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

import omnirelay.tasks  # noqa: F401  (registers the handlers)
from omnirelay.contacts import service as contacts
from omnirelay.db import Database
from tests.conftest import Org
from tests.notify import conftest as notify

settings = notify.settings
org = notify.org
v3 = notify.v3
drain = notify.drain
advance = notify.advance
message = notify.message
receiver = notify.receiver
deliverer = notify.deliverer

ORIGIN = "https://shop.example"
PHONE = "79161234567"


@dataclass
class Chat:
    id: int
    key: str
    client: TestClient

    @contextmanager
    def socket(
        self, visitor: str | None = None, origin: str = ORIGIN, key: str | None = None
    ) -> Iterator[WebSocketTestSession]:
        url = f"/webchat/ws?key={key or self.key}"
        if visitor:
            url += f"&visitor={visitor}"
        with self.client.websocket_connect(url, headers={"origin": origin}) as ws:
            yield ws


@pytest.fixture
def make_chat(client: TestClient, org: Org) -> Callable[..., Chat]:
    def make(**settings: Any) -> Chat:
        body = {
            "channel": "webchat",
            "provider": "webchat",
            "name": "Site chat",
            "senders": ["shop"],
            "settings": {"allowed_origins": [ORIGIN], "title": "Ask us", **settings},
        }
        r = client.post("/api/connections", json=body, headers=org.headers())
        assert r.status_code == 201, r.text
        return Chat(int(r.json()["id"]), r.json()["settings"]["widget_key"], client)

    return make


@pytest.fixture
def chat(make_chat: Callable[..., Chat]) -> Chat:
    return make_chat()


@pytest.fixture
def link(db: Database, org: Org) -> Callable[[str], None]:
    """Give the visitor's contact the phone /v3 sends name (as the CRM would)."""

    def run(token: str) -> None:
        visitor = token.split(".")[0]
        with db.transaction() as session:
            contact, _ = contacts.find_or_create(session, org.id, "phone", "+" + PHONE)
            contacts.update_channel_id(session, org.id, contact.id, "webchatId", visitor)

    return run


def welcome(ws: WebSocketTestSession) -> str:
    frame = ws.receive_json()
    assert frame["type"] == "welcome", frame
    return str(frame["visitor"])
