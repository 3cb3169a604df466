"""The web chat socket protocol end to end, over Starlette's TestClient: origins and
visitor ids checked, a visitor's message stored and at the reply URL, /v3 sends on the
socket (live, after a reconnect, expired when the ttl is up), typing, receipts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from omnirelay.contacts.models import Contact
from omnirelay.db import Database
from omnirelay.messaging.models import InboundMessage
from omnirelay.testing.receiver import Receiver
from omnirelay.webchat.hub import HUB
from tests.conftest import Org
from tests.notify.conftest import wait_for
from tests.webchat.conftest import ORIGIN, PHONE, Chat, welcome


def _send(v3: Callable[..., Any], text: str = "Hello from the shop", **more: Any) -> str:
    route = [{"channel": "webchat", "phone": PHONE, "text": text, **more}]
    r = v3("message/send", {"route": route})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted", r.json()
    return str(r.json()["id"])


def test_settings_are_checked_key_shown_secret_masked(client: TestClient, org: Org) -> None:
    body = {"channel": "webchat", "provider": "webchat", "name": "Chat"}
    ok = {"allowed_origins": ["https://Shop.example/"], "colour": "#AABBCC"}
    r = client.post("/api/connections", json={**body, "settings": ok}, headers=org.headers())
    assert r.status_code == 201, r.text
    shown = r.json()["settings"]
    assert shown["widget_key"].startswith("wc_") and shown["visitor_secret"] == "***"
    assert shown["allowed_origins"] == ["https://shop.example"]
    assert (shown["title"], shown["colour"]) == ("Chat", "#aabbcc")
    for bad, needle in (
        ({}, "allowed_origins"),
        ({"allowed_origins": ["shop.example"]}, "allowed_origins"),
        ({**ok, "colour": "blue"}, "colour"),
        ({**ok, "title": ""}, "title"),
        ({**ok, "widget_key": "short"}, "widget_key"),
        ({**ok, "font": "x"}, "font"),
    ):
        r = client.post("/api/connections", json={**body, "settings": bad}, headers=org.headers())
        assert r.status_code == 400, (bad, r.text)
        assert needle in r.text
    # A PATCH keeps the key (settings merge): embedded widgets go on working.
    listed = client.get("/api/connections?channel=webchat", headers=org.headers())
    row = listed.json()["items"][0]
    r = client.patch(
        f"/api/connections/{row['id']}",
        json={"settings": {"title": "Help"}},
        headers=org.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["widget_key"] == shown["widget_key"]


def test_widget_script_is_served(client: TestClient) -> None:
    r = client.get("/webchat/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert "new WebSocket(" in r.text and "localStorage" in r.text


def test_origin_and_key_are_checked(chat: Chat) -> None:
    for origin, key in (("https://evil.example", None), (ORIGIN, "wc_unknownunknownunknown")):
        with pytest.raises(WebSocketDisconnect) as refused, chat.socket(origin=origin, key=key):
            pass
        assert refused.value.code == 4403
    with chat.socket() as ws:
        assert welcome(ws).startswith("v")


def test_a_forged_visitor_id_is_refused(chat: Chat, make_chat: Callable[..., Chat]) -> None:
    with chat.socket() as ws:
        token = welcome(ws)
    visitor, signature = token.split(".")
    other = make_chat()  # another connection's secret signs differently
    with other.socket() as ws:
        foreign = welcome(ws)
    for forged in (
        f"v{'0' * 32}.{signature}",
        f"{visitor}.{'0' * 32}",
        visitor,
        foreign,
    ):
        with pytest.raises(WebSocketDisconnect) as refused, chat.socket(visitor=forged):
            pass
        assert refused.value.code == 4401, forged
    with chat.socket(visitor=token) as ws:
        assert welcome(ws) == token  # the genuine one is kept


def test_visitor_message_is_stored_as_a_contact_and_reaches_the_reply_url(
    chat: Chat,
    link: Callable[[str], None],
    v3: Callable[..., Any],
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
    db: Database,
    org: Org,
) -> None:
    with chat.socket() as ws:
        token = welcome(ws)
        ws.send_json({"type": "message", "id": "c1", "text": "  Is it in stock?  "})
        assert ws.receive_json() == {"type": "ack", "id": "c1"}
    with db.read() as session:
        (row,) = session.scalars(select(InboundMessage)).all()
        assert (row.channel, row.connection_id, row.text) == ("webchat", chat.id, "Is it in stock?")
        contact = session.scalars(
            select(Contact).where(Contact.webchat_id == token.split(".")[0])
        ).one()
        assert contact.organization_id == org.id
    link(token)
    r = v3(
        "message/send",
        {
            "route": [{"channel": "webchat", "phone": PHONE, "text": "Yes, 3 left"}],
            "reply": receiver.url("/reply"),
        },
    )
    mid = r.json()["id"]
    with chat.socket(visitor=token) as ws:
        welcome(ws)
        drain()
        got = ws.receive_json()
        assert (got["type"], got["text"]) == ("message", "Yes, 3 left")
        ws.send_json({"type": "message", "id": "c2", "text": "I'll take two"})
        assert ws.receive_json() == {"type": "ack", "id": "c2"}
    drain()
    (reply,) = wait_for(lambda: receiver.received("/reply"))
    body = json.loads(reply.body)
    assert (body["id"], body["text"]) == (mid, "I'll take two")


def test_v3_send_reaches_the_open_socket_then_delivered_and_read(
    chat: Chat,
    link: Callable[[str], None],
    v3: Callable[..., Any],
    drain: Callable[[], int],
    message: Callable[[str], Any],
) -> None:
    with chat.socket() as ws:
        token = welcome(ws)
    link(token)
    with chat.socket(visitor=token) as ws:
        welcome(ws)
        mid = _send(v3)
        drain()
        got = ws.receive_json()
        assert got == {"type": "message", "id": got["id"], "text": "Hello from the shop"}
        assert message(mid).status == "sent"  # the socket has it; the widget has not said
        ws.send_json({"type": "received", "id": got["id"]})
        ws.send_json({"type": "read", "id": "wc:not-a-send-of-yours"})
        assert ws.receive_json()["error"] == "unknown_id"  # frames answer in order
        drain()
        assert message(mid).status == "delivered"
        ws.send_json({"type": "read", "id": got["id"]})
        ws.send_json({"type": "nonsense"})
        assert ws.receive_json()["error"] == "bad_frame"
        drain()
        assert message(mid).status == "read"


def test_another_visitor_cannot_report_or_receive(
    chat: Chat,
    link: Callable[[str], None],
    v3: Callable[..., Any],
    drain: Callable[[], int],
    message: Callable[[str], Any],
) -> None:
    with chat.socket() as ws:
        token = welcome(ws)
    link(token)
    mid = _send(v3)
    drain()
    with chat.socket() as ws:  # a new visitor: nothing of the first's
        welcome(ws)
        ws.send_json({"type": "typing"})
        ws.send_json({"type": "x"})
        assert ws.receive_json()["error"] == "bad_frame"
    with chat.socket(visitor=token) as ws:
        welcome(ws)
        pid = ws.receive_json()["id"]
    with chat.socket() as ws:
        welcome(ws)
        ws.send_json({"type": "read", "id": pid})
        assert ws.receive_json()["error"] == "unknown_id"
    drain()
    assert message(mid).status == "sent"


def test_offline_visitor_gets_it_on_reconnect_or_it_expires(
    chat: Chat,
    link: Callable[[str], None],
    v3: Callable[..., Any],
    drain: Callable[[], int],
    advance: Callable[[float], None],
    message: Callable[[str], Any],
) -> None:
    with chat.socket() as ws:
        token = welcome(ws)
    link(token)
    first = _send(v3, "While you were away")
    drain()
    assert message(first).status == "sent"
    with chat.socket(visitor=token) as ws:
        welcome(ws)
        got = ws.receive_json()
        assert got["text"] == "While you were away"
        ws.send_json({"type": "received", "id": got["id"]})
        ws.send_json({"type": "x"})
        ws.receive_json()
    drain()
    assert message(first).status == "delivered"
    late = _send(v3, "Too late", ttl=60)
    drain()
    advance(120)
    drain()
    assert message(late).status == "expired"
    with chat.socket(visitor=token) as ws:
        welcome(ws)
        ws.send_json({"type": "x"})
        assert ws.receive_json()["error"] == "bad_frame"  # no message came before it


def test_typing_both_ways_and_limits(
    chat: Chat,
    link: Callable[[str], None],
    client: TestClient,
    org: Org,
    make_org: Callable[..., Org],
    db: Database,
) -> None:
    with chat.socket() as ws, chat.socket() as other:
        token = welcome(ws)
        visitor = token.split(".")[0]
        welcome(other)
        assert HUB.typing_since(chat.key, visitor) is None
        ws.send_json({"type": "typing"})
        ws.send_json({"type": "x"})
        ws.receive_json()
        assert HUB.typing_since(chat.key, visitor) is not None
        # The operator's typing and read (/user/webchat/*) reach this visitor only.
        link(token)
        with db.read() as session:
            contact_id = session.scalars(
                select(Contact.id).where(Contact.webchat_id == visitor)
            ).one()
        for action in ("typing", "read"):
            r = client.post(
                f"/user/webchat/{action}", json={"contactId": contact_id}, headers=org.token
            )
            assert r.json() == {"result": "success", "connections": 1}, r.text
            assert ws.receive_json() == {"type": action}
        stranger = make_org()  # another organization's operator: as an unknown contact
        r = client.post(
            "/user/contacts/create", json=[{"phone": "+79990001122"}], headers=org.token
        )
        phone_only = r.json()["data"][0]["id"]
        for headers, body, code in (
            (org.token, {"contactId": phone_only}, "no_webchat_visitor"),
            (stranger.token, {"contactId": contact_id}, "contact_not_found"),
            (org.token, {"contactId": "nope"}, "contact_not_found"),
            (org.token, {"contactId": contact_id, "connectionId": 999999}, "not_found"),
        ):
            r = client.post("/user/webchat/typing", json=body, headers=headers)
            assert r.status_code != 200 and code in r.text, r.text
        other.send_json({"type": "x"})
        assert other.receive_json()["error"] == "bad_frame"  # nothing came before it
        ws.send_json({"type": "message", "id": "c", "text": "x" * 4097})
        assert ws.receive_json()["error"] == "bad_text"
        for _ in range(12):  # over the burst: dropped with an error, the socket kept
            ws.send_json({"type": "typing"})
        assert ws.receive_json()["error"] == "rate_limited"
    with chat.socket() as ws:
        welcome(ws)
        ws.send_text("x" * 9000)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1009


def test_user_notification_on_webchat_reaches_the_visitor(
    chat: Chat,
    client: TestClient,
    org: Org,
    db: Database,
    drain: Callable[[], int],
    message: Callable[[str], Any],
) -> None:
    with chat.socket() as ws:  # the first message makes the visitor a contact
        token = welcome(ws)
        ws.send_json({"type": "message", "id": "c1", "text": "hello"})
        ws.receive_json()
    visitor = token.split(".")[0]
    with db.read() as session:
        contact = session.scalars(select(Contact).where(Contact.webchat_id == visitor)).one()
        contact_id = contact.id
    body = {
        "contactId": contact_id,
        "message": {"text": "Your order shipped"},
        "channels": [{"name": "webchat"}],
    }
    with chat.socket(visitor=token) as ws:
        welcome(ws)
        r = client.post("/user/notifications/send", json=body, headers=org.token)
        assert r.status_code == 200, r.text
        mid = r.json()["id"]
        drain()
        got = ws.receive_json()
        assert got["text"] == "Your order shipped"
        ws.send_json({"type": "read", "id": got["id"]})
        ws.send_json({"type": "x"})
        ws.receive_json()
    drain()
    assert message(mid).status == "read"
