"""Users, tenant isolation, validation errors of the admin API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Org


def test_create_list_get_change_role(client: TestClient, org: Org) -> None:
    r = client.post(
        "/api/users",
        headers=org.headers(),
        json={"email": "m@acme.test", "name": "M", "externalId": "m-1"},
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["role"] == "member" and user["createdVia"] == "api"
    page = client.get("/api/users?limit=1&offset=1", headers=org.headers()).json()
    assert page["total"] == 2 and page["limit"] == 1 and len(page["items"]) == 1
    assert page["items"][0]["id"] == user["id"]
    got = client.get(f"/api/users/{user['id']}", headers=org.headers()).json()
    assert got["externalId"] == "m-1"
    r = client.patch(f"/api/users/{user['id']}", headers=org.headers(), json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"


def test_duplicate_email_and_external_id(client: TestClient, org: Org) -> None:
    body = {"email": "m@acme.test", "name": "M", "externalId": "m-1"}
    assert client.post("/api/users", headers=org.headers(), json=body).status_code == 201
    r = client.post("/api/users", headers=org.headers(), json=body)
    assert r.status_code == 409 and r.json()["code"] == "email_taken"
    r = client.post("/api/users", headers=org.headers(), json={**body, "email": "x@acme.test"})
    assert r.status_code == 409 and r.json()["code"] == "external_id_taken"
    assert client.get("/api/users", headers=org.headers()).json()["total"] == 2


def test_last_admin_is_kept(client: TestClient, org: Org) -> None:
    r = client.patch(f"/api/users/{org.admin_id}", headers=org.headers(), json={"role": "member"})
    assert r.status_code == 409 and r.json()["code"] == "last_admin"
    r = client.post(f"/api/users/{org.admin_id}/deactivate", headers=org.headers())
    assert r.status_code == 409
    assert client.get("/api/me", headers=org.headers()).json()["role"] == "admin"


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "name": "M"}, "email"),
        ({"email": "m@acme.test", "name": ""}, "name"),
        ({"email": "m@acme.test", "name": "M", "role": "owner"}, "role"),
        ({"email": "m@acme.test", "name": "M", "externalId": ""}, "externalId"),
        ({"email": "m@acme.test", "name": "M", "surprise": 1}, "surprise"),
        ({"name": "M"}, "email"),
    ],
)
def test_validation_errors_name_the_field(
    client: TestClient, org: Org, body: dict[str, object], field: str
) -> None:
    r = client.post("/api/users", headers=org.headers(), json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["code"] == "validation_error" and err["statusCode"] == 400
    assert field in [e["field"] for e in err["errors"]]
    assert client.get("/api/users", headers=org.headers()).json()["total"] == 1


def test_malformed_json(client: TestClient, org: Org) -> None:
    headers = {**org.headers(), "Content-Type": "application/json"}
    r = client.post("/api/users", headers=headers, content=b"{not json")
    assert r.status_code == 400 and r.json()["code"] == "validation_error"


def test_bad_query_parameters(client: TestClient, org: Org) -> None:
    r = client.get("/api/users?limit=0", headers=org.headers())
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "limit"
    r = client.post("/api/subscription/keys/tertiary/regenerate", headers=org.headers())
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "slot"


def test_unknown_path_uses_the_error_shape(client: TestClient) -> None:
    r = client.get("/api/nope")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_member_cannot_administer(client: TestClient, org: Org) -> None:
    r = client.post(
        "/api/users",
        headers=org.headers(),
        json={"email": "m@acme.test", "name": "M", "externalId": "m"},
    )
    member_id = r.json()["id"]
    token = client.post(f"/api/users/{member_id}/access-token", headers=org.headers()).json()[
        "token"
    ]
    member = org.headers(token=token)
    assert client.get("/api/users", headers=member).status_code == 200  # read is allowed
    assert client.get(f"/api/users/{member_id}/access-token", headers=member).status_code == 200
    for method, path in [
        ("post", "/api/subscription/keys/primary/regenerate"),
        ("get", "/api/subscription"),
        ("post", f"/api/users/{org.admin_id}/deactivate"),
        ("get", f"/api/users/{org.admin_id}/access-token"),
        ("post", f"/api/users/{org.admin_id}/access-token/regenerate"),
    ]:
        r = client.request(method, path, headers=member)
        assert r.status_code == 403 and r.json()["code"] == "admin_required", path


def test_tenant_isolation_on_every_user_id(
    client: TestClient, org: Org, make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    victim = client.post(
        "/api/users",
        headers=other.headers(),
        json={"email": "v@other.test", "name": "V", "externalId": "v"},
    ).json()["id"]
    for method, path, body in [
        ("get", f"/api/users/{victim}", None),
        ("patch", f"/api/users/{victim}", {"role": "admin"}),
        ("post", f"/api/users/{victim}/deactivate", None),
        ("post", f"/api/users/{victim}/access-token", None),
        ("get", f"/api/users/{victim}/access-token", None),
        ("post", f"/api/users/{victim}/access-token/regenerate", None),
        ("get", f"/api/users/{other.admin_id}", None),
    ]:
        r = client.request(method, path, headers=org.headers(), json=body)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["code"] == "user_not_found"
    # nothing changed on the other side
    got = client.get(f"/api/users/{victim}", headers=other.headers()).json()
    assert got["role"] == "member" and got["isActive"] is True
    r = client.get(f"/api/users/{victim}/access-token", headers=other.headers())
    assert r.status_code == 404 and r.json()["code"] == "token_not_found"
    assert [u["id"] for u in client.get("/api/users", headers=org.headers()).json()["items"]] == [
        org.admin_id
    ]
