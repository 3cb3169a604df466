"""What the SMTP server's refusals and failures do to an email step (the table in
docs/channels/email.md): 4xx and connection failures are retried with backoff, 5xx end
the step with its status and code (and the next route step takes over)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnirelay.channels.smtp.adapter import SmtpAdapter
from omnirelay.testing.smtppeer import SmtpPeer
from tests.conftest import Org
from tests.email.conftest import TO, create_connection, message, send, step


def test_4xx_at_rcpt_is_retried_then_sent(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    peer.rcpt_replies[TO] = "451 4.7.1 Greylisted, try again later"
    mid = send(v3)
    drain()
    detail = message(client, org, mid)
    assert detail["status"] == "accepted" and detail["attempts"] == []  # waiting to retry
    assert peer.messages == []
    del peer.rcpt_replies[TO]
    advance(3600)
    drain()
    assert message(client, org, mid)["status"] == "sent"
    assert len(peer.messages) == 1


def test_4xx_every_time_gives_up_after_the_tries(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    peer.data_reply = "452 4.3.1 Insufficient system storage"
    mid = send(v3)
    for _ in range(6):
        drain()
        advance(3600)
    detail = message(client, org, mid)
    assert (detail["status"], detail["code"]) == ("error", 1001)
    assert "SMTP 452 at DATA" in detail["error"]


def test_5xx_unknown_mailbox_fails_over_to_the_next_step(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    peer.rcpt_replies[TO] = "550 5.1.1 <ann@example.com>: Recipient address rejected"
    sms = {"channel": "sms", "sender": "SANDBOX", "text": "Your order is on its way"}
    mid = send(v3, step(), sms | {"phone": "79161234567"})
    drain()
    detail = message(client, org, mid)
    first, second = detail["attempts"]
    assert (first["channel"], first["status"], first["code"]) == ("email", "undelivered", 1010)
    assert "SMTP 550 at RCPT TO: 5.1.1" in first["error"]
    assert second["channel"] == "sms"  # the next step took the message
    assert detail["channel"] == "sms"


def test_5xx_at_data_is_rejected(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    peer.data_reply = "554 5.7.1 Message rejected as spam"
    mid = send(v3)
    drain()
    detail = message(client, org, mid)
    assert (detail["status"], detail["code"]) == ("rejected", 1000)
    assert "5.7.1 Message rejected as spam" in detail["error"]


def test_message_too_big_for_the_server(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    peer.data_reply = "552 5.3.4 Message size exceeds fixed limit"
    mid = send(v3)
    drain()
    assert message(client, org, mid)["code"] == 1012


def test_wrong_password_is_an_authorization_error(
    client: TestClient,
    org: Org,
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    r = create_connection(client, org, peer.settings(password="wrong"))
    assert r.status_code == 201, r.text
    mid = send(v3)
    drain()
    detail = message(client, org, mid)
    assert (detail["status"], detail["code"]) == ("error", 1003)
    assert "SMTP 535" in detail["error"]
    assert peer.messages == []


def test_untrusted_certificate_is_a_settings_error(
    client: TestClient,
    org: Org,
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    r = create_connection(client, org, peer.settings(ca_cert=None))  # the system's CAs
    assert r.status_code == 201, r.text
    mid = send(v3)
    drain()
    detail = message(client, org, mid)
    assert (detail["status"], detail["code"]) == ("error", 1016)
    assert "certificate" in detail["error"]


def test_connection_refused_is_retried(
    client: TestClient,
    org: Org,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = {"host": "127.0.0.1", "port": port, "security": "tls", "from_address": "a@b.example"}
    r = create_connection(client, org, settings)
    assert r.status_code == 201, r.text
    mid = send(v3)
    drain()
    detail = message(client, org, mid)
    assert detail["status"] == "accepted" and detail["attempts"] == []
    for _ in range(5):
        advance(3600)
        drain()
    detail = message(client, org, mid)
    assert (detail["status"], detail["code"]) == ("error", 1001)
    assert "connect to 127.0.0.1" in detail["error"] and "ConnectionRefused" in detail["error"]


def test_dropped_connection_is_retried(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    peer.drop = True
    mid = send(v3)
    drain()
    assert message(client, org, mid)["attempts"] == []
    peer.drop = False
    advance(3600)
    drain()
    assert message(client, org, mid)["status"] == "sent"


def test_a_host_the_guard_now_refuses_is_not_contacted(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    smtp_adapter: SmtpAdapter,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    smtp_adapter.allowed_networks = ()  # loopback is no longer allowed
    mid = send(v3)
    drain()
    detail = message(client, org, mid)
    assert (detail["status"], detail["code"]) == ("error", 1016)
    assert "not allowed" in detail["error"]
    assert peer.connections == 0


@pytest.mark.parametrize(
    ("peer_mode", "overrides", "says"),
    [
        ("none", {"security": "starttls"}, "STARTTLS"),  # required, not offered
    ],
)
def test_a_server_lacking_what_the_settings_require_is_a_settings_error(
    client: TestClient,
    org: Org,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    peer_mode: str,
    overrides: dict[str, Any],
    says: str,
) -> None:
    with SmtpPeer(mode=peer_mode, username=None) as bare:
        r = create_connection(client, org, bare.settings(**overrides))
        assert r.status_code == 201, r.text
        mid = send(v3)
        drain()
        detail = message(client, org, mid)
        assert (detail["status"], detail["code"]) == ("error", 1016), detail
        assert says in detail["error"]
        assert bare.messages == []
