"""A gateway device bound to a WhatsApp Business Cloud API number, end to end against
the local peer that answers as the API documents: connect, send, the API's webhooks
(signed) moving the message on and reaching the device's own webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnirelay.channels.base import get_adapter
from omnirelay.channels.whatsapp_cloud import CloudAdapter
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.testing.cloudapi import CloudApiPeer
from omnirelay.webhooks.ssrf import parse_networks
from tests.conftest import Org
from tests.gateway.conftest import DeviceRef
from tests.notify.conftest import wait_for


@pytest.fixture
def peer() -> Iterator[CloudApiPeer]:
    adapter = get_adapter("whatsapp_cloud")
    assert isinstance(adapter, CloudAdapter)
    before = adapter.allowed_networks
    adapter.allowed_networks = parse_networks("127.0.0.0/8")  # the peer is on loopback
    with CloudApiPeer() as p:
        yield p
    adapter.allowed_networks = before


@pytest.fixture
def cloud_device(
    client: TestClient, org: Org, add_device: Callable[..., DeviceRef], peer: CloudApiPeer
) -> tuple[DeviceRef, int]:
    device = add_device()
    (row,) = client.get("/api/gateway/devices", headers=org.headers()).json()["items"]
    r = client.put(
        f"/api/gateway/devices/{row['id']}/driver",
        json={"provider": "whatsapp_cloud", "settings": peer.settings(verify_token="vt-123")},
        headers=org.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["driver"] == "whatsapp_cloud"
    return device, int(row["id"])


def _signed(client: TestClient, device_id: int, payload: dict[str, Any], secret: str) -> Any:
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        f"/gateway/cloud/{device_id}/webhook",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
    )


def test_connect_checks_the_number_with_the_api(
    cloud_device: tuple[DeviceRef, int], gw: Callable[..., Any], peer: CloudApiPeer
) -> None:
    device, _ = cloud_device
    assert gw("/qr", device.token) == {"detail": "device connected", "status": True}
    assert gw("/device", device.token)["device_status"] == "connect"
    assert any(r.method == "GET" for r in peer.requests)  # the phone number was looked up


def test_a_bad_token_does_not_connect(
    client: TestClient,
    org: Org,
    add_device: Callable[..., DeviceRef],
    peer: CloudApiPeer,
    gw: Callable[..., Any],
) -> None:
    device = add_device()
    (row,) = client.get("/api/gateway/devices", headers=org.headers()).json()["items"]
    client.put(
        f"/api/gateway/devices/{row['id']}/driver",
        json={"provider": "whatsapp_cloud", "settings": peer.settings(access_token="wrong")},
        headers=org.headers(),
    )
    body = gw("/qr", device.token)
    assert body["status"] is False and body["reason"]
    assert gw("/device", device.token)["device_status"] == "disconnect"


def test_send_through_the_api_and_its_webhooks(
    cloud_device: tuple[DeviceRef, int],
    gw: Callable[..., Any],
    client: TestClient,
    peer: CloudApiPeer,
    db: Database,
    drain: Callable[[], int],
    receiver: Any,
    deliverer: Any,
) -> None:
    device, device_id = cloud_device
    gw("/qr", device.token)
    gw(
        "/update-device",
        device.token,
        data={"webhookstatus": receiver.url("/status"), "webhook": receiver.url("/in")},
    )
    sent = gw("/send", device.token, data={"target": "6281234567890|Budi", "message": "Hi {name}",
                                           "preview": "false"})  # fmt: skip
    assert sent["status"] is True
    drain()
    (accepted,) = peer.messages
    assert accepted["to"] == "6281234567890" and accepted["type"] == "text"
    assert accepted["text"]["body"] == "Hi Budi"
    with db.transaction() as session:
        message = session.query(Message).one()
        attempt_id = message.id
        assert message.status == "sent"
    wamid = peer.requests[-1]  # the peer answered a wamid; find it through the attempt
    del wamid
    from sqlalchemy import select

    from omnirelay.messaging.models import MessageAttempt

    with db.transaction() as session:
        pid = session.scalars(
            select(MessageAttempt.provider_message_id).where(
                MessageAttempt.message_id == attempt_id
            )
        ).one()
    assert pid and pid.startswith("wamid.")
    secret = str(peer.app_secret)
    for status in ("delivered", "read"):
        r = _signed(client, device_id, peer.status_payload(pid, status), secret)
        assert r.status_code == 200 and r.json()["applied"] == 1
    drain()
    assert gw("/status", device.token, data={"id": sent["id"][0]})["message_status"] == "read"
    statuses = wait_for(
        lambda: len(receiver.received("/status")) >= 3 and receiver.received("/status")
    )
    assert [json.loads(r.body)["status"] for r in statuses] == ["sent", "delivered", "read"]
    r = _signed(client, device_id, peer.inbound_payload("6281234567890", "thanks!"), secret)
    assert r.json()["applied"] == 1
    incoming = wait_for(lambda: receiver.received("/in"))
    got = json.loads(incoming[0].body)
    assert got["sender"] == "6281234567890" and got["message"] == "thanks!"
    assert got["name"] == "Test User" and got["device"] == device.number


def test_the_webhook_refuses_a_bad_signature_and_answers_the_handshake(
    cloud_device: tuple[DeviceRef, int], client: TestClient, peer: CloudApiPeer
) -> None:
    _, device_id = cloud_device
    r = _signed(client, device_id, peer.inbound_payload("6281234567890", "x"), "not the secret")
    assert r.status_code == 401
    url = f"/gateway/cloud/{device_id}/webhook"
    ok = client.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "vt-123",
                                 "hub.challenge": "1158201444"})  # fmt: skip
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = client.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                  "hub.challenge": "1"})  # fmt: skip
    assert bad.status_code == 403
    assert client.get("/gateway/cloud/999999/webhook").status_code == 403


def test_a_failed_status_fails_the_message(
    cloud_device: tuple[DeviceRef, int],
    gw: Callable[..., Any],
    client: TestClient,
    peer: CloudApiPeer,
    db: Database,
    drain: Callable[[], int],
) -> None:
    from sqlalchemy import select

    from omnirelay.messaging.models import MessageAttempt

    device, device_id = cloud_device
    gw("/qr", device.token)
    sent = gw("/send", device.token, data={"target": "6281234567890", "message": "x"})
    drain()
    with db.transaction() as session:
        pid = session.scalars(select(MessageAttempt.provider_message_id)).one()
    payload = peer.status_payload(pid, "failed", error=(131026, "Message undeliverable"))
    _signed(client, device_id, payload, str(peer.app_secret))
    drain()
    assert gw("/status", device.token, data={"id": sent["id"][0]})["message_status"] == "failed"


def _while_the_api_is_asked(
    peer: CloudApiPeer, monkeypatch: pytest.MonkeyPatch, db: Database, sql: str, **params: Any
) -> list[str]:
    """Run ``sql`` in its own transaction from inside the API's answer to the number
    lookup; what happened is appended to the returned list."""
    from sqlalchemy import text

    happened: list[str] = []
    answer = peer._phone_number

    def write_then_answer(fields: str) -> Any:
        try:
            with db.transaction() as session:
                session.execute(text(sql), params)
            happened.append("committed")
        except Exception as exc:  # a lock held by /qr
            happened.append(repr(exc))
        return answer(fields)

    monkeypatch.setattr(peer, "_phone_number", write_then_answer)
    return happened


def test_no_transaction_is_open_while_the_api_is_asked(
    cloud_device: tuple[DeviceRef, int],
    gw: Callable[..., Any],
    peer: CloudApiPeer,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/qr asks the Cloud API about the number. While it does, another request can write,
    the device's own row included (on SQLite one open transaction would hold the
    database's only write lock until the API answered, or for its whole timeout)."""
    device, device_id = cloud_device
    sql = "UPDATE gateway_devices SET name = name WHERE id = :id"
    wrote = _while_the_api_is_asked(peer, monkeypatch, db, sql, id=device_id)
    assert gw("/qr", device.token) == {"detail": "device connected", "status": True}
    assert wrote == ["committed"]
    assert gw("/device", device.token)["device_status"] == "connect"


def test_a_device_connected_while_the_api_is_asked_is_not_connected_twice(
    cloud_device: tuple[DeviceRef, int],
    gw: Callable[..., Any],
    peer: CloudApiPeer,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device, device_id = cloud_device
    sql = "UPDATE gateway_devices SET status = 'connect' WHERE id = :id"
    wrote = _while_the_api_is_asked(peer, monkeypatch, db, sql, id=device_id)
    assert gw("/qr", device.token) == {"reason": "device already connect", "status": False}
    assert wrote == ["committed"]  # the checks ran again on the locked row, after the API


def test_stop_and_start_to_the_device_change_the_block_list(
    cloud_device: tuple[DeviceRef, int],
    gw: Callable[..., Any],
    client: TestClient,
    org: Org,
    peer: CloudApiPeer,
    receiver: Any,
    deliverer: Any,
) -> None:
    """Opt-out on the gateway's inbound path: the device's number gets STOP (in any
    spelling of the organization's keywords), the sender is blocked (via whatsapp) and a
    /send to them refused; START lifts it; the device's webhook gets both messages."""
    device, device_id = cloud_device
    gw("/qr", device.token)
    gw("/update-device", device.token, data={"webhook": receiver.url("/in")})
    secret, sender = str(peer.app_secret), "6281234567890"

    def blocked() -> list[tuple[str, str | None]]:
        r = client.get("/api/blocklist/phones", headers=org.headers())
        return [(e["phone"], e["via"]) for e in r.json()["items"]]

    r = _signed(client, device_id, peer.inbound_payload(sender, " стоп "), secret)
    assert r.status_code == 200 and r.json()["applied"] == 1
    assert blocked() == [(sender, "whatsapp")]
    refused = gw("/send", device.token, data={"target": sender, "message": "Sale!"})
    assert refused["status"] is False, refused
    r = _signed(client, device_id, peer.inbound_payload(sender, "start"), secret)
    assert r.json()["applied"] == 1
    assert blocked() == []
    assert gw("/send", device.token, data={"target": sender, "message": "Hi"})["status"] is True
    got = wait_for(lambda: len(receiver.received("/in")) >= 2 and receiver.received("/in"))
    assert [json.loads(g.body)["message"] for g in got] == [" стоп ", "start"]


def test_inbound_media_is_downloaded_into_media_storage_before_the_webhook(
    cloud_device: tuple[DeviceRef, int],
    gw: Callable[..., Any],
    client: TestClient,
    peer: CloudApiPeer,
    db: Database,
    settings: Any,
    receiver: Any,
    deliverer: Any,
) -> None:
    from sqlalchemy import select

    from omnirelay.drain import Drain
    from omnirelay.media.fetch import FetchStep
    from omnirelay.media.models import InboundFetch
    from omnirelay.messaging.models import InboundMessage

    device, device_id = cloud_device
    gw("/update-device", device.token, data={"webhook": receiver.url("/in")})
    pdf = b"%PDF-1.4\n" + b"y" * 700
    photo = peer.user_media(b"\xff\xd8\xff\xe0" + b"z" * 300, "image/jpeg")
    document = peer.user_media(pdf, "application/pdf")
    secret = str(peer.app_secret)
    for text, media in (
        ("the receipt", {"type": "document", "id": document, "mime_type": "application/pdf",
                         "filename": "receipt.pdf"}),
        ("", {"type": "image", "id": photo, "mime_type": "image/jpeg"}),
        ("lost", {"type": "image", "id": "999", "mime_type": "image/jpeg"}),  # not on the API
    ):  # fmt: skip
        payload = peer.inbound_payload("6281234567890", text, media=media)
        assert _signed(client, device_id, payload, secret).json()["applied"] == 1
    with db.read() as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert [(r.channel, r.text, r.attachments[0]["pending"]) for r in rows] == [
            ("whatsapp", "the receipt", True),
            ("whatsapp", "", True),
            ("whatsapp", "lost", True),
        ]
    assert receiver.received("/in") == []  # held until the files are in
    assert Drain(db, FetchStep(settings)).run_until_idle() == 3
    assert sorted(peer.downloads) == sorted([document, photo])
    got = wait_for(lambda: len(receiver.received("/in")) >= 3 and receiver.received("/in"))
    hooks = {json.loads(g.body)["message"]: json.loads(g.body) for g in got}
    receipt = hooks["the receipt"]
    assert (receipt["filename"], receipt["extension"], receipt["name"]) == (
        "receipt.pdf",
        "pdf",
        "Test User",
    )
    assert receipt["inboxid"].startswith("wamid.")
    assert client.get(receipt["url"]).content == pdf
    assert hooks[""]["url"] and hooks[""]["extension"] == "jpg"
    assert hooks["lost"]["url"] == ""  # the text arrives, without a file
    with db.read() as session:
        stored = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert stored[0].attachments == [
            {"name": "receipt.pdf", "contentType": "application/pdf", "size": len(pdf),
             "mediaUrl": receipt["url"]}
        ]  # fmt: skip
        assert stored[2].attachments[0]["error"] == "download_failed"
        assert session.scalars(select(InboundFetch)).all() == []
