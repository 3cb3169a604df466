"""Media storage on local disk through HTTP: a slot, the form POST the seed describes,
the direct link; and every refusal (twice, late, too big, no extension, wrong type,
another slot's token) stores nothing and leaves the slot as it was."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnirelay.config import Settings
from omnirelay.db import Database, utcnow
from omnirelay.housekeeping.tasks import run_once
from omnirelay.media.models import MediaSlot
from omnirelay.media.storage import MAX_SIZE
from tests.conftest import Org
from tests.platform.conftest import UserCall

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4  # binary, NULs too


def _slot(user: UserCall, filename: str = "photo.png", **body: Any) -> dict[str, Any]:
    answer = user("media/upload", {"filename": filename, **body})
    assert answer.status_code == 200, answer.text
    slot = dict(answer.json())
    assert slot["result"] == "success"
    return slot


def _post(
    client: TestClient, slot: dict[str, Any], content: bytes, fields: dict[str, str] | None = None
) -> httpx.Response:
    """As the seed says: every field of `fields`, then the file last, under `file`."""
    form = slot["fields"] if fields is None else fields
    return client.post(slot["url"], data=form, files={"file": ("upload.bin", content)})


def _error(answer: httpx.Response, code: str) -> None:
    assert answer.status_code == 500, answer.text
    body = answer.json()
    assert body["result"] == "error" and body["code"] == code, body
    assert body["desc"]


def _stored(settings: Settings) -> list[Path]:
    root = Path(settings.media_dir) / "storage"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_file_goes_up_through_its_slot_and_comes_back_from_its_link(
    client: TestClient, user: UserCall, settings: Settings
) -> None:
    slot = _slot(user, "photo.png", contentType="image/png")
    assert slot["url"].startswith("http://testserver/user/media/store/")
    assert slot["mediaUrl"].startswith("http://testserver/user/media/files/")
    assert slot["mediaUrl"].endswith("/photo.png")
    assert set(slot["fields"]) == {"Content-Type", "token"}
    assert slot["maxSize"] == MAX_SIZE == 10 * 1024 * 1024
    assert client.get(slot["mediaUrl"]).status_code == 404  # not uploaded yet

    answer = _post(client, slot, PNG)
    assert answer.status_code == 204, answer.text
    got = client.get(slot["mediaUrl"])
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-security-policy"] == "sandbox"
    assert client.head(slot["mediaUrl"]).status_code == 200
    (path,) = _stored(settings)
    # The disk keeps the link's token only as a digest: its folder name is not in the link.
    assert path.parent.name not in slot["mediaUrl"] and path.name == "photo.png"


def test_the_content_type_follows_the_name_when_not_given(
    client: TestClient, user: UserCall
) -> None:
    pdf = _slot(user, "contract.pdf")
    assert pdf["fields"]["Content-Type"] == "application/pdf"
    odd = _slot(user, "notes.qqq")  # an extension nobody lists
    assert odd["fields"]["Content-Type"] == "application/octet-stream"
    custom = _slot(user, "scan.qqq", contentType="image/x-scanner")  # unknown: as given
    assert custom["fields"]["Content-Type"] == "image/x-scanner"
    jpg = _slot(user, "C:\\Users\\me\\me.JPG", contentType="image/jpg")  # alias, path cut
    assert jpg["fields"]["Content-Type"] == "image/jpeg" and jpg["mediaUrl"].endswith("/me.JPG")
    assert _post(client, pdf, b"%PDF-1.4 ...").status_code == 204
    assert client.get(pdf["mediaUrl"]).headers["content-type"] == "application/pdf"


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"filename": "contract"}, "filename_without_extension", "filename"),
        ({"filename": ".bashrc"}, "filename_without_extension", "filename"),
        ({"filename": "archive."}, "filename_without_extension", "filename"),
        ({"filename": "docs/"}, "filename_without_extension", "filename"),
        ({"filename": "/"}, "invalid_filename", "filename"),
        ({"filename": "a\tb.png"}, "invalid_filename", "filename"),
        ({"filename": "a.pdf", "contentType": "image/png"}, "content_type_mismatch", "contentType"),
        ({"filename": "a.png", "contentType": "not a type"}, "invalid_content_type", "contentType"),
        ({"contentType": "image/png"}, "missing_field", "filename"),
    ],
)
def test_a_slot_is_refused_for_a_bad_name_or_type_and_nothing_is_stored(
    user: UserCall, db: Database, body: dict[str, Any], code: str, field: str
) -> None:
    answer = user("media/upload", body)
    _error(answer, code)
    assert answer.json()["field"] == field
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(MediaSlot)) == 0


def test_a_slot_takes_one_file_only(client: TestClient, user: UserCall, settings: Settings) -> None:
    slot = _slot(user)
    assert _post(client, slot, PNG).status_code == 204
    _error(_post(client, slot, b"another picture"), "slot_used")
    assert client.get(slot["mediaUrl"]).content == PNG  # the first file, untouched
    assert len(_stored(settings)) == 1


def test_a_slot_is_valid_for_one_hour(
    client: TestClient, user: UserCall, settings: Settings
) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    slot = _slot(user)
    later = utcnow() + timedelta(hours=1, seconds=1)
    ctx.clock = lambda: later
    _error(_post(client, slot, PNG), "slot_expired")
    assert _stored(settings) == []
    assert client.get(slot["mediaUrl"]).status_code == 404
    ctx.clock = lambda: later - timedelta(seconds=2)  # still inside its hour
    assert _post(client, slot, PNG).status_code == 204


def test_ten_megabytes_go_one_byte_more_is_refused_and_the_slot_stays_usable(
    client: TestClient, user: UserCall, settings: Settings
) -> None:
    slot = _slot(user, "big.bin")
    _error(_post(client, slot, b"\x00" * (MAX_SIZE + 1)), "file_too_large")
    assert _stored(settings) == []  # the partial upload is gone too
    exact = os.urandom(1024) * (MAX_SIZE // 1024)
    assert _post(client, slot, exact).status_code == 204
    assert client.get(slot["mediaUrl"]).content == exact


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    client: TestClient, user: UserCall
) -> None:
    slot = _slot(user)
    # Only the declared length is too big: a refusal for size can only come from the
    # header, before the (tiny) body is parsed at all.
    answer = client.post(
        slot["url"],
        content=b"--b--\r\n",
        headers={
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(MAX_SIZE + 1024 * 1024),
        },
    )
    _error(answer, "file_too_large")


def test_another_slots_token_or_a_changed_type_is_refused(
    client: TestClient,
    user: UserCall,
    make_org: Callable[..., Org],
    settings: Settings,
) -> None:
    mine = _slot(user)
    other = make_org("Other", "admin@other.test")
    theirs = user("media/upload", {"filename": "x.png"}, as_org=other).json()
    # Their fields against my slot (and mine against theirs): no such slot.
    _error(_post(client, mine, PNG, fields=theirs["fields"]), "slot_not_found")
    _error(_post(client, theirs, PNG, fields=mine["fields"]), "slot_not_found")
    _error(_post(client, mine, PNG, fields={"Content-Type": "image/png"}), "slot_not_found")
    changed = {**mine["fields"], "Content-Type": "text/html"}
    _error(_post(client, mine, PNG, fields=changed), "content_type_mismatch")
    unknown = {**mine, "url": mine["url"][:-32] + "0" * 32}
    _error(_post(client, unknown, PNG), "slot_not_found")
    assert _stored(settings) == []
    assert _post(client, mine, PNG).status_code == 204  # all of that left it usable


def test_a_form_without_a_file_or_not_a_form_is_refused(client: TestClient, user: UserCall) -> None:
    slot = _slot(user)
    no_file = client.post(slot["url"], data=slot["fields"], files={"note": (None, b"hello")})
    _error(no_file, "missing_file")
    _error(_post(client, slot, b""), "empty_file")
    _error(client.post(slot["url"], json=slot["fields"]), "invalid_form")
    broken = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"
    answer = client.post(
        slot["url"], content=broken, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    _error(answer, "invalid_form")
    assert _post(client, slot, PNG).status_code == 204


def test_links_that_were_never_made_are_404_in_the_surfaces_shape(client: TestClient) -> None:
    for path in ("short/x.png", "A" * 32 + "/x.png", "A" * 32 + "/%2E%2E", "A" * 32 + "/.."):
        answer = client.get(f"/user/media/files/{path}")
        assert answer.status_code == 404, (path, answer.text)
        body = answer.json()
        assert body["result"] == "error" and body["code"] in ("media_not_found", "not_found")


def test_the_sweep_removes_expired_unused_slots_and_stalled_uploads_only(
    client: TestClient, user: UserCall, db: Database, settings: Settings
) -> None:
    used, unused, fresh = _slot(user), _slot(user), _slot(user)
    assert _post(client, used, PNG).status_code == 204
    with db.transaction() as session:
        for slot in (used, unused):
            row = session.get(MediaSlot, slot["id"])
            assert row is not None
            row.expires_at = utcnow() - timedelta(minutes=1)
    incoming = Path(settings.media_dir) / "storage" / ".incoming"
    stalled, live = incoming / "a.part", incoming / "b.part"
    for path in (stalled, live):
        path.write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(stalled, (old, old))

    swept = run_once(db, settings)
    assert swept.media_slots == 2  # the expired unused slot, and the stalled upload
    with db.transaction() as session:
        left = set(session.scalars(select(MediaSlot.id)))
    assert left == {used["id"], fresh["id"]}
    assert not stalled.exists() and live.exists()
    assert client.get(used["mediaUrl"]).content == PNG
    _error(_post(client, unused, PNG), "slot_not_found")


def test_of_two_uploads_racing_for_one_slot_exactly_one_is_stored(
    client: TestClient, user: UserCall, settings: Settings
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    slot = _slot(user)
    contents = [PNG, PNG[::-1]]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda c: _post(client, slot, c), contents))
    codes = sorted(a.status_code for a in answers)
    assert codes == [204, 500], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 500)
    assert loser.json()["code"] == "slot_used"
    winner = contents[[a.status_code for a in answers].index(204)]
    assert client.get(slot["mediaUrl"]).content == winner
    assert len(_stored(settings)) == 1
