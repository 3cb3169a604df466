"""The seed 000 auth matrix through HTTP: keys, tokens, impersonation, workspace tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from omnirelay.db import Database
from omnirelay.tenancy import service as tenancy
from tests.conftest import Org


def _error(resp: object, status: int, code: str) -> dict[str, object]:
    r = resp  # httpx.Response
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    body: dict[str, object] = r.json()  # type: ignore[attr-defined]
    assert body["statusCode"] == status
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def _api_user(client: TestClient, org: Org, external_id: str, role: str = "member") -> str:
    r = client.post(
        "/api/users",
        headers=org.headers(),
        json={
            "email": f"{external_id}@acme.test",
            "name": external_id,
            "role": role,
            "externalId": external_id,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _token_for(client: TestClient, org: Org, user_id: str) -> str:
    r = client.post(f"/api/users/{user_id}/access-token", headers=org.headers())
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_me_with_both_headers(client: TestClient, org: Org) -> None:
    r = client.get("/api/me", headers=org.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["organization"]["id"] == org.id
    assert body["user"]["id"] == org.admin_id
    assert body["role"] == "admin"
    assert body["impersonated"] is False
    assert body["externalId"] is None


def test_no_headers(client: TestClient) -> None:
    _error(client.get("/api/me"), 401, "missing_subscription_key")


def test_only_subscription_key(client: TestClient, org: Org) -> None:
    headers = {"Ocp-Apim-Subscription-Key": org.subscription_keys["primary"]}
    _error(client.get("/api/me", headers=headers), 401, "missing_access_token")


def test_only_access_token(client: TestClient, org: Org) -> None:
    headers = {"Authorization": org.access_token}
    _error(client.get("/api/me", headers=headers), 401, "missing_subscription_key")


def test_wrong_subscription_key(client: TestClient, org: Org) -> None:
    _error(
        client.get("/api/me", headers=org.headers(key="0" * 32)), 401, "invalid_subscription_key"
    )


def test_wrong_access_token(client: TestClient, org: Org) -> None:
    _error(
        client.get("/api/me", headers=org.headers(token="ora_nope")), 401, "invalid_access_token"
    )


def test_bearer_scheme_is_accepted(client: TestClient, org: Org) -> None:
    r = client.get("/api/me", headers=org.headers(token=f"Bearer {org.access_token}"))
    assert r.status_code == 200


def test_secondary_key_works(client: TestClient, org: Org) -> None:
    r = client.get("/api/me", headers=org.headers(key=org.subscription_keys["secondary"]))
    assert r.status_code == 200


def test_regenerated_primary_key_refused_secondary_untouched(client: TestClient, org: Org) -> None:
    r = client.post("/api/subscription/keys/primary/regenerate", headers=org.headers())
    assert r.status_code == 200, r.text
    new_primary = r.json()["key"]
    assert new_primary != org.subscription_keys["primary"]
    _error(client.get("/api/me", headers=org.headers()), 401, "invalid_subscription_key")
    secondary = org.headers(key=org.subscription_keys["secondary"])
    assert client.get("/api/me", headers=secondary).status_code == 200
    assert client.get("/api/me", headers=org.headers(key=new_primary)).status_code == 200
    info = client.get("/api/subscription", headers=secondary).json()
    assert {k["slot"] for k in info["keys"]} == {"primary", "secondary"}
    assert all(new_primary not in str(k) for k in info["keys"])  # never shown again


def test_token_of_another_organization(
    client: TestClient, org: Org, make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    headers = org.headers(token=other.access_token)
    _error(client.get("/api/me", headers=headers), 401, "token_organization_mismatch")


def test_regenerated_access_token_replaces_old(client: TestClient, org: Org) -> None:
    r = client.post(f"/api/users/{org.admin_id}/access-token/regenerate", headers=org.headers())
    assert r.status_code == 200, r.text
    new = r.json()["token"]
    _error(client.get("/api/me", headers=org.headers()), 401, "invalid_access_token")
    assert client.get("/api/me", headers=org.headers(token=new)).status_code == 200


def test_one_token_per_user_and_view_shows_no_secret(client: TestClient, org: Org) -> None:
    user_id = _api_user(client, org, "ext-1")
    token = _token_for(client, org, user_id)
    r = client.post(f"/api/users/{user_id}/access-token", headers=org.headers())
    _error(r, 409, "token_exists")
    view = client.get(f"/api/users/{user_id}/access-token", headers=org.headers())
    assert view.status_code == 200
    assert view.json()["tokenPrefix"] == token[:8]
    assert token not in view.text


def test_a_token_shows_when_it_was_last_used(client: TestClient, org: Org) -> None:
    user_id = _api_user(client, org, "ext-1")
    token = _token_for(client, org, user_id)

    def last_used() -> str | None:
        view = client.get(f"/api/users/{user_id}/access-token", headers=org.headers())
        assert view.status_code == 200
        value: str | None = view.json()["lastUsedAt"]
        return value

    assert last_used() is None  # issued, never used
    assert client.get("/api/me", headers=org.headers(token=token)).status_code == 200
    first = last_used()
    assert first is not None
    assert client.get("/api/me", headers=org.headers(token=token)).status_code == 200
    assert last_used() == first  # within a minute: not written again


def test_deactivated_user_token_refused(client: TestClient, org: Org) -> None:
    user_id = _api_user(client, org, "ext-1")
    token = _token_for(client, org, user_id)
    assert client.get("/api/me", headers=org.headers(token=token)).status_code == 200
    r = client.post(f"/api/users/{user_id}/deactivate", headers=org.headers())
    assert r.status_code == 200 and r.json()["isActive"] is False
    _error(client.get("/api/me", headers=org.headers(token=token)), 401, "user_deactivated")


# --- impersonation: the four restrictions of seed 000 -------------------------------


def test_admin_impersonates_api_created_user(client: TestClient, org: Org) -> None:
    user_id = _api_user(client, org, "ext-member")
    headers = {**org.headers(), "impersonatedUserExternalId": "ext-member"}
    body = client.get("/api/me", headers=headers).json()
    assert body["user"]["id"] == user_id
    assert body["externalId"] == "ext-member"
    assert body["role"] == "member"
    assert body["impersonated"] is True
    assert body["impersonatorUserId"] == org.admin_id


def test_impersonation_limited_to_same_organization(
    client: TestClient, org: Org, make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    _api_user(client, other, "ext-other")
    headers = {**org.headers(), "impersonatedUserExternalId": "ext-other"}
    _error(client.get("/api/me", headers=headers), 403, "impersonated_user_not_found")


def test_only_admin_may_impersonate(client: TestClient, org: Org) -> None:
    member_id = _api_user(client, org, "ext-member")
    _api_user(client, org, "ext-other")
    token = _token_for(client, org, member_id)
    headers = {**org.headers(token=token), "impersonatedUserExternalId": "ext-other"}
    _error(client.get("/api/me", headers=headers), 403, "impersonation_not_allowed")


def test_only_api_created_users_can_be_impersonated(
    client: TestClient, org: Org, db: Database
) -> None:
    # A user made outside the API has no externalId, so no header value can name it.
    with db.transaction() as session:
        user = tenancy.create_organization(
            session, "Tmp", admin_email="x@tmp.test", created_via="cli"
        ).admin
        assert user is not None and user.external_id is None
    for value in (org.admin_id, "admin@acme.test"):
        headers = {**org.headers(), "impersonatedUserExternalId": value}
        _error(client.get("/api/me", headers=headers), 403, "impersonated_user_not_found")
    # and externalId cannot be added later: PATCH takes only the role
    r = client.patch(
        f"/api/users/{org.admin_id}", headers=org.headers(), json={"externalId": "late"}
    )
    _error(r, 400, "validation_error")


def test_impersonated_users_permissions_apply(client: TestClient, org: Org) -> None:
    _api_user(client, org, "ext-member")
    headers = {**org.headers(), "impersonatedUserExternalId": "ext-member"}
    r = client.post(
        "/api/users", headers=headers, json={"email": "n@acme.test", "name": "N", "role": "member"}
    )
    _error(r, 403, "admin_required")
    # the impersonator alone could do it
    r = client.post(
        "/api/users",
        headers=org.headers(),
        json={"email": "n@acme.test", "name": "N", "role": "member"},
    )
    assert r.status_code == 201


def test_empty_impersonation_header(client: TestClient, org: Org) -> None:
    headers = {**org.headers(), "impersonatedUserExternalId": "  "}
    body = _error(client.get("/api/me", headers=headers), 400, "invalid_impersonation_header")
    assert body["errors"] == [{"field": "impersonatedUserExternalId", "message": body["message"]}]


def test_deactivated_user_cannot_be_impersonated(client: TestClient, org: Org) -> None:
    user_id = _api_user(client, org, "ext-gone")
    client.post(f"/api/users/{user_id}/deactivate", headers=org.headers())
    headers = {**org.headers(), "impersonatedUserExternalId": "ext-gone"}
    _error(client.get("/api/me", headers=headers), 403, "impersonated_user_deactivated")


# --- workspace tokens ----------------------------------------------------------------


@pytest.fixture
def workspace_token(db: Database, org: Org) -> str:
    with db.transaction() as session:
        return tenancy.create_workspace(session, "Partner", [org.id]).token


def test_workspace_token_requires_impersonation_on_project_calls(
    client: TestClient, org: Org, workspace_token: str
) -> None:
    headers = org.headers(token=workspace_token)
    _error(client.get("/api/users", headers=headers), 403, "impersonation_required")
    _error(client.get("/api/organization", headers=headers), 403, "impersonation_required")
    _api_user(client, org, "ext-admin", role="admin")
    headers["impersonatedUserExternalId"] = "ext-admin"
    r = client.get("/api/users", headers=headers)
    assert r.status_code == 200
    me = client.get("/api/me", headers=headers).json()
    assert me["externalId"] == "ext-admin" and me["workspaceId"]


def test_workspace_token_outside_its_organizations(
    client: TestClient, org: Org, workspace_token: str, make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    headers = other.headers(token=workspace_token)
    _error(client.get("/api/me", headers=headers), 403, "organization_not_in_workspace")


def test_only_workspace_token_creates_organizations(
    client: TestClient, org: Org, workspace_token: str
) -> None:
    body = {
        "name": "Branch",
        "admin": {"email": "boss@branch.test", "name": "Boss", "externalId": "boss"},
    }
    _error(
        client.post("/api/organizations", headers=org.headers(), json=body),
        403,
        "workspace_token_required",
    )
    r = client.post("/api/organizations", headers=org.headers(token=workspace_token), json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    new_key = created["subscriptionKeys"]["primary"]
    assert created["admin"]["externalId"] == "boss"
    # The new organization joins the workspace and is reachable with its own key.
    headers = {
        "Ocp-Apim-Subscription-Key": new_key,
        "Authorization": workspace_token,
        "impersonatedUserExternalId": "boss",
    }
    me = client.get("/api/me", headers=headers).json()
    assert me["organization"]["id"] == created["organization"]["id"]
    assert me["role"] == "admin"
    listed = client.get("/api/organizations", headers=org.headers(token=workspace_token)).json()
    assert {o["name"] for o in listed["items"]} == {"Acme", "Branch"}
