"""Issue 17 on /api: seed 000's workspace rule on every project-scoped method (17.10) and
the block list methods behind 1013/1019 (17.12)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from omnirelay.db import Database
from omnirelay.tenancy import service as tenancy
from tests.conftest import Org

# Methods that are not project-scoped: they check the caller themselves (identity,
# organizations, users, the subscription), or are the API's own documents.
NOT_PROJECT = re.compile(r"^/(me|organizations?|users|subscription)(/|$)")


@pytest.fixture
def workspace_token(db: Database, org: Org) -> str:
    with db.transaction() as session:
        return tenancy.create_workspace(session, "Partner", [org.id]).token


def _project_routes(client: TestClient) -> list[tuple[str, str]]:
    paths = client.get("/api/openapi.json").json()["paths"]
    out: list[tuple[str, str]] = []
    for path, operations in paths.items():
        if NOT_PROJECT.match(path):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        out.extend((method.upper(), concrete) for method in sorted(operations))
    return out


def test_workspace_token_without_impersonation_is_refused_on_every_project_method(
    client: TestClient, org: Org, workspace_token: str
) -> None:
    headers = org.headers(token=workspace_token)
    routes = _project_routes(client)
    assert ("GET", "/messages") in routes and ("POST", "/blocklist/phones") in routes
    assert len(routes) > 30
    for method, path in routes:
        r = client.request(method, f"/api{path}", headers=headers, json={})
        assert r.status_code == 403, (method, path, r.text)
        body = r.json()
        assert body["statusCode"] == 403 and body["code"] == "impersonation_required", body

    # The case, exactly: GET /api/messages answered 200 with an empty list.
    r = client.get("/api/messages", headers=headers)
    assert r.status_code == 403
    # Impersonating an API-created admin opens them.
    r = client.post(
        "/api/users",
        headers=org.headers(),
        json={"email": "ext@acme.test", "name": "Ext", "externalId": "ext-1", "role": "admin"},
    )
    assert r.status_code == 201, r.text
    r = client.get("/api/messages", headers={**headers, "impersonatedUserExternalId": "ext-1"})
    assert r.status_code == 200, r.text


def test_blocklist_methods(client: TestClient, org: Org, make_org: Callable[..., Org]) -> None:
    h = org.headers()
    r = client.post(
        "/api/blocklist/phones",
        headers=h,
        json={"phones": ["+7 916 123-45-67", "89161234567", "79031234567"], "reason": "asked"},
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["phone"] for i in items] == ["79161234567", "79031234567"]
    assert items[0]["reason"] == "asked"
    # Adding again answers the entries that are there.
    again = client.post("/api/blocklist/phones", headers=h, json={"phones": ["79161234567"]})
    assert again.json()["items"][0]["id"] == items[0]["id"]
    listed = client.get("/api/blocklist/phones", headers=h).json()
    assert listed["total"] == 2 and [i["phone"] for i in listed["items"]] == [
        "79161234567",
        "79031234567",
    ]

    r = client.post("/api/blocklist/phones", headers=h, json={"phones": ["12"]})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "phones[0]", r.text
    r = client.post("/api/blocklist/ips", headers=h, json={"networks": ["300.1.1.1"]})
    assert r.status_code == 400, r.text
    r = client.post(
        "/api/blocklist/ips", headers=h, json={"networks": ["203.0.113.7", "2001:db8::/32"]}
    )
    assert [i["network"] for i in r.json()["items"]] == ["203.0.113.7/32", "2001:db8::/32"]

    # Another organization sees and removes none of them.
    other = make_org("Other", "admin@other.test")
    assert client.get("/api/blocklist/phones", headers=other.headers()).json()["total"] == 0
    r = client.delete(f"/api/blocklist/phones/{items[0]['id']}", headers=other.headers())
    assert r.status_code == 404
    assert client.delete(f"/api/blocklist/phones/{items[0]['id']}", headers=h).status_code == 204
    assert client.get("/api/blocklist/phones", headers=h).json()["total"] == 1
