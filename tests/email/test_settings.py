"""Email connections through /api (settings checked, secrets masked, hosts through the
SSRF guard) and email steps through /v3 (checked before anything is written)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnirelay.testing.smtppeer import SmtpPeer
from tests.conftest import Org
from tests.email.conftest import create_connection, step

BROKEN_KEY = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"
BASE = {"host": "127.0.0.1", "from_address": "news@shop.example"}  # loopback is allowed here


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"from_address": "a@b.example"}, "host is required"),
        ({**BASE, "security": "ssl"}, "security must be one of none, starttls, tls"),
        ({**BASE, "port": 70000}, "port must be 1..65535"),
        ({**BASE, "port": "25"}, "port must be"),
        ({"host": "127.0.0.1"}, "from_address is required"),
        ({**BASE, "from_address": "not an address"}, "from_address"),
        ({**BASE, "from_address": "a@b@c"}, "from_address"),
        ({**BASE, "username": "u"}, "username and password go together"),
        ({**BASE, "security": "none", "username": "u", "password": "p"}, "only sent over TLS"),
        ({**BASE, "password": "p\r\nRCPT TO:<x@y.z>", "username": "u"}, "one line"),
        ({**BASE, "from_name": "Shop\r\nBcc: x@y.z"}, "from_name"),
        ({**BASE, "dkim_selector": "s1"}, "DKIM needs dkim_selector and dkim_private_key"),
        (
            {
                **BASE,
                "dkim_selector": "s1",
                "dkim_private_key": BROKEN_KEY,
            },
            "not a readable PEM RSA private key",
        ),
        ({**BASE, "timeout": 0}, "timeout must be a number in (0, 120]"),
        ({**BASE, "max_connections": 0}, "max_connections"),
        ({**BASE, "list_unsubscribe": "javascript:alert(1)"}, "list_unsubscribe"),
        ({**BASE, "ca_cert": "hello"}, "ca_cert must be a PEM certificate"),
        ({**BASE, "colour": "blue"}, "unknown smtp setting 'colour'"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(
    client: TestClient, org: Org, given: dict[str, Any], says: str
) -> None:
    r = create_connection(client, org, given)
    assert r.status_code == 400, r.text
    assert says in r.text
    assert len(client.get("/api/connections", headers=org.headers()).json()["items"]) == 4


@pytest.mark.one_engine
@pytest.mark.parametrize("host", ["10.0.0.7", "169.254.169.254", "[::ffff:10.0.0.1]", "0.0.0.0"])
def test_hosts_the_ssrf_guard_refuses(client: TestClient, org: Org, host: str) -> None:
    r = create_connection(client, org, {**BASE, "host": host.strip("[]")})
    assert r.status_code == 400, r.text
    assert "not allowed" in r.text
    assert "settings.host" in r.text


def test_a_host_that_does_not_resolve_is_refused(client: TestClient, org: Org) -> None:
    r = create_connection(client, org, {**BASE, "host": "smtp.does-not-exist.invalid"})
    assert r.status_code == 400, r.text
    assert "does not resolve" in r.text


def test_secrets_are_masked_and_survive_a_round_trip(
    client: TestClient, org: Org, peer: SmtpPeer
) -> None:
    r = create_connection(client, org, peer.settings(), senders=["offers@shop.example"])
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["settings"]["password"] == "***"
    assert created["settings"]["username"] == "relay-user"
    assert created["senders"] == ["news@shop.example", "offers@shop.example"]
    shown = client.get(f"/api/connections/{created['id']}", headers=org.headers()).json()
    assert "relay-pass" not in str(shown)
    # PATCH with the masked value sent back keeps the password; a new field is checked.
    r = client.patch(
        f"/api/connections/{created['id']}",
        json={"settings": {**shown["settings"], "from_name": "Shop & Co"}},
        headers=org.headers(),
    )
    assert r.status_code == 200, r.text
    r = client.patch(
        f"/api/connections/{created['id']}",
        json={"settings": {"host": "10.1.2.3"}},
        headers=org.headers(),
    )
    assert r.status_code == 400 and "not allowed" in r.text


def test_email_senders_must_be_addresses(client: TestClient, org: Org, peer: SmtpPeer) -> None:
    r = create_connection(client, org, peer.settings(), senders=["SHOP"])
    assert r.status_code == 400 and "sender" in r.text


def test_without_loopback_allowed_a_loopback_name_is_refused(
    database_url: str, make_org: Callable[..., Org]
) -> None:
    from omnirelay.app import create_app
    from omnirelay.config import Settings
    from omnirelay.db import Database

    db = Database(database_url)
    try:
        strict = Settings(database_url=database_url, rate_limit_requests=10_000)
        other = make_org("Strict", "admin@strict.test")
        with TestClient(create_app(strict, db=db)) as c:
            for host in ("localhost", "127.0.0.1"):
                r = create_connection(c, other, {**BASE, "host": host})
                assert r.status_code == 400, r.text
                assert "not allowed" in r.text
    finally:
        db.dispose()


# --- /v3 ------------------------------------------------------------------------------


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"email": None}, None, 'No field \\"email\\"'),
        ({"email": "ann"}, 1021, "email"),
        ({"email": "ann@example.com\r\nBcc: x@y.z"}, 1021, "email"),
        ({"subject": None}, None, 'No field \\"subject\\"'),
        ({"subject": "Hi\r\nBcc: x@y.z"}, 1021, "subject must be one line"),
        ({"text": None}, 1012, "an email needs text or html"),
        ({"attachments": ["ftp://x.example/a.pdf"]}, 1036, "Wrong image URL"),
        ({"attachments": ["http://10.0.0.5/a.pdf"]}, 1036, "not allowed"),
        ({"attachments": [{"url": "https://x.example/a", "size": 1}]}, 1021, "unknown"),
        ({"unsubscribe": "javascript:alert(1)"}, 1021, "unsubscribe"),
        ({"sender": "not-an-address"}, 1011, "Sender ID error"),
        ({"ttl": 10}, 1033, "ttl must be 60..172800"),
    ],
)
def test_bad_email_steps_are_refused(
    client: TestClient,
    org: Org,
    peer: SmtpPeer,
    v3: Callable[..., Any],
    fields: dict[str, Any],
    code: int | None,
    says: str,
) -> None:
    assert create_connection(client, org, peer.settings()).status_code == 201
    body = step(**fields)
    r = v3("message/send", {"route": [{k: v for k, v in body.items() if v is not None}]})
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["result"] == "error"
    assert answer.get("code") == code
    assert says in r.text
    assert client.get("/api/messages", headers=org.headers()).json()["items"] == []


def test_no_email_connection_is_no_channel_settings(v3: Callable[..., Any]) -> None:
    r = v3("message/send", {"route": [step()]})
    assert r.status_code == 400
    assert r.json()["code"] == 1016


def test_a_sender_not_on_the_connection_is_refused(
    client: TestClient, org: Org, peer: SmtpPeer, v3: Callable[..., Any]
) -> None:
    assert create_connection(client, org, peer.settings()).status_code == 201
    r = v3("message/send", {"route": [step(sender="other@shop.example")]})
    assert r.status_code == 400 and r.json()["code"] == 1011
    r = v3("message/send", {"route": [step(sender="NEWS@Shop.Example")]})  # the from address
    assert r.status_code == 400  # local parts are case-sensitive: not the same sender
    r = v3("message/send", {"route": [step(sender="news@SHOP.example")]})
    assert r.status_code == 200, r.text
