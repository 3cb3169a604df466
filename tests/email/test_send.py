"""Email out, end to end from /v3: a route step on the email channel is sent by the smtp
provider to a real SMTP server (STARTTLS, AUTH) and arrives as a correct MIME message;
DKIM signatures verify; attachments arrive; the statuses and reports follow."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from omnirelay.config import Settings
from omnirelay.media.storage import digest
from omnirelay.testing.receiver import Receiver
from omnirelay.testing.smtppeer import SmtpPeer
from tests.conftest import Org
from tests.email.conftest import TO, bodies, create_connection, message, parsed, step, wait_for


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def test_an_email_step_arrives_as_a_multipart_message(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    advance: Callable[[float], None],
    receiver: Receiver,
    deliverer: Any,
) -> None:
    html = '<p>Hello <b>Ann</b>, <a href="https://shop.example/o/42">your order</a></p>'
    r = v3(
        "message/send",
        {
            "report": receiver.url("/report"),
            "route": [step(html=html, unsubscribe="https://shop.example/u/{email}")],
        },
    )
    assert r.status_code == 200, r.text
    mid = r.json()["id"]
    drain()

    [received] = peer.messages
    assert received.mail_from == "news@shop.example"
    assert received.rcpt_tos == [TO]
    assert peer.logins == ["relay-user"]  # AUTH, after STARTTLS (the peer requires it)
    mail = parsed(received.data)
    assert mail["From"] == "Shop <news@shop.example>"
    assert mail["To"] == TO
    assert mail["Subject"] == "Your order №42"
    assert mail["Reply-To"] == "support@shop.example"
    assert mail["List-Unsubscribe"] == "<https://shop.example/u/ann%40example.com>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(("plain",))
    rich = mail.get_body(("html",))
    assert plain is not None and rich is not None
    assert _lines(plain.get_content()) == "Hello Ann,\nyour order is on its way."
    assert _lines(rich.get_content()) == html

    detail = message(client, org, mid)
    [attempt] = detail["attempts"]
    assert mail["Message-ID"] == f"<{attempt['provider_message_id']}>"
    assert attempt["provider_message_id"] == f"{mid.replace('-', '')}@shop.example"
    assert (detail["status"], detail["channel"], detail["phone"]) == ("sent", "email", "")

    # No bounce within the bounce window: delivered.
    advance(3600)
    drain()
    assert message(client, org, mid)["status"] == "delivered"
    reports = wait_for(
        lambda: len(receiver.received("/report")) >= 2 and bodies(receiver, "/report")
    )
    assert [(b["status"], b["channel"]) for b in reports] == [
        ("sent", "email"),
        ("delivered", "email"),
    ]


def test_html_only_gets_a_text_part_made_from_it(
    connection: dict[str, Any], peer: SmtpPeer, v3: Callable[..., Any], drain: Callable[[], int]
) -> None:
    r = v3("message/send", {"route": [step(text=None, html="<h1>Sale</h1><p>All &amp; more</p>")]})
    assert r.status_code == 200, r.text
    drain()
    plain = parsed(peer.messages[0].data).get_body(("plain",))
    assert plain is not None
    assert plain.get_content().split() == ["Sale", "All", "&", "more"]


def test_sendmixed_sends_each_email(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    r = v3(
        "message/sendMixed",
        [
            {"route": [step(email="one@example.com")]},
            {"route": [step(email="two@example.com", subject="Second")]},
        ],
    )
    assert r.status_code == 200, r.text
    ids = r.json()["id"]
    assert len(ids) == 2
    drain()
    assert sorted(m.rcpt_tos[0] for m in peer.messages) == ["one@example.com", "two@example.com"]
    assert all(message(client, org, i)["status"] == "sent" for i in ids)
    assert len(peer.logins) <= 2  # connections are reused, not one per message


def _dkim_key() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_signature_verifies(
    client: TestClient,
    org: Org,
    peer: SmtpPeer,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    pem, record = _dkim_key()
    r = create_connection(
        client, org, peer.settings(dkim_selector="mail2026", dkim_private_key=pem)
    )
    assert r.status_code == 201, r.text
    assert r.json()["settings"]["dkim_private_key"] == "***"
    assert r.json()["settings"]["password"] == "***"
    v3("message/send", {"route": [step(html="<p>signed</p>")]})
    drain()
    data = peer.messages[0].data
    assert data.startswith(b"DKIM-Signature:")
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record

    assert dkim.verify(data, dnsfunc=dns)
    assert asked == [b"mail2026._domainkey.shop.example."]
    tampered = data.replace(b"signed", b"forged")
    assert not dkim.verify(tampered, dnsfunc=dns)


@pytest.fixture
def files() -> Iterator[tuple[str, dict[str, bytes]]]:
    """An HTTP server with files to attach (GET)."""
    content = {"/invoice.pdf": b"%PDF-1.4 fake invoice\n" * 50, "/big.bin": b"x" * (11 << 20)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = content.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", content
    server.shutdown()
    server.server_close()


def test_attachments_from_a_url_and_from_omnirelay_media(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    settings: Settings,
    files: tuple[str, dict[str, bytes]],
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    base, content = files
    token = "T" * 32  # a stored media file, as media/upload leaves it on local disk
    stored = Path(settings.media_dir) / "storage" / digest(token) / "photo.png"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"\x89PNG fake")
    media_link = f"http://127.0.0.1:1/user/media/files/{token}/photo.png"  # never fetched
    r = v3(
        "message/send",
        {
            "route": [
                step(
                    attachments=[
                        {"url": f"{base}/invoice.pdf", "filename": "Invoice 42.pdf"},
                        media_link,
                    ]
                )
            ]
        },
    )
    assert r.status_code == 200, r.text
    drain()
    mail = parsed(peer.messages[0].data)
    assert mail.get_content_type() == "multipart/mixed"
    got = {
        a.get_filename(): (a.get_content_type(), a.get_content()) for a in mail.iter_attachments()
    }
    assert got == {
        "Invoice 42.pdf": ("application/pdf", content["/invoice.pdf"]),
        "photo.png": ("image/png", b"\x89PNG fake"),
    }
    body = mail.get_body(("plain",))
    assert body is not None and "on its way" in body.get_content()


def test_a_missing_or_oversized_attachment_fails_the_step(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    files: tuple[str, dict[str, bytes]],
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    base, _ = files
    missing = v3("message/send", {"route": [step(attachments=[f"{base}/nope.pdf"])]}).json()["id"]
    big = v3("message/send", {"route": [step(attachments=[f"{base}/big.bin"])]}).json()["id"]
    drain()
    assert peer.messages == []
    for mid, text in ((missing, "HTTP 404"), (big, "over 10 MB")):
        detail = message(client, org, mid)
        assert (detail["status"], detail["code"]) == ("rejected", 1036)
        assert text in detail["error"]


def test_sandbox_email_works_offline(
    client: TestClient, org: Org, v3: Callable[..., Any], drain: Callable[[], int]
) -> None:
    r = client.post(
        "/api/connections",
        json={"channel": "email", "provider": "sandbox", "name": "Sandbox email",
              "settings": {"report_delay": 0}},
        headers=org.headers(),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    ok = v3("message/send", {"route": [step()]}).json()["id"]
    rejected = v3("message/send", {"route": [step(email="user000003@example.com")]}).json()["id"]
    drain()
    assert message(client, org, ok)["status"] == "delivered"
    assert message(client, org, rejected)["status"] == "rejected"
