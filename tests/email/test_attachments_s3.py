"""An email reply's attachment kept in an S3-compatible bucket (moto in server mode, a
real S3 HTTP server on loopback): the object is in the bucket with its content type, and
the reply's link is the object's URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.media.models import MediaSlot
from omnirelay.smtp.listener import MailListener
from omnirelay.testing.receiver import Receiver
from omnirelay.testing.smtppeer import SmtpPeer
from tests.conftest import Org
from tests.email.conftest import PDF, TO, bodies, deliver, reply_with, sent, wait_for
from tests.platform.conftest import S3Server, bucket, s3_server  # noqa: F401  (fixtures)


@pytest.fixture
def settings(
    database_url: str,
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
    bucket: str,  # noqa: F811
) -> Settings:
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        rate_limit_anonymous_requests=10_000,
        allowed_networks="127.0.0.0/8,::1/128",
        media_dir=str(tmp_path / "media"),
        media_s3_bucket=bucket,
        media_s3_endpoint_url=s3_server.endpoint,
        media_s3_region=s3_server.region,
        media_s3_access_key_id=s3_server.access_key,
        media_s3_secret_access_key=s3_server.secret_key,
        media_s3_prefix="inbound/",
    )


def test_a_replys_attachment_goes_to_the_bucket(
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
    s3_server: S3Server,  # noqa: F811
    bucket: str,  # noqa: F811
    settings: Settings,
) -> None:
    _, pid = sent(v3, drain, client, org, peer, reply=receiver.url("/reply"))
    files = [(PDF, "application", "pdf", "invoice.pdf")]
    deliver(listener, TO, ["support@shop.example"], reply_with(pid, "In the bucket", files))
    drain()
    [body] = wait_for(lambda: bodies(receiver, "/reply"))
    [attachment] = body["attachments"]
    assert attachment["mediaUrl"].startswith(f"{s3_server.endpoint}/{bucket}/inbound/")
    assert attachment["mediaUrl"].endswith("/invoice.pdf")
    got = httpx.get(attachment["mediaUrl"], timeout=10)
    assert got.status_code == 200
    assert got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    with db.transaction() as session:
        [slot] = session.scalars(select(MediaSlot)).all()
        assert (slot.backend, slot.organization_id, slot.size) == ("s3", org.id, len(PDF))
        assert attachment["mediaUrl"].endswith(slot.key)
    # Nothing went to the local disk.
    assert not (Path(settings.media_dir) / "storage").exists() or not any(
        p.is_file() for p in (Path(settings.media_dir) / "storage").rglob("*")
    )
