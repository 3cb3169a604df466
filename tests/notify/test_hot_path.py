"""The /v3 hot path (surfaces/notify/hot.py) and the API token cache (tenancy/cache.py):
the single sends answered before FastAPI's routing, with the same wire as the routes."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Database, utcnow
from omnirelay.messaging.models import Message
from omnirelay.tenancy import service as tenancy
from omnirelay.tenancy.cache import ApiTokenCache
from omnirelay.tenancy.models import ApiToken
from tests.conftest import Org
from tests.notify.conftest import DELIVERED

SMS = {"sender": "SANDBOX", "phone": DELIVERED, "text": "Hello"}


def count(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("sendSMS", SMS),
        ("sendViber", {"sender": "SANDBOX", "phone": DELIVERED, "text": "Hi"}),
        (
            "send",
            {"route": [{"channel": "sms", "sender": "SANDBOX", "phone": DELIVERED, "text": "x"}]},
        ),
        ("sendSimple", {"phone": DELIVERED, "text": "Hi"}),
    ],
)
def test_a_send_answers_its_id_and_status_accepted(
    client: TestClient, org: Org, db: Database, path: str, body: dict[str, Any]
) -> None:
    answer = client.post(f"/v3/message/{path}", json=body, headers=org.token)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["result"] == "success" and data["status"] == "accepted"
    assert answer.headers["content-type"] == "application/json"
    with db.read() as session:
        row = session.get(Message, data["id"])
        assert row is not None and row.organization_id == org.id and row.status == "accepted"


def test_the_idempotency_key_case_keeps_the_same_answer(client: TestClient, org: Org) -> None:
    headers = {**org.token, "Idempotency-Key": "k-1"}
    first = client.post("/v3/message/sendSMS", json=SMS, headers=headers)
    again = client.post("/v3/message/sendSMS", json=SMS, headers=headers)
    assert first.json() == again.json()
    assert first.json()["status"] == "accepted"
    assert again.headers["Idempotent-Replayed"] == "true"


def test_sendmixed_answers_one_status_per_element(client: TestClient, org: Org) -> None:
    route = [{"channel": "sms", "sender": "SANDBOX", "phone": DELIVERED, "text": "x"}]
    bad = [{"channel": "sms", "sender": "SANDBOX", "phone": "12", "text": "x"}]
    answer = client.post(
        "/v3/message/sendMixed", json=[{"route": route}, {"route": bad}], headers=org.token
    ).json()
    assert answer["status"] == ["accepted", "rejected"]
    assert answer["id"][0] is not None and answer["id"][1] is None


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "No params"),
        (b"{not json", "No params"),
        (b"[" * 2000 + b"]" * 2000, "No params"),  # nesting deeper than the decoder takes
        (b'{"sender": "SANDBOX", "phone": "79161234567", "text": "\\udc80x"}', "No params"),
        (b"\xff\xfe", "No params"),
    ],
)
def test_hostile_bodies_get_the_seeds_refusal(
    client: TestClient, org: Org, db: Database, raw: bytes, expected: str
) -> None:
    answer = client.post(
        "/v3/message/sendSMS",
        content=raw,
        headers={**org.token, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json() == {"result": "error", "desc": expected}
    assert count(db) == 0


def test_a_nul_anywhere_is_refused(client: TestClient, org: Org, db: Database) -> None:
    body = {**SMS, "text": "a\u0000b"}
    answer = client.post("/v3/message/sendSMS", json=body, headers=org.token)
    assert answer.status_code == 400 and answer.json()["code"] == 1021
    answer = client.post("/v3/message/sendSMS?x=%00", json=SMS, headers=org.token)
    assert answer.status_code == 400 and answer.json()["code"] == 1021
    assert count(db) == 0


MAX_BODY = 64 * 1024  # the limit these tests set (OMNIRELAY_MAX_BODY_BYTES)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_bytes": MAX_BODY})


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    client: TestClient, org: Org, db: Database
) -> None:
    big = {**SMS, "text": "x" * (MAX_BODY + 1)}
    answer = client.post("/v3/message/sendSMS", json=big, headers=org.token)
    assert answer.status_code == 413
    assert answer.json()["result"] == "error"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield b'{"sender": "SANDBOX", "phone": "79161234567", "text": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    answer = client.post("/v3/message/sendSMS", content=chunks(), headers=org.token)
    assert answer.status_code == 413
    assert count(db) == 0


def test_an_anonymous_body_is_not_read(client: TestClient, db: Database) -> None:
    # Refused on its headers: an unauthenticated client cannot make the server read
    # (or hold in memory) a body: too large by its Content-Length, or not authenticated.
    big = {**SMS, "text": "x" * (MAX_BODY * 4)}
    assert client.post("/v3/message/sendSMS", json=big).status_code == 413
    answer = client.post("/v3/message/sendSMS", json=SMS)
    assert answer.status_code == 401
    assert answer.json() == {
        "result": "error",
        "desc": "Authorization error: Authorization header with 'Token <key>' is missing",
        "code": 1003,
    }
    answer = client.post("/v3/message/sendSMS", json=SMS, headers={"Authorization": "Token nope"})
    assert (
        answer.status_code == 401 and answer.json()["desc"] == "Authorization error: Invalid token"
    )


def test_a_regenerated_token_stops_working_at_once(
    client: TestClient, org: Org, db: Database
) -> None:
    assert client.post("/v3/message/sendSMS", json=SMS, headers=org.token).status_code == 200
    with db.transaction() as session:
        new = tenancy.regenerate_api_token(session, org.id)
    old = client.post("/v3/message/sendSMS", json=SMS, headers=org.token)
    assert old.status_code == 401
    fresh = client.post("/v3/message/sendSMS", json=SMS, headers={"Authorization": f"Token {new}"})
    assert fresh.status_code == 200
    # The FastAPI routes use the same cache (here: /v3/balance).
    assert client.post("/v3/balance", json={}, headers=org.token).status_code == 401


def test_another_process_revoking_a_token_is_seen_within_the_cache_time(
    db: Database, org: Org
) -> None:
    now = [100.0]
    cache = ApiTokenCache(db, ttl=1.0, clock=lambda: now[0])
    header = org.token["Authorization"]
    assert cache.organization(header) == org.id
    assert cache.organization(header) == org.id
    assert cache.reads == 1  # the second answer came from memory
    # Another process revokes it: a plain UPDATE, this process is not told.
    with db.transaction() as session:
        session.execute(update(ApiToken).values(revoked_at=utcnow()))
    now[0] += 0.5
    assert cache.organization(header) == org.id  # still trusted, within the second
    now[0] += 0.6
    with pytest.raises(Exception, match="Invalid token"):
        cache.organization(header)
    assert cache.reads == 2


def test_refusals_are_cached_and_the_cache_is_bounded(db: Database, org: Org) -> None:
    cache = ApiTokenCache(db, ttl=60.0, max_entries=3)
    for _ in range(5):
        with pytest.raises(Exception, match="Invalid token"):
            cache.organization("Token bad")
    assert cache.reads == 1
    for i in range(10):
        with pytest.raises(Exception, match="Invalid token"):
            cache.organization(f"Token bad-{i}")
    assert len(cache._entries) <= 3


# --- over a real socket: uvicorn as `omnirelay serve` runs it ---------------------------


@pytest.fixture
def server(db: Database, settings: Settings) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        create_app(settings, db=db), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_a_refused_body_leaves_the_keep_alive_connection_usable(server: int, org: Org) -> None:
    body = json.dumps(SMS).encode()
    request = (
        b"POST /v3/message/sendSMS HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: {org.token['Authorization']}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    deep = b"[" * 5000
    hostile = (
        b"POST /v3/message/sendSMS HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: {org.token['Authorization']}\r\n".encode()
        + f"Content-Length: {len(deep)}\r\n\r\n".encode()
        + deep
    )
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        first = _exchange(sock, request)
        refused = _exchange(sock, hostile)  # the same keep-alive connection
        second = _exchange(sock, request)
    for answer in (first, second):
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"\r\ncontent-type: application/json\r\n" in answer.lower()
        assert b'"status":"accepted"' in answer
    assert refused.startswith(b"HTTP/1.1 400") and b"No params" in refused
