"""Attachments of email replies: stored in the media storage (local disk here) when the
listener takes the mail, linked from the inbound message and the ``reply`` URL's body,
served by their direct links; files that fail a check are listed with the reason and
the reply's text is kept."""

from __future__ import annotations

from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.media.models import MediaSlot
from omnirelay.media.storage import MAX_SIZE
from omnirelay.messaging.models import InboundMessage
from omnirelay.smtp.listener import MailListener
from omnirelay.testing.receiver import Receiver
from omnirelay.testing.smtppeer import SmtpPeer
from tests.conftest import Org
from tests.email.conftest import PDF, PNG, TO, bodies, deliver, reply_with, sent, wait_for


@pytest.fixture
def big_listener(db: Database, settings: Settings) -> Any:
    """A listener that takes mail larger than one 10 MB file (base64 grows it by 4/3)."""
    roomy = settings.model_copy(update={"smtp_max_message_bytes": 16 * 1024 * 1024})
    with MailListener(db, roomy, host="127.0.0.1", port=0) as mail:
        yield mail


def test_a_replys_attachments_are_stored_linked_and_served(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
    db: Database,
) -> None:
    _, pid = sent(v3, drain, client, org, peer, reply=receiver.url("/reply"))
    files = [(PDF, "application", "pdf", "invoice.pdf"), (PNG, "image", "png", "photo.png")]
    deliver(listener, TO, ["support@shop.example"], reply_with(pid, "See attached", files))
    drain()
    [body] = wait_for(lambda: bodies(receiver, "/reply"))
    assert body["text"] == "See attached"
    attachments = body["attachments"]
    assert [(a["name"], a["contentType"], a["size"]) for a in attachments] == [
        ("invoice.pdf", "application/pdf", len(PDF)),
        ("photo.png", "image/png", len(PNG)),
    ]
    for attachment, data in zip(attachments, (PDF, PNG), strict=True):
        assert attachment["mediaUrl"].startswith("/user/media/files/")
        got = client.get(attachment["mediaUrl"])
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["content-type"].startswith(attachment["contentType"])
    # Each link is its own: another token is no file.
    assert client.get(attachments[0]["mediaUrl"].replace("/files/", "/files/x")).status_code == 404
    with db.transaction() as session:
        [row] = session.scalars(select(InboundMessage)).all()
        assert row.attachments == attachments
        slots = session.scalars(select(MediaSlot)).all()
        assert {s.organization_id for s in slots} == {org.id}
        assert all(s.used_at is not None for s in slots)


def test_a_reply_without_attachments_has_an_empty_list(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
    db: Database,
) -> None:
    _, pid = sent(v3, drain, client, org, peer, reply=receiver.url("/reply"))
    deliver(listener, TO, ["support@shop.example"], reply_with(pid, "Just text", []))
    drain()
    [body] = wait_for(lambda: bodies(receiver, "/reply"))
    assert (body["text"], body["attachments"]) == ("Just text", [])
    with db.transaction() as session:
        [row] = session.scalars(select(InboundMessage)).all()
        assert row.attachments is None
        assert session.scalars(select(MediaSlot)).all() == []


def test_files_that_fail_a_check_are_listed_with_the_reason_and_the_text_is_kept(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    big_listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
    db: Database,
    settings: Settings,
) -> None:
    _, pid = sent(v3, drain, client, org, peer, reply=receiver.url("/reply"))
    files = [
        (b"x" * (MAX_SIZE + 1), "application", "pdf", "huge.pdf"),
        (PNG, "application", "pdf", "photo.png"),  # a type that does not fit its name
        (PDF, "application", "pdf", "fine.pdf"),
    ]
    deliver(big_listener, TO, ["support@shop.example"], reply_with(pid, "Three files", files))
    drain()
    [body] = wait_for(lambda: bodies(receiver, "/reply"))
    assert body["text"] == "Three files"
    huge, mismatched, fine = body["attachments"]
    assert (huge["name"], huge["size"], huge["error"]) == (
        "huge.pdf",
        MAX_SIZE + 1,
        "file_too_large",
    )
    assert "mediaUrl" not in huge
    assert (mismatched["name"], mismatched["error"]) == ("photo.png", "content_type_mismatch")
    assert "error" not in fine
    assert client.get(fine["mediaUrl"]).content == PDF
    with db.transaction() as session:
        [slot] = session.scalars(select(MediaSlot)).all()
        assert slot.filename == "fine.pdf"
    # Only the stored file is on disk: nothing of the refused ones.
    stored = [p for p in (Path(settings.media_dir) / "storage").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == ["fine.pdf"]


def test_an_unnamed_attachment_gets_a_name_from_its_type(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
) -> None:
    _, pid = sent(v3, drain, client, org, peer, reply=receiver.url("/reply"))
    mail = EmailMessage()
    mail["From"] = f"Ann <{TO}>"
    mail["To"] = "support@shop.example"
    mail["In-Reply-To"] = f"<{pid}>"
    mail.set_content("Unnamed")
    mail.add_attachment(PNG, maintype="image", subtype="png", disposition="attachment")
    deliver(listener, TO, ["support@shop.example"], mail.as_bytes(policy=policy.SMTP))
    drain()
    [body] = wait_for(lambda: bodies(receiver, "/reply"))
    [attachment] = body["attachments"]
    assert (attachment["name"], attachment["contentType"]) == ("attachment.png", "image/png")
    assert client.get(attachment["mediaUrl"]).content == PNG
