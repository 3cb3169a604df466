"""Error shapes found by the fuzz tests (tests/fuzz): paths with a newline, NUL characters,
unknown channels. Each is refused in the surface's own shape, and writes nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnirelay.db import Database
from omnirelay.tenancy.models import User
from tests.conftest import Org


def _users(db: Database) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def test_a_newline_in_the_path_reaches_the_surface(client: TestClient, org: Org) -> None:
    # Starlette's mount pattern stopped at a newline: these got a bare {"detail": ...}.
    r = client.get("/api/users/x%0A", headers=org.headers())
    assert r.status_code == 404, r.text
    assert r.json()["statusCode"] == 404 and r.json()["code"] == "user_not_found"
    r = client.post("/v3/x%0Ay", headers=org.token)
    assert (r.status_code, r.json()) == (404, {"result": "error", "desc": "Method not found"})
    r = client.post("/user/x%0Ay", headers=org.token)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = client.get("/3.0/x%0Ay")
    assert r.status_code == 404 and r.json()["head"]["status"] == 500


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "where"),
    [
        ("GET", "/api/users/a%00", {}, "path"),
        ("GET", "/api/messages", {"params": {"custom_id": "a\x00"}}, "query"),
        ("POST", "/api/users", {"json": {"email": "a@b.test", "name": "A\x00"}}, "body"),
        ("POST", "/api/users", {"content": b'{"email": "a@b.test", "name": "A\\u0000"}'}, "body"),
    ],
)
def test_nul_characters_are_refused(
    client: TestClient,
    org: Org,
    db: Database,
    method: str,
    path: str,
    kwargs: dict[str, object],
    where: str,
) -> None:
    # PostgreSQL text cannot hold NUL: this was a 500 there. Refused on every engine.
    before = _users(db)
    headers = {**org.headers(), "Content-Type": "application/json"}
    r = client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["statusCode"], body["code"]) == (400, "validation_error")
    assert f"in the {where}" in body["message"]
    assert _users(db) == before


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client: TestClient, org: Org) -> None:
    body = b'{"email": "b@b.test", "name": "C:\\\\u0000"}'  # the text C:\u0000
    headers = {**org.headers(), "Content-Type": "application/json"}
    r = client.post("/api/users", headers=headers, content=body)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "C:\\u0000"


def test_a_price_is_for_a_known_channel(client: TestClient, org: Org) -> None:
    r = client.put("/api/billing/prices/fax", headers=org.headers(), json={"amount": "0.1"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "validation_error"
    assert r.json()["errors"][0]["field"] == "channel"
    prices = client.get("/api/billing", headers=org.headers()).json()["prices"]
    assert "fax" not in prices


@pytest.mark.parametrize(
    "path",
    [
        f"/api/connections/{2**70}",
        f"/api/users?offset={2**70}",
        f"/api/messages?offset={2**63}",
        f"/api/gateway/devices/{2**31}/scan",  # a 32-bit id in the database
    ],
)
def test_ids_and_offsets_beyond_the_database_are_refused(
    client: TestClient, org: Org, path: str
) -> None:
    # They overflowed the driver (SQLite: 64 bits, PostgreSQL: the column's size): a 500.
    method = "POST" if path.endswith("/scan") else "GET"
    r = client.request(method, path, headers=org.headers())
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "validation_error"
