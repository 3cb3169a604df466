"""The hot path of `/user/notifications/send` (surfaces/platform/hot.py) answers as the
route does: the same success, the same refusals word for word (those it hands on to the
route with the body replayed), the rate limit counted once per request, nothing written
by a refusal."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import omnirelay.tasks  # noqa: F401  (the notification reporter)
from omnirelay.contacts.models import Contact
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from tests.conftest import Org

PATH = "/user/notifications/send"
GOOD = {"phone": "79161234567", "message": {"text": "Hello"}, "channels": [{"name": "sms"}]}


def _count(db: Database, model: Any) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_send_answers_result_and_id_with_the_rate_limit_headers(
    client: TestClient, org: Org, db: Database
) -> None:
    r = client.post(PATH, json=GOOD, headers=org.token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"] == "success" and set(body) == {"result", "id"}
    assert "X-RateLimit-Remaining" in r.headers
    with db.read() as session:
        message = session.get(Message, body["id"])
        assert message is not None and message.organization_id == org.id
        assert message.method == "notification"


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (b'{"phone": "79161234567"}', "missing_field", "message"),
        (b'{"phone": "79161234567", "message": {"text": ""}}', "invalid_field", "message.text"),
        (b"[1, 2]", "invalid_body", None),
        (b'{"phone": "79161234567", "message": ', "invalid_json", None),
        (b"", "invalid_body", None),
        (
            b'{"phone": "79161234567", "message": {"text": "a\\u0000b"}}',
            "validation_error",
            None,
        ),
        (
            b'{"phone": "79161234567", "message": {"text": "Hi"}, "channels": [{"name": "fax"}]}',
            None,
            None,
        ),
        (b'{"message": {"text": "Hi"}}', None, None),  # neither phone nor contactId
    ],
)
def test_bad_bodies_get_the_routes_refusal_and_write_nothing(
    client: TestClient, org: Org, db: Database, raw: bytes, code: str | None, field: str | None
) -> None:
    headers = {**org.token, "Content-Type": "application/json"}
    r = client.post(PATH, content=raw, headers=headers)
    assert r.status_code == 500, r.text
    body = r.json()
    assert body["result"] == "error" and body["desc"]
    if code is not None:
        assert body["code"] == code
    if field is not None:
        assert body["field"] == field
    assert _count(db, Message) == 0 and _count(db, Contact) == 0


def test_a_stranger_is_refused_and_nothing_is_written(client: TestClient, db: Database) -> None:
    for headers in ({}, {"Authorization": "Token nope"}):
        r = client.post(PATH, json=GOOD, headers=headers)
        assert r.status_code in (401, 500), r.text
        assert r.json()["result"] == "error"
    assert _count(db, Message) == 0 and _count(db, Contact) == 0


def test_another_content_type_is_the_routes_answer(client: TestClient, org: Org) -> None:
    r = client.post(
        PATH, content=b"phone=79161234567", headers={**org.token, "Content-Type": "text/plain"}
    )
    assert r.status_code == 500 and r.json()["result"] == "error"


def test_each_request_counts_once_against_the_rate_limit(client: TestClient, org: Org) -> None:
    """Hot (answered there) or handed on (an invalid body): one unit each."""
    seen = []
    for body in (GOOD, {"phone": "79161234567"}, GOOD, {"phone": "79161234567"}):
        r = client.post(PATH, json=body, headers=org.token)
        seen.append(int(r.headers["X-RateLimit-Remaining"]))
    assert seen == [seen[0] - i for i in range(4)]


def test_other_methods_go_to_the_route(client: TestClient, org: Org) -> None:
    r = client.get(PATH, headers=org.token)
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
