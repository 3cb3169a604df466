"""The whatsapp_cloud adapter against a local Cloud API peer, and its webhook functions.

No database: the adapter is called directly, the peer answers over loopback HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from omnirelay.channels.base import Outbound, PermanentError, RetriableError, get_adapter
from omnirelay.channels.whatsapp_cloud import (
    CloudAdapter,
    CloudEvent,
    media_type,
    parse_webhook,
    retry_after,
    to_provider_event,
    verify_signature,
    verify_subscription,
)
from omnirelay.testing.cloudapi import CloudApiPeer, graph_error
from omnirelay.testing.receiver import Receiver
from omnirelay.webhooks.ssrf import parse_networks

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
TO = "6281234567890"


@pytest.fixture
def peer() -> Iterator[CloudApiPeer]:
    with CloudApiPeer(lifetime=120) as p:
        yield p


@pytest.fixture
def adapter() -> Iterator[CloudAdapter]:
    a = CloudAdapter(allowed_networks=LOOPBACK)
    yield a
    a.close()


def outbound(
    adapter: CloudAdapter,
    peer: CloudApiPeer,
    text: str | None = "Hello",
    *,
    phone: str = TO,
    extra: dict[str, Any] | None = None,
    **settings: Any,
) -> Outbound:
    return Outbound(
        message_id="m1",
        channel="whatsapp",
        phone=phone,
        sender=None,
        text=text,
        settings=adapter.validate_settings(peer.settings(**settings)),
        extra=extra or {},
    )


def expected(kind: str, part: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": kind,
        kind: part,
    }


# --- sending -----------------------------------------------------------------------------


def test_text_is_sent_as_documented(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    result = adapter.send(outbound(adapter, peer, "Hello, world"))

    assert result.provider_message_id.startswith("wamid.")
    assert result.events == ()
    assert peer.messages == [expected("text", {"body": "Hello, world", "preview_url": False})]
    request = peer.requests[-1]
    assert request.method == "POST"
    assert request.path == f"/v21.0/{peer.phone_number_id}/messages"
    assert request.headers["authorization"] == f"Bearer {peer.access_token}"
    assert request.headers["content-type"] == "application/json"


def test_every_send_gets_its_own_wamid(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    ids = {adapter.send(outbound(adapter, peer, f"n{i}")).provider_message_id for i in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize(("preview", "flag"), [(True, True), ("true", True), ("false", False)])
def test_link_preview(
    peer: CloudApiPeer, adapter: CloudAdapter, preview: object, flag: bool
) -> None:
    adapter.send(outbound(adapter, peer, "see https://example.com", extra={"preview": preview}))
    assert peer.messages[-1]["text"] == {"body": "see https://example.com", "preview_url": flag}


def test_api_version_is_used(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    adapter.send(outbound(adapter, peer, api_version="v19.0"))
    assert peer.requests[-1].path == f"/v19.0/{peer.phone_number_id}/messages"


def test_image_by_jpg_link_with_caption(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    url = "https://cdn.example.com/p/cat.JPG?size=big"
    adapter.send(outbound(adapter, peer, "A cat", extra={"url": url}))
    assert peer.messages == [expected("image", {"link": url, "caption": "A cat"})]


def test_document_by_pdf_link_carries_filename(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    url = "https://cdn.example.com/files/x1.pdf"
    extra = {"url": url, "filename": "Invoice 42.pdf"}
    adapter.send(outbound(adapter, peer, "Your invoice", extra=extra))
    assert peer.messages == [
        expected("document", {"link": url, "caption": "Your invoice", "filename": "Invoice 42.pdf"})
    ]


def test_document_without_filename_is_named_after_the_link(
    peer: CloudApiPeer, adapter: CloudAdapter
) -> None:
    url = "https://cdn.example.com/files/price%20list.xlsx"
    adapter.send(outbound(adapter, peer, None, extra={"url": url}))
    assert peer.messages == [expected("document", {"link": url, "filename": "price list.xlsx"})]


@pytest.mark.parametrize(
    ("url", "kind", "part"),
    [
        ("https://e.com/v/clip.mp4", "video", {"caption": "Hi"}),
        ("https://e.com/a/voice.mp3", "audio", {}),  # audio takes no caption
        ("https://e.com/a/voice.ogg", "audio", {}),
        ("https://e.com/s/sticker.webp", "sticker", {}),
        ("https://e.com/i/pic.png", "image", {"caption": "Hi"}),
    ],
)
def test_media_type_follows_the_extension(
    peer: CloudApiPeer, adapter: CloudAdapter, url: str, kind: str, part: dict[str, Any]
) -> None:
    adapter.send(outbound(adapter, peer, "Hi", extra={"url": url}))
    assert peer.messages == [expected(kind, {"link": url, **part})]


def test_media_type_falls_back_to_the_filename() -> None:
    assert media_type("https://e.com/download?id=7", "photo.jpeg") == "image"
    assert media_type("https://e.com/download?id=7") == "document"
    assert media_type("https://e.com/x.pdf", "x.jpg") == "document"  # the link decides first


def test_location(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    adapter.send(outbound(adapter, peer, None, extra={"location": "-6.2, 106.816666"}))
    adapter.send(outbound(adapter, peer, "Our shop", extra={"location": "51.5,-0.12"}))
    assert peer.messages == [
        expected("location", {"latitude": -6.2, "longitude": 106.816666}),
        expected("location", {"latitude": 51.5, "longitude": -0.12, "name": "Our shop"}),
    ]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"extra": {"location": "north"}}, 1021),
        ({"extra": {"location": "91,10"}}, 1021),
        ({"extra": {"url": "ftp://e.com/a.jpg"}}, 1036),
        ({"extra": {"choices": ["a", "b"], "pollname": "Which?"}}, 1031),
        ({"extra": {"file": "/var/uploads/a.pdf", "filename": "a.pdf"}}, 1031),
        ({"phone": "120363040000000000@g.us", "extra": {"group": True}}, 1010),
        ({"phone": "+62 812"}, 1010),
        ({"text": ""}, 1012),
        ({"text": "x" * 4097}, 1012),
        ({"text": "x" * 1025, "extra": {"url": "https://e.com/a.jpg"}}, 1012),
    ],
)
def test_refused_before_sending(
    peer: CloudApiPeer, adapter: CloudAdapter, kwargs: dict[str, Any], code: int
) -> None:
    text = kwargs.pop("text", "Hello")
    message = outbound(adapter, peer, text, **kwargs)
    with pytest.raises(PermanentError) as caught:
        adapter.send(message)
    assert (caught.value.status, caught.value.code) == ("rejected", code)
    assert peer.requests == []


# --- errors ------------------------------------------------------------------------------


def test_bad_token_is_an_authorization_error(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    with pytest.raises(PermanentError) as caught:
        adapter.send(outbound(adapter, peer, access_token="EAAG-revoked"))
    assert (caught.value.status, caught.value.code) == ("error", 1003)
    assert "190" in str(caught.value)
    assert peer.messages == []


def test_unknown_phone_number_id(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    with pytest.raises(PermanentError) as caught:
        adapter.send(outbound(adapter, peer, phone_number_id="999"))
    assert (caught.value.status, caught.value.code) == ("error", 1011)


def test_429_with_retry_after_is_retriable(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    peer.script = lambda body, n: graph_error(
        130429, "Rate limit hit", http_status=429, headers={"Retry-After": "7"}
    )
    with pytest.raises(RetriableError) as caught:
        adapter.send(outbound(adapter, peer))
    assert caught.value.delay == 7.0
    assert "130429" in str(caught.value)


@pytest.mark.parametrize("code", [4, 80007, 130429, 131048, 131056])
def test_rate_limit_codes_are_retriable(
    peer: CloudApiPeer, adapter: CloudAdapter, code: int
) -> None:
    peer.script = lambda body, n: graph_error(code, "Rate limit", http_status=400)
    with pytest.raises(RetriableError) as caught:
        adapter.send(outbound(adapter, peer))
    assert caught.value.delay is None  # no Retry-After: the queue's backoff decides


@pytest.mark.parametrize(
    "answer",
    [
        (500, {"error": {"message": "An unknown error occurred", "code": 1}}, {}),
        (503, b"<html>Service Unavailable</html>", {"Retry-After": "2"}),
        graph_error(131000, "Something went wrong", http_status=500),
        graph_error(2, "Service temporarily unavailable", http_status=400),
    ],
)
def test_server_errors_are_retriable(
    peer: CloudApiPeer, adapter: CloudAdapter, answer: tuple[int, Any, dict[str, str]]
) -> None:
    peer.script = lambda body, n: answer
    with pytest.raises(RetriableError) as caught:
        adapter.send(outbound(adapter, peer))
    assert caught.value.delay == (2.0 if "Retry-After" in answer[2] else None)


def test_a_retry_after_the_error_goes_through(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    peer.script = lambda body, n: (
        graph_error(131000, "Something went wrong", http_status=500) if n == 1 else None
    )
    message = outbound(adapter, peer)
    with pytest.raises(RetriableError):
        adapter.send(message)
    assert adapter.send(message).provider_message_id.startswith("wamid.")
    assert len(peer.messages) == 1


@pytest.mark.parametrize(
    ("code", "status", "omnirelay"),
    [
        (131026, "rejected", 1010),
        (131047, "rejected", 1058),
        (100, "rejected", 1021),
        (131009, "rejected", 1021),
        (131051, "rejected", 1031),
        (131052, "rejected", 1036),
        (131030, "rejected", 1022),
        (130497, "rejected", 1030),
        (132001, "rejected", 1000),  # not in the table: the undocumented-mistake code
        (131031, "error", 1011),
        (133010, "error", 1011),
        (131042, "error", 1015),
        (10, "error", 1003),
    ],
)
def test_refusals_map_to_stable_codes(
    peer: CloudApiPeer, adapter: CloudAdapter, code: int, status: str, omnirelay: int
) -> None:
    peer.script = lambda body, n: graph_error(
        code, "Message undeliverable", details="the recipient cannot receive it"
    )
    with pytest.raises(PermanentError) as caught:
        adapter.send(outbound(adapter, peer))
    assert (caught.value.status, caught.value.code) == (status, omnirelay)
    text = str(caught.value)
    assert f"{code}" in text and "Message undeliverable" in text
    assert "the recipient cannot receive it" in text


def test_timeout_is_retriable(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    message = outbound(adapter, peer, timeout=0.2)
    peer.delay = 2.0
    with pytest.raises(RetriableError) as caught:
        adapter.send(message)
    assert "timed out" in str(caught.value)
    peer.delay = 0.0


def test_connection_refused_is_retriable(adapter: CloudAdapter) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = adapter.validate_settings(
        {"phone_number_id": "1", "access_token": "t", "base_url": f"http://127.0.0.1:{port}"}
    )
    message = Outbound("m1", "whatsapp", TO, None, "Hi", settings=settings)
    with pytest.raises(RetriableError):
        adapter.send(message)


def test_success_without_a_message_id_is_retriable(
    peer: CloudApiPeer, adapter: CloudAdapter
) -> None:
    peer.script = lambda body, n: (200, {"messaging_product": "whatsapp", "messages": []}, {})
    with pytest.raises(RetriableError):
        adapter.send(outbound(adapter, peer))


def test_retry_after_forms() -> None:
    assert retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("12") == 12.0
    assert retry_after("-3") == 0.0
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after(past) == 0.0
    far = format_datetime(datetime.now(UTC) + timedelta(days=30), usegmt=True)
    assert retry_after(far) == 86400.0  # capped at a day


# --- settings ----------------------------------------------------------------------------


def test_settings_defaults(adapter: CloudAdapter) -> None:
    assert adapter.validate_settings({"phone_number_id": 106540352242922, "access_token": "t"}) == {
        "phone_number_id": "106540352242922",
        "access_token": "t",
        "app_secret": None,
        "verify_token": None,
        "api_version": "v21.0",
        "base_url": "https://graph.facebook.com",
        "timeout": 15.0,
    }


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"access_token": "t"}, "phone_number_id"),
        ({"phone_number_id": "12ab", "access_token": "t"}, "phone_number_id"),
        ({"phone_number_id": True, "access_token": "t"}, "phone_number_id"),
        ({"phone_number_id": "1"}, "access_token"),
        ({"phone_number_id": "1", "access_token": ""}, "access_token"),
        ({"phone_number_id": "1", "access_token": "a b"}, "access_token"),
        ({"phone_number_id": "1", "access_token": "t", "app_secret": ""}, "app_secret"),
        ({"phone_number_id": "1", "access_token": "t", "verify_token": 5}, "verify_token"),
        ({"phone_number_id": "1", "access_token": "t", "api_version": "21"}, "api_version"),
        ({"phone_number_id": "1", "access_token": "t", "base_url": "ftp://x"}, "base_url"),
        ({"phone_number_id": "1", "access_token": "t", "base_url": "https://u:p@x"}, "base_url"),
        ({"phone_number_id": "1", "access_token": "t", "base_url": "https://x/?a=1"}, "base_url"),
        ({"phone_number_id": "1", "access_token": "t", "timeout": 0}, "timeout"),
        ({"phone_number_id": "1", "access_token": "t", "timeout": 1000}, "timeout"),
        ({"phone_number_id": "1", "access_token": "t", "timeout": "15"}, "timeout"),
        ({"phone_number_id": "1", "access_token": "t", "timeout": True}, "timeout"),
        ({"phone_number_id": "1", "access_token": "t", "token": "x"}, "'token'"),
    ],
)
def test_settings_errors_name_the_setting(
    adapter: CloudAdapter, settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        adapter.validate_settings(settings)


def test_private_base_url_is_refused_unless_allowed(
    peer: CloudApiPeer, adapter: CloudAdapter
) -> None:
    with CloudAdapter(allowed_networks=()) as guarded:
        with pytest.raises(ValueError, match="base_url"):
            guarded.validate_settings(peer.settings())
        # Stored settings are checked again at send time (DNS may have changed since).
        settings = adapter.validate_settings(peer.settings())
        with pytest.raises(PermanentError) as caught:
            guarded.send(Outbound("m1", "whatsapp", TO, None, "Hi", settings=settings))
        assert (caught.value.status, caught.value.code) == ("error", 1016)
        assert peer.requests == []
        guarded.allowed_networks = LOOPBACK
        assert guarded.send(Outbound("m2", "whatsapp", TO, None, "Hi", settings=settings))


def test_registered_for_whatsapp_without_hiding_the_others() -> None:
    adapter = get_adapter("whatsapp_cloud")
    assert isinstance(adapter, CloudAdapter)
    assert adapter.channels == ("whatsapp",)
    # This module imported the adapter before any lookup: the built-ins are still there.
    assert get_adapter("sandbox") is not None and get_adapter("smpp") is not None


# --- check -------------------------------------------------------------------------------


def test_check_returns_the_number(peer: CloudApiPeer, adapter: CloudAdapter) -> None:
    info = adapter.check(adapter.validate_settings(peer.settings()))
    assert info == {
        "id": peer.phone_number_id,
        "display_phone_number": peer.display_phone_number,
        "verified_name": peer.verified_name,
        "quality_rating": peer.quality_rating,
    }
    assert peer.requests[-1].path == (
        f"/v21.0/{peer.phone_number_id}?fields=display_phone_number,verified_name,quality_rating"
    )


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"access_token": "EAAG-wrong"}, 1003), ({"phone_number_id": "4242"}, 1011)],
)
def test_check_refused(
    peer: CloudApiPeer, adapter: CloudAdapter, overrides: dict[str, str], code: int
) -> None:
    with pytest.raises(PermanentError) as caught:
        adapter.check(adapter.validate_settings(peer.settings(**overrides)))
    assert (caught.value.status, caught.value.code) == ("error", code)


# --- the peer's own refusals (it answers as documented) ----------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"to": TO, "type": "text", "text": {"body": "x"}},
        {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}},
        {"messaging_product": "whatsapp", "to": TO, "type": "text"},
        {"messaging_product": "whatsapp", "to": TO, "type": "audio", "audio": {"caption": "x"}},
        {
            "messaging_product": "whatsapp",
            "to": TO,
            "type": "audio",
            "audio": {"link": "https://e.com/a.mp3", "caption": "x"},
        },
        {"messaging_product": "whatsapp", "to": TO, "type": "location", "location": {}},
    ],
)
def test_peer_answers_100_for_malformed_bodies(peer: CloudApiPeer, body: dict[str, Any]) -> None:
    answer = httpx.post(
        f"{peer.base_url}/v21.0/{peer.phone_number_id}/messages",
        json=body,
        headers={"Authorization": f"Bearer {peer.access_token}"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == 100 and error["type"] == "OAuthException"
    assert error["message"].startswith("(#100)")
    assert peer.messages == []


def test_peer_refuses_a_missing_token(peer: CloudApiPeer) -> None:
    answer = httpx.post(f"{peer.base_url}/v21.0/{peer.phone_number_id}/messages", json={})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == 190
    assert "www-authenticate" in answer.headers


# --- webhooks: signature and subscription ------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_verify_signature() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    good = sign(body, "s3cret")
    assert verify_signature(body, good, "s3cret")
    assert verify_signature(body, good.upper().replace("SHA256=", "sha256="), "s3cret")
    assert not verify_signature(body, good, "other")
    assert not verify_signature(body + b" ", good, "s3cret")
    assert not verify_signature(body, None, "s3cret")
    assert not verify_signature(body, "", "s3cret")
    assert not verify_signature(body, good.replace("sha256=", "sha1="), "s3cret")
    assert not verify_signature(body, "sha256=", "s3cret")
    assert not verify_signature(body, "sha256=zz\u00e9", "s3cret")
    assert not verify_signature(body, sign(body, ""), "")  # no secret: nothing verifies


def test_verify_subscription() -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert verify_subscription(ok, "tok") == "1158201444"
    assert verify_subscription({**ok, "hub.verify_token": "nope"}, "tok") is None
    assert verify_subscription({**ok, "hub.mode": "unsubscribe"}, "tok") is None
    assert verify_subscription({k: v for k, v in ok.items() if k != "hub.challenge"}, "tok") is None
    assert verify_subscription({"hub.mode": "subscribe", "hub.challenge": "1"}, "tok") is None
    assert verify_subscription(ok, "") is None


# --- webhooks: payloads (shapes from the Cloud API webhook reference) ---------------------


def envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def inbound(message: dict[str, Any], name: str = "Sheena Nelson") -> dict[str, Any]:
    return envelope(
        {
            "contacts": [{"profile": {"name": name}, "wa_id": "16505551234"}],
            "messages": [
                {"from": "16505551234", "id": "wamid.IN1", "timestamp": "1749416383", **message}
            ],
        }
    )


@pytest.mark.parametrize("status", ["sent", "delivered", "read"])
def test_parse_status(status: str) -> None:
    item: dict[str, Any] = {
        "id": "wamid.OUT1",
        "status": status,
        "timestamp": "1750263773",
        "recipient_id": "16505551234",
    }
    if status != "read":
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
    assert parse_webhook(envelope({"statuses": [item]})) == [
        CloudEvent(
            "status",
            phone_number_id="106540352242922",
            timestamp=1750263773,
            provider_message_id="wamid.OUT1",
            status=status,
            recipient="16505551234",
        )
    ]


def test_parse_failed_status_with_error() -> None:
    payload = envelope(
        {
            "statuses": [
                {
                    "id": "wamid.OUT2",
                    "status": "failed",
                    "timestamp": "1750263773",
                    "recipient_id": "16505551234",
                    "errors": [
                        {
                            "code": 131026,
                            "title": "Message undeliverable",
                            "message": "Message undeliverable",
                            "error_data": {"details": "Message Undeliverable."},
                        }
                    ],
                }
            ]
        }
    )
    [event] = parse_webhook(payload)
    assert (event.status, event.error_code, event.error_title) == (
        "failed",
        131026,
        "Message undeliverable",
    )
    provider = to_provider_event(event)
    assert provider is not None
    assert (provider.kind, provider.status, provider.code) == ("status", "undelivered", 1010)
    assert provider.error is not None and "131026" in provider.error


def test_parse_inbound_text() -> None:
    [event] = parse_webhook(inbound({"type": "text", "text": {"body": "Hi there"}}))
    assert event == CloudEvent(
        "inbound",
        phone_number_id="106540352242922",
        timestamp=1749416383,
        sender="16505551234",
        name="Sheena Nelson",
        message_id="wamid.IN1",
        type="text",
        text="Hi there",
    )
    provider = to_provider_event(event)
    assert provider is not None and (provider.kind, provider.text) == ("inbound", "Hi there")


def test_parse_inbound_image_with_caption() -> None:
    image = {
        "caption": "My order",
        "mime_type": "image/jpeg",
        "sha256": "Ew0Xh2YJQ+nr3jKTTsH8vZkx8bcPhhzMi/IbGd5C3sE=",
        "id": "1003383421387256",
    }
    [event] = parse_webhook(inbound({"type": "image", "image": image}))
    assert (event.type, event.text, event.media_id, event.mime_type) == (
        "image",
        "My order",
        "1003383421387256",
        "image/jpeg",
    )


def test_parse_inbound_document() -> None:
    document = {
        "caption": "Lucky Shrub Invoice",
        "filename": "lucky-shrub-invoice.pdf",
        "mime_type": "application/pdf",
        "sha256": "abc",
        "id": "1073342837866543",
    }
    [event] = parse_webhook(inbound({"type": "document", "document": document}))
    assert (event.text, event.filename, event.mime_type) == (
        "Lucky Shrub Invoice",
        "lucky-shrub-invoice.pdf",
        "application/pdf",
    )


@pytest.mark.parametrize(
    ("interactive", "title"),
    [
        ({"type": "button_reply", "button_reply": {"id": "cancel", "title": "Cancel"}}, "Cancel"),
        (
            {
                "type": "list_reply",
                "list_reply": {
                    "id": "priority_express",
                    "title": "Priority Mail Express",
                    "description": "Next Day to 2 Days",
                },
            },
            "Priority Mail Express",
        ),
    ],
)
def test_parse_interactive_reply(interactive: dict[str, Any], title: str) -> None:
    message = {
        "context": {"from": "15550783881", "id": "wamid.OUT3"},
        "type": "interactive",
        "interactive": interactive,
    }
    [event] = parse_webhook(inbound(message))
    assert (event.type, event.text, event.context_id) == ("interactive", title, "wamid.OUT3")


def test_parse_template_quick_reply_button() -> None:
    message = {"type": "button", "button": {"payload": "STOP", "text": "Unsubscribe"}}
    [event] = parse_webhook(inbound(message))
    assert (event.type, event.text) == ("button", "Unsubscribe")


def test_parse_location() -> None:
    location = {
        "address": "101 Shore Street, Sunnyvale, CA 94089",
        "latitude": 37.44216251868683,
        "longitude": -122.16153582049394,
        "name": "Philz Coffee",
        "url": "https://philzcoffee.com",
    }
    [event] = parse_webhook(inbound({"type": "location", "location": location}))
    assert (event.latitude, event.longitude, event.location_name, event.address) == (
        37.44216251868683,
        -122.16153582049394,
        "Philz Coffee",
        "101 Shore Street, Sunnyvale, CA 94089",
    )
    assert event.text is None


def test_parse_several_changes_in_order() -> None:
    payload = envelope(
        {
            "statuses": [
                {"id": "wamid.A", "status": "delivered", "timestamp": "1", "recipient_id": "1"},
                {"id": "wamid.A", "status": "read", "timestamp": "2", "recipient_id": "1"},
            ]
        }
    )
    payload["entry"].append(inbound({"type": "text", "text": {"body": "x"}})["entry"][0])
    events = parse_webhook(payload)
    assert [(e.kind, e.status) for e in events] == [
        ("status", "delivered"),
        ("status", "read"),
        ("inbound", None),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "text",
        {},
        {"object": "whatsapp_business_account"},
        {"entry": "nope"},
        {"entry": [1, None, "x", {"changes": {"value": {}}}]},
        {"entry": [{"changes": [None, 3, {"value": []}]}]},
        # another webhook field of the same app
        {"entry": [{"changes": [{"field": "account_update", "value": {"statuses": []}}]}]},
        envelope({"statuses": [{"id": "wamid.X", "status": "deleted"}]}),
        envelope({"statuses": [{"status": "read"}, "junk", None]}),
        envelope({"errors": [{"code": 130429, "title": "Rate limit hit"}]}),
        inbound({"type": "unsupported", "errors": [{"code": 131051}]}),
        inbound({"type": "system", "system": {"body": "changed number"}}),
        inbound({"from": "+1 650", "type": "text", "text": {"body": "x"}}),
        inbound({"type": "location", "location": {"latitude": "north", "longitude": 1}}),
        inbound({"type": ["text"], "text": {"body": "x"}}),
        envelope({"messages": {"from": "1"}, "statuses": "x", "contacts": 5}),
    ],
)
def test_unknown_shapes_are_skipped(payload: Any) -> None:
    assert parse_webhook(payload) == []


def test_odd_parts_of_known_shapes_do_not_raise() -> None:
    odd = inbound({"type": "text", "text": "not an object", "timestamp": ["x"]}, name="")
    [event] = parse_webhook(odd)
    assert (event.text, event.timestamp, event.name) == (None, None, None)
    failed = envelope({"statuses": [{"id": "w", "status": "failed", "errors": [{"code": "x"}]}]})
    [status] = parse_webhook(failed)
    assert (status.error_code, status.error_title) == (None, None)
    provider = to_provider_event(status)
    assert provider is not None and provider.code == 1000


# --- webhooks: the peer's notifications, end to end over loopback ------------------------


def test_peer_notifications_are_signed_and_parse(peer: CloudApiPeer) -> None:
    assert peer.app_secret is not None
    with Receiver() as receiver:
        assert peer.post_status(receiver.url(), "wamid.S1", "delivered") == 200
        assert (
            peer.post_status(
                receiver.url(), "wamid.S2", "failed", error=(131047, "Re-engagement message")
            )
            == 200
        )
        assert peer.post_inbound(receiver.url(), "16505551234", "Halo", name="Budi") == 200
        assert peer.post_inbound(receiver.url(), "16505551234", "x", app_secret="") == 200
        got = receiver.received("/hook")

    events: list[CloudEvent] = []
    for request in got[:3]:
        assert verify_signature(
            request.body, request.headers.get("x-hub-signature-256"), peer.app_secret
        )
        events.extend(parse_webhook(json.loads(request.body)))
    assert "x-hub-signature-256" not in got[3].headers
    assert [(e.kind, e.provider_message_id, e.status, e.error_code) for e in events[:2]] == [
        ("status", "wamid.S1", "delivered", None),
        ("status", "wamid.S2", "failed", 131047),
    ]
    assert (events[2].sender, events[2].name, events[2].text) == ("16505551234", "Budi", "Halo")
    assert {e.phone_number_id for e in events} == {peer.phone_number_id}


def test_peer_stops_by_itself() -> None:
    peer = CloudApiPeer(lifetime=0.05).start()
    peer._thread.join(timeout=30)
    assert not peer._thread.is_alive()
    peer.stop()  # idempotent
