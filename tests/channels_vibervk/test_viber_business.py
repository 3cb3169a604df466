"""Viber business messages by phone through Infobip (``infobip_viber``) end to end: /v3
sendViber to the local Infobip peer, its delivery and seen reports and the user's replies
through /hooks/infobip_viber/<id> (HTTP Basic with the connection's webhook_secret)."""

from __future__ import annotations

from typing import Any

from omnirelay.testing.httppeer import DROP, GARBAGE
from omnirelay.testing.viber import InfobipViberPeer
from tests.channels_vibervk.conftest import PHONE, replies, settle, wait_for

SENDER = "AcmeShop"


def business(connect: Any, peer: InfobipViberPeer) -> dict[str, Any]:
    return connect("viber", "infobip_viber", peer.settings(), [SENDER])  # type: ignore[no-any-return]


def send(v3: Any, **more: Any) -> str:
    body = {"sender": SENDER, "phone": PHONE, "text": "Your code is 1234", **more}
    r = v3("message/sendViber", body)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_a_message_goes_out_and_its_reports_come_back(
    connect, infobip_peer, hook, v3, drain, stored
):
    conn = business(connect, infobip_peer)
    assert conn["settings"]["api_key"] == "***" and conn["settings"]["webhook_secret"] == "***"
    mid = send(
        v3,
        image="https://i.example/promo.png",
        action={"title": "Open", "url": "https://shop.example"},
        ttl=3600,
    )
    drain()
    [sent] = infobip_peer.messages
    assert sent["sender"] == SENDER
    assert sent["destinations"] == [{"to": PHONE, "messageId": mid}]
    assert sent["content"] == {
        "type": "IMAGE",
        "url": "https://i.example/promo.png",
        "text": "Your code is 1234",
        "button": {"text": "Open", "url": "https://shop.example"},
    }
    assert sent["options"]["validityPeriod"] == {"amount": 3600, "timeUnit": "SECONDS"}
    message, [attempt] = stored(mid)
    assert attempt.provider_message_id == mid and message.status == "sent"
    path = f"infobip_viber/{conn['id']}"
    r = hook(path, infobip_peer.report(mid, PHONE), infobip_peer.auth())
    assert r.status_code == 200 and r.json() == {"ok": True, "applied": 1}
    drain()
    assert stored(mid)[0].status == "delivered"
    assert hook(path, infobip_peer.seen(mid, PHONE), infobip_peer.auth()).status_code == 200
    drain()
    assert stored(mid)[0].status == "read"


def test_an_undeliverable_report_maps_its_error(connect, infobip_peer, hook, v3, drain, stored):
    conn = business(connect, infobip_peer)
    mid = send(v3)
    drain()
    body = infobip_peer.report(mid, PHONE, "UNDELIVERABLE", error="EC_USER_BLOCKED")
    assert hook(f"infobip_viber/{conn['id']}", body, infobip_peer.auth()).status_code == 200
    drain()
    _, [attempt] = stored(mid)
    assert (attempt.status, attempt.code) == ("undelivered", 1201)
    assert "EC_USER_BLOCKED" in (attempt.error or "")


def test_a_user_reply_reaches_the_reply_url(
    connect, infobip_peer, hook, v3, drain, receiver, deliverer, inbound
):
    conn = business(connect, infobip_peer)
    mid = send(v3, reply=receiver.url("/reply"))
    drain()
    body = infobip_peer.reply(PHONE, SENDER, "STOP please")
    assert hook(f"infobip_viber/{conn['id']}", body, infobip_peer.auth()).status_code == 200
    drain()
    [reply] = wait_for(lambda: replies(receiver))
    assert reply["id"] == mid and reply["text"] == "STOP please"
    [row] = inbound()
    assert (row.channel, row.phone, row.to) == ("viber", PHONE, SENDER)


def test_wrong_credentials_are_refused_and_nothing_is_stored(
    connect, infobip_peer, hook, v3, drain, stored, inbound
):
    conn = business(connect, infobip_peer)
    mid = send(v3)
    drain()
    path = f"infobip_viber/{conn['id']}"
    report = infobip_peer.report(mid, PHONE)
    assert hook(path, report, infobip_peer.auth("wrong")).status_code == 401
    assert hook(path, report, {"Content-Type": "application/json"}).status_code == 401
    assert (
        hook(
            path, infobip_peer.reply(PHONE, SENDER, "x"), {"Authorization": "Basic !!"}
        ).status_code
        == 401
    )
    drain()
    assert stored(mid)[0].status == "sent" and inbound() == []


def test_faults_are_retried_and_an_api_key_error_ends_the_step(
    connect, infobip_peer, v3, drain, advance, stored
):
    business(connect, infobip_peer)
    faults = [
        (
            429,
            {
                "requestError": {
                    "serviceException": {"messageId": "TOO_MANY_REQUESTS", "text": "slow down"}
                }
            },
            {"Retry-After": "1"},
        ),
        (503, b"", {}),
        DROP,
    ]
    infobip_peer.script = lambda req, n: faults[n - 1] if n <= len(faults) else None
    mid = send(v3)
    settle(drain, advance)
    assert stored(mid)[0].status == "sent" and len(infobip_peer.messages) == 1
    infobip_peer.script = None
    infobip_peer.api_key = "rotated"
    mid = send(v3)
    drain()
    _, [attempt] = stored(mid)
    assert (attempt.status, attempt.code) == ("error", 1003)
    assert "UNAUTHORIZED" in (attempt.error or "")


def test_garbage_is_a_clear_error(connect, infobip_peer, v3, drain, advance, stored):
    business(connect, infobip_peer)
    infobip_peer.script = lambda req, n: GARBAGE
    mid = send(v3)
    settle(drain, advance)
    _, [attempt] = stored(mid)
    assert attempt.status == "error" and "unexpected answer from Infobip" in (attempt.error or "")
