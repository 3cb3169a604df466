"""Media storage in an S3-compatible bucket, against a real S3 server (moto in server
mode, started by the harness): the slot is a presigned POST that the server takes as the
seed describes, the link serves the file, and the signed policy holds the slot's rules.

moto stores what is posted without evaluating the policy; the policy is therefore decoded
and its signature recomputed here, which is what AWS S3, MinIO or Ceph check on upload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.media.models import MediaSlot
from omnirelay.media.storage import MAX_SIZE
from tests.platform.conftest import S3Server, UserCall

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 16


@pytest.fixture
def settings(database_url: str, tmp_path: Path, s3_server: S3Server, bucket: str) -> Settings:
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        media_dir=str(tmp_path / "media"),
        media_s3_bucket=bucket,
        media_s3_endpoint_url=s3_server.endpoint,
        media_s3_region=s3_server.region,
        media_s3_access_key_id=s3_server.access_key,
        media_s3_secret_access_key=s3_server.secret_key,
        media_s3_prefix="acme/",
    )


def _slot(user: UserCall, **body: Any) -> dict[str, Any]:
    answer = user("media/upload", body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _upload(slot: dict[str, Any], content: bytes) -> httpx.Response:
    """The seed's form POST, straight to the bucket (no omnirelay in between)."""
    return httpx.post(
        slot["url"], data=slot["fields"], files={"file": ("c.pdf", content)}, timeout=30
    )


def test_a_file_goes_to_the_bucket_with_the_slots_form_and_its_link_serves_it(
    user: UserCall, s3_server: S3Server, bucket: str, db: Database, settings: Settings
) -> None:
    slot = _slot(user, filename="contract.pdf", contentType="application/pdf")
    assert slot["url"] == f"{s3_server.endpoint}/{bucket}"
    key = slot["fields"]["key"]
    assert key.startswith("acme/") and key.endswith("/contract.pdf")
    assert slot["mediaUrl"] == f"{s3_server.endpoint}/{bucket}/{key}"
    answer = _upload(slot, PDF)
    assert answer.status_code == 204, answer.text
    got = httpx.get(slot["mediaUrl"], timeout=30)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    with db.transaction() as session:
        row = session.scalars(select(MediaSlot)).one()
        assert (row.backend, row.key, row.token_hash) == ("s3", key, None)
    assert not (Path(settings.media_dir) / "storage").exists()  # nothing on local disk


def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def test_the_policy_pins_key_type_size_and_hour_and_is_signed_with_the_buckets_key(
    user: UserCall, s3_server: S3Server, bucket: str
) -> None:
    before = datetime.now(UTC)
    slot = _slot(user, filename="photo.jpeg")
    fields = slot["fields"]
    assert fields["Content-Type"] == "image/jpeg" and fields["acl"] == "public-read"
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"bucket": bucket} in conditions
    assert {"key": fields["key"]} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert {"acl": "public-read"} in conditions
    assert ["content-length-range", 1, MAX_SIZE] in conditions
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=59) < expiration <= before + timedelta(hours=1, seconds=5)
    expires_at = datetime.fromisoformat(slot["expiresAt"].replace("Z", "+00:00"))
    assert abs(expires_at - expiration) < timedelta(seconds=2)  # the slot's own hour

    access_key, date, region, service, terminal = fields["x-amz-credential"].split("/")
    assert (access_key, region, service, terminal) == (
        s3_server.access_key,
        s3_server.region,
        "s3",
        "aws4_request",
    )
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    signature = hmac.new(
        _signing_key(s3_server.secret_key, date, region),
        fields["policy"].encode(),
        hashlib.sha256,
    ).hexdigest()
    assert hmac.compare_digest(signature, fields["x-amz-signature"])


def test_bad_slots_are_refused_before_anything_is_signed_or_stored(
    user: UserCall, db: Database
) -> None:
    for body, code in (
        ({"filename": "contract"}, "filename_without_extension"),
        ({"filename": "a.pdf", "contentType": "image/png"}, "content_type_mismatch"),
    ):
        answer = user("media/upload", body)
        assert answer.status_code == 500 and answer.json()["code"] == code, answer.text
    with db.transaction() as session:
        assert session.scalars(select(MediaSlot)).first() is None


def test_each_slot_has_its_own_key_and_the_local_form_target_is_closed(
    client: TestClient, user: UserCall
) -> None:
    first, second = _slot(user, filename="a.png"), _slot(user, filename="a.png")
    assert first["fields"]["key"] != second["fields"]["key"]
    assert first["mediaUrl"] != second["mediaUrl"]
    local = client.post(
        f"/user/media/store/{first['id']}",
        data={"token": "x"},
        files={"file": ("a.png", b"\x89PNG")},
    )
    assert local.status_code == 500 and local.json()["code"] == "slot_not_found"


def test_a_bucket_that_cannot_sign_is_a_clear_error(
    client: TestClient, user: UserCall, settings: Settings, db: Database
) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    ctx.settings = settings.model_copy(
        update={"media_s3_region": "", "media_s3_endpoint_url": "not a url"}
    )
    answer = user("media/upload", {"filename": "a.png"})
    assert answer.status_code == 500, answer.text
    assert answer.json()["code"] == "storage_unavailable"
    with db.transaction() as session:
        assert session.scalars(select(MediaSlot)).first() is None
