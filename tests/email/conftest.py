"""Fixtures of the email channel's tests: a real SMTP server (aiosmtpd, STARTTLS with a
throwaway certificate, AUTH) the smtp adapter sends to, omnirelay's own SMTP listener,
an organization with an email connection made through /api, the pipeline run in the
test's thread, a webhook receiver with the deliverer running; and what several modules
build (an email step, a send through /v3, DSNs and replies) in one place."""

from __future__ import annotations

import email
import json
import smtplib
import time
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient

import omnirelay.tasks  # noqa: F401  (registers the pipeline's handlers)
from omnirelay.channels.base import get_adapter
from omnirelay.channels.smtp.adapter import SmtpAdapter
from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.net.ssrf import parse_networks
from omnirelay.smtp.listener import MailListener
from omnirelay.testing.receiver import Receiver
from omnirelay.testing.smtppeer import SmtpPeer
from omnirelay.webhooks import service as webhooks
from omnirelay.webhooks.deliverer import Deliverer
from tests.conftest import Org
from tests.pipeline import Pipeline, jump

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
TO = "ann@example.com"


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Settings:
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        rate_limit_anonymous_requests=10_000,
        allowed_networks="127.0.0.0/8,::1/128",
        media_dir=str(tmp_path / "media"),
    )


@pytest.fixture(autouse=True)
def smtp_adapter(settings: Settings) -> Iterator[SmtpAdapter]:
    """The registered smtp adapter, allowed to reach loopback (the server's settings
    are the environment's, which do not allow it)."""
    adapter = get_adapter("smtp")
    assert isinstance(adapter, SmtpAdapter)
    before = adapter.allowed_networks, adapter.media_dir
    adapter.allowed_networks, adapter.media_dir = LOOPBACK, settings.media_dir
    yield adapter
    adapter.close()  # its pooled connections go with this test's peer
    adapter.allowed_networks, adapter.media_dir = before


@pytest.fixture
def peer() -> Iterator[SmtpPeer]:
    with SmtpPeer() as p:
        yield p


@pytest.fixture
def org(make_org: Callable[..., Org], db: Database) -> Org:
    created = make_org()
    with db.transaction() as session:
        webhooks.set_retry_schedule(session, created.id, [0.2, 0.4])
    return created


def create_connection(client: TestClient, org: Org, settings: dict[str, Any], **body: Any) -> Any:
    return client.post(
        "/api/connections",
        json={"channel": "email", "provider": "smtp", "name": "Mail", "settings": settings, **body},
        headers=org.headers(),
    )


@pytest.fixture
def connection(client: TestClient, org: Org, peer: SmtpPeer) -> dict[str, Any]:
    r = create_connection(client, org, peer.settings(reply_to="support@shop.example"))
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
def v3(client: TestClient, org: Org) -> Callable[..., Any]:
    def call(path: str, body: Any = None) -> Any:
        return client.post(f"/v3/{path}", json=body, headers=org.token)

    return call


@pytest.fixture
def drain(db: Database) -> Callable[[], int]:
    return Pipeline(db).run_until_idle


@pytest.fixture
def advance(db: Database) -> Callable[[float], None]:
    return lambda seconds: jump(db, seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def deliverer(db: Database, org: Org) -> Iterator[Deliverer]:
    d = Deliverer(db, allowed_networks=LOOPBACK, timeout=2.0, poll_interval=0.2)
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def listener(db: Database, settings: Settings) -> Iterator[MailListener]:
    with MailListener(db, settings, host="127.0.0.1", port=0) as mail:
        yield mail


def deliver(listener: MailListener, mail_from: str, to: list[str], data: bytes) -> None:
    """Hand a message to omnirelay's listener as an MTA would (smtplib: another client)."""
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.sendmail(mail_from, to, data)


def bodies(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received(path)]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


# --- what several test modules send and receive ---------------------------------------


def step(**fields: Any) -> dict[str, Any]:
    return {
        "channel": "email",
        "email": TO,
        "subject": "Your order №42",
        "text": "Hello Ann,\nyour order is on its way.",
        **fields,
    }


def message(client: TestClient, org: Org, message_id: str) -> dict[str, Any]:
    r = client.get(f"/api/messages/{message_id}", headers=org.headers())
    assert r.status_code == 200, r.text
    return dict(r.json())


def parsed(data: bytes) -> EmailMessage:
    out = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(out, EmailMessage)
    return out


def send(v3: Callable[..., Any], *route: dict[str, Any]) -> str:
    r = v3("message/send", {"route": list(route or [step()])})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def sent(
    v3: Callable[..., Any],
    drain: Callable[[], int],
    client: TestClient,
    org: Org,
    peer: SmtpPeer,
    **body: Any,
) -> tuple[str, str]:
    """Send one email through /v3; its id and its Message-ID as the peer received it."""
    r = v3("message/send", {"route": [step()], **body})
    assert r.status_code == 200, r.text
    mid = r.json()["id"]
    drain()
    detail = message(client, org, mid)
    assert detail["status"] == "sent"
    pid = detail["attempts"][0]["provider_message_id"]
    assert f"<{pid}>".encode() in peer.messages[-1].data
    return mid, pid


def dsn(
    message_id: str, *, status: str = "5.1.1", action: str = "failed", envid: str = ""
) -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464)."""
    envelope = f"Original-Envelope-Id: {envid}\r\n" if envid else ""
    return (
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        "To: news@shop.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <20261201.bounce.1@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
        "\r\n"
        "--B1\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--B1\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.com\r\n{envelope}\r\n"
        f"Final-Recipient: rfc822; {TO}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.example.com\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <ann@example.com>: Recipient address rejected:\r\n"
        "    User unknown in local recipient table\r\n"
        "\r\n"
        "--B1\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: Shop <news@shop.example>\r\nTo: {TO}\r\nSubject: Your order\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "\r\n"
        "--B1--\r\n"
    ).encode()


def reply(
    in_reply_to: str, text: str, *, to: str = "support@shop.example", **headers: str
) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Ann <{TO}>"
    mail["To"] = to
    mail["Subject"] = "Re: Your order"
    mail["In-Reply-To"] = f"<{in_reply_to}>"
    mail["References"] = f"<{in_reply_to}>"
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(text)
    return mail.as_bytes()


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 500


def reply_with(in_reply_to: str, text: str, files: list[tuple[bytes, str, str, str]]) -> bytes:
    """A reply with attachments: (data, maintype, subtype, filename)."""
    mail = EmailMessage()
    mail["From"] = f"Ann <{TO}>"
    mail["To"] = "support@shop.example"
    mail["Subject"] = "Re: Your order"
    mail["In-Reply-To"] = f"<{in_reply_to}>"
    mail.set_content(text)
    for data, maintype, subtype, filename in files:
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes(policy=policy.SMTP)  # CRLF: smtplib sends bytes as they are
