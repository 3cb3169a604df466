"""Issue 18, items 8 and 9: no open redirect on GET /send; /api refuses unknown fields in
every body."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.db import Database
from omnirelay.gateway.models import GatewayAccount
from tests.conftest import Org
from tests.security.conftest import DeviceRef

EVIL = "https://evil.example/x"


def test_redirect_needs_a_valid_token(client: TestClient) -> None:
    r = client.get(
        "/send",
        params={"token": "nope", "target": "6281234567002", "message": "hi", "redirect": EVIL},
        follow_redirects=False,
    )
    assert r.status_code == 200 and r.json() == {"reason": "token invalid", "status": False}
    r = client.get("/send", params={"redirect": EVIL}, follow_redirects=False)
    assert r.status_code == 200 and "location" not in r.headers


def test_redirect_needs_a_taken_send(client: TestClient, connected: DeviceRef) -> None:
    r = client.get(
        "/send",
        params={"token": connected.token, "target": "", "redirect": EVIL},
        follow_redirects=False,
    )
    assert r.status_code == 200 and r.json()["status"] is False
    assert "location" not in r.headers


@pytest.mark.one_engine
@pytest.mark.parametrize(
    "target",
    ["javascript:alert(1)", "//evil.example/x", "/relative", "ftp://evil.example/x", "https://"],
)
def test_redirect_only_to_absolute_http_urls(
    client: TestClient, connected: DeviceRef, target: str
) -> None:
    r = client.get(
        "/send",
        params={"token": connected.token, "target": "6281234567002", "message": "hi",
                "redirect": target},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] is True
    assert "location" not in r.headers


def test_redirect_after_a_taken_send(client: TestClient, connected: DeviceRef) -> None:
    r = client.get(
        "/send",
        params={"token": connected.token, "target": "6281234567002", "message": "hi",
                "redirect": EVIL},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 302 and r.headers["location"] == EVIL


# --- unknown fields on /api -------------------------------------------------------------


def _otp_number(db: Database, org: Org) -> str | None:
    with db.read() as session:
        row = session.scalars(
            select(GatewayAccount).where(GatewayAccount.organization_id == org.id)
        ).first()
        return row.otp_number if row is not None else None


@pytest.mark.one_engine
@pytest.mark.parametrize("body", ['{"__zz__": 1}', '{"x": NaN}', '{"otp_number": NaN}'])
def test_otp_number_refuses_unknown_fields(
    client: TestClient, org: Org, db: Database, body: str
) -> None:
    headers = {**org.headers(), "Content-Type": "application/json"}
    set_ = client.put(
        "/api/gateway/otp-number", json={"otp_number": "6281234567001"}, headers=headers
    )
    assert set_.status_code == 200, set_.text
    r = client.put("/api/gateway/otp-number", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "validation_error", r.text
    assert _otp_number(db, org) == "6281234567001"  # not cleared


def _schemas(spec: dict[str, Any], ref: str, seen: set[str]) -> list[tuple[str, dict[str, Any]]]:
    name = ref.rsplit("/", 1)[-1]
    if name in seen:
        return []
    seen.add(name)
    schema = spec["components"]["schemas"][name]
    found = [(name, schema)]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            here = [node["$ref"]] if "$ref" in node else []
            return here + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for inner in refs(schema.get("properties", {})):
        found += _schemas(spec, inner, seen)
    return found


def test_every_api_body_model_forbids_unknown_fields(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    checked: list[str] = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            content = op.get("requestBody", {}).get("content", {})
            for media in content.values():
                ref = media["schema"].get("$ref")
                assert ref is not None, (method, path)
                for name, schema in _schemas(spec, ref, set()):
                    assert schema.get("additionalProperties") is False, (method, path, name)
                    checked.append(name)
    assert len(checked) >= 20


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/billing/top-up", {"amount": "1.00", "extra": 1}),
        ("PUT", "/api/billing/prices/sms", {"amount": "0.05", "extra": 1}),
        ("PUT", "/api/gateway/devices/1/driver", {"provider": "wa_sandbox", "extra": 1}),
        ("POST", "/api/templates/x/moderation", {"status": "approved", "extra": 1}),
    ],
)
def test_unknown_fields_refused_before_anything_happens(
    client: TestClient, org: Org, method: str, path: str, body: dict[str, Any]
) -> None:
    r = client.request(method, path, json=body, headers=org.headers())
    assert r.status_code == 400 and r.json()["code"] == "validation_error", r.text
    assert any(e["field"].endswith("extra") for e in r.json()["errors"])
