# ruff: noqa: RUF001  (look-alike characters are what these tests are about)
"""Issue 18, items 1-3: one SSRF guard for every sink, deciding on the host the HTTP
client will connect to."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnirelay.connections.models import ChannelConnection
from omnirelay.db import Database
from omnirelay.net.connectors import GuardedConnector
from omnirelay.net.ssrf import UnsafeURL, check_host, parse_networks
from omnirelay.testing.receiver import Receiver
from omnirelay.webhooks import service as webhooks
from omnirelay.webhooks.deliverer import Deliverer
from tests.conftest import Org
from tests.security.conftest import DeviceRef
from tests.webhooks.conftest import wait_for

SMS = {"sender": "SANDBOX", "phone": "79161234567", "text": "Hello"}

# Spellings of 127.0.0.1 an HTTP client normalises to it (UTS-46 / WHATWG URL parsing).
UNICODE_LOOPBACK = [
    "http://１２７.０.０.１:9901/s",  # full-width digits
    "https://１２７.０.０.１/s",
    "http://①②⑦.⓪.⓪.①:9901/s",  # circled digits
    "http://127。0。0。1:9901/s",  # ideographic full stops
    "http://１27．0.０。1/s",  # mixed
    "http://%31%32%37.0.0.1/s",  # percent-encoded
    "http://ＬＯＣＡＬＨＯＳＴ/s",
]
LEGACY_IPV4 = [
    "http://2130706433/s",  # decimal
    "http://0x7f000001/s",  # hex
    "http://0177.0.0.1/s",  # octal
    "http://127.1/s",  # short form
    "http://0x7f.1/s",
    "http://0/s",
]
TRANSITION = [
    "http://[::127.0.0.1]/s",  # IPv4-compatible
    "http://[::ffff:127.0.0.1]/s",  # IPv4-mapped
    "http://[64:ff9b::127.0.0.1]/s",  # NAT64
    "http://[64:ff9b:1::a00:1]/s",  # local-use NAT64
    "http://[2002:7f00:1::]/s",  # 6to4 of 127.0.0.1
    "http://[2002:a00:1::1]/s",  # 6to4 of 10.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/s",  # Teredo, client 127.0.0.1
]
RESERVED = [
    "http://224.0.0.1/s",  # multicast
    "http://[ff02::1]/s",
    "http://240.0.0.1/s",  # reserved
    "http://255.255.255.255/s",
    "http://[::]/s",  # unspecified
    "http://169.254.169.254/latest/meta-data/",
]
REFUSED = UNICODE_LOOPBACK + LEGACY_IPV4 + TRANSITION + RESERVED


def _count(db: Database, model: Any) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.one_engine
@pytest.mark.parametrize("url", REFUSED)
def test_report_and_reply_urls_refused_on_v3(
    client: TestClient, org: Org, db: Database, url: str
) -> None:
    from omnirelay.messaging.models import Message

    for field in ("report", "reply"):
        r = client.post("/v3/message/sendSMS", json={**SMS, field: url}, headers=org.token)
        assert r.status_code == 400, r.text
        assert r.json()["result"] == "error" and r.json()["code"] == 1021
        assert r.json()["field"] == field
    assert _count(db, Message) == 0


@pytest.mark.one_engine
@pytest.mark.parametrize("url", REFUSED)
def test_callback_server_url_refused_on_user(client: TestClient, org: Org, url: str) -> None:
    r = client.post("/user/callback/set", json={"callbackUrl": url}, headers=org.token)
    assert r.status_code == 500 and r.json()["code"] == "unsafe_url", r.text


@pytest.mark.one_engine
@pytest.mark.parametrize("url", TRANSITION + RESERVED + ["http://①②⑦.⓪.⓪.①/s"])
def test_gateway_webhooks_and_media_refused(
    add_device: Callable[..., DeviceRef], gw: Callable[..., Any], url: str
) -> None:
    device = add_device()
    answer = gw("/update-device", device.token, data={"webhook": url})
    assert answer["status"] is False and answer["reason"].startswith("webhook url"), answer
    answer = gw("/send", device.token, data={"target": "6281234567002", "url": url})
    assert answer["status"] is False, answer


def test_deliverer_refuses_a_stored_unicode_url(
    db: Database, org: Org, make_org: Callable[..., Org]
) -> None:
    """A URL stored before the guard knew these spellings is refused when delivering,
    although the receiver listens on the very address it names."""
    with Receiver() as receiver:
        url = f"http://１２７.０.０.１:{receiver.port}/s"
        with db.transaction() as session:
            webhooks.set_retry_schedule(session, org.id, [0.2])
            event_id = webhooks.emit(session, org.id, url, "test.event", {"n": 1}).id

        def state() -> Any:
            with db.transaction() as session:
                return webhooks.get_event(session, org.id, event_id)[0]

        d = Deliverer(db, allowed_networks=(), timeout=1.0, poll_interval=0.2)
        d.start()
        try:
            wait_for(lambda: state().status == "failed")
        finally:
            d.stop()
        assert receiver.received() == []
        assert "not allowed" in (state().last_error or "")


def test_guarded_connector_checks_literals_the_resolver_never_sees() -> None:
    """aiohttp connects to an address literal without asking its resolver: the
    connector checks it anyway, and lets it through when the operator allowed it."""

    async def get(url: str, allowed: str) -> int:
        connector = GuardedConnector(parse_networks(allowed))
        async with (
            aiohttp.ClientSession(connector=connector) as client,
            client.post(url, data=b"{}") as resp,
        ):
            return resp.status

    with Receiver() as receiver:
        for host in ("127.0.0.1", "localhost", "１２７.０.０.１"):
            with pytest.raises(UnsafeURL):
                asyncio.run(get(f"http://{host}:{receiver.port}/x", ""))
        assert receiver.received() == []
        assert asyncio.run(get(f"http://127.0.0.1:{receiver.port}/x", "127.0.0.0/8")) == 200
        assert len(receiver.received()) == 1


# --- SMPP hosts ----------------------------------------------------------------------------

SMPP = {"port": 2775, "system_id": "esme", "password": "pw"}


@pytest.mark.one_engine
@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "10.0.0.1", "127.0.0.1", "localhost", "１２７.０.０.１", "2130706433",
     "::1", "::ffff:10.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_smpp_host_refused_on_create_and_update(
    client: TestClient, org: Org, db: Database, host: str
) -> None:
    body = {
        "channel": "sms",
        "provider": "smpp",
        "name": "SMSC",
        "settings": {**SMPP, "host": host},
    }
    r = client.post("/api/connections", json=body, headers=org.headers())
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "unsafe_url"
    assert r.json()["errors"][0]["field"] == "settings.host"
    with db.read() as session:
        assert session.scalar(
            select(func.count()).select_from(ChannelConnection).where(
                ChannelConnection.provider == "smpp"
            )
        ) == 0  # fmt: skip
    public = {**body, "settings": {**SMPP, "host": "8.8.8.8"}}
    created = client.post("/api/connections", json=public, headers=org.headers())
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    r = client.patch(
        f"/api/connections/{cid}", json={"settings": {"host": host}}, headers=org.headers()
    )
    assert r.status_code == 400 and r.json()["code"] == "unsafe_url", r.text
    got = client.get(f"/api/connections/{cid}", headers=org.headers()).json()
    assert got["settings"]["host"] == "8.8.8.8"


def test_operator_allowlist_admits_a_private_smsc(db: Database, settings: Any, org: Org) -> None:
    from omnirelay.app import create_app

    allowed = settings.model_copy(update={"allowed_networks": "10.20.0.0/16"})
    with TestClient(create_app(allowed, db=db)) as c:
        body = {
            "channel": "sms",
            "provider": "smpp",
            "name": "Private SMSC",
            "settings": {**SMPP, "host": "10.20.1.5"},
        }
        assert c.post("/api/connections", json=body, headers=org.headers()).status_code == 201
        body["settings"] = {**SMPP, "host": "10.30.1.5"}  # outside the allowed network
        assert c.post("/api/connections", json=body, headers=org.headers()).status_code == 400


def test_old_webhook_allowlist_setting_still_applies(db: Database, settings: Any, org: Org) -> None:
    from omnirelay.app import create_app

    allowed = settings.model_copy(update={"webhook_allowed_networks": "127.0.0.0/8"})
    with TestClient(create_app(allowed, db=db)) as c:
        r = c.post(
            "/user/callback/set", json={"callbackUrl": "http://127.0.0.1:9/x"}, headers=org.token
        )
        assert r.status_code == 200, r.text


def test_check_host_pins_the_address_a_session_connects_to() -> None:
    """What the SMPP session calls before it connects (and connects to the result)."""
    assert str(check_host("localhost", 2775, parse_networks("127.0.0.0/8"))) == "127.0.0.1"
    assert str(check_host("１２７.０.０.１", 2775, parse_networks("127.0.0.0/8"))) == "127.0.0.1"
    with pytest.raises(UnsafeURL):
        check_host("localhost", 2775)


def test_smpp_session_is_not_started_for_a_refused_host(db: Database, org: Org) -> None:
    """A host stored before the guard (or allowed then, refused now) is checked again
    when the session would start: no runner, no bind credentials sent anywhere."""
    from omnirelay.connections import service as connections
    from omnirelay.smpp.manager import SessionManager
    from omnirelay.testing.fakesmsc import FakeSmsc

    with FakeSmsc() as smsc:
        with db.transaction() as session:
            row = connections.create(
                session,
                org.id,
                channel="sms",
                provider="smpp",
                name="SMSC",
                settings={**SMPP, "host": "localhost", "port": smsc.port},
                senders=["ACME"],
            )
            connection_id = row.id
        refused = SessionManager(db, refresh=3600)
        refused.refresh()
        assert connection_id not in refused.runners
        allowed = SessionManager(db, refresh=3600, allowed_networks=parse_networks("127.0.0.0/8"))
        allowed.refresh()  # the lease was released: another process may take it
        try:
            runner = allowed.runners[connection_id]
            assert runner.config.host == "127.0.0.1"  # pinned to the checked address
        finally:
            for cid in list(allowed.runners):
                allowed._drop(cid)
