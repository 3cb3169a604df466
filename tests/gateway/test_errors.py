"""Refusals found by the fuzz tests (tests/fuzz): still the seed's shape and HTTP 200."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.gateway.conftest import Account, DeviceRef


def test_a_body_that_does_not_parse_is_a_refusal(client: TestClient, account: Account) -> None:
    # A multipart body without its boundary: starlette's 400 answered HTTP 400.
    headers = {"Authorization": account.token, "Content-Type": "multipart/form-data"}
    r = client.post("/get-devices", headers=headers, content=b"x")
    assert (r.status_code, r.json()) == (200, {"reason": "input invalid", "status": False})
    # A stranger's body is not read at all: the token is refused first.
    r = client.post("/device", headers={**headers, "Authorization": "x"}, content=b"x")
    assert (r.status_code, r.json()) == (200, {"reason": "token invalid", "status": False})


def test_nul_in_any_field_is_input_invalid_on_both_engines(
    client: TestClient, account: Account
) -> None:
    auth = {"Authorization": account.token}
    r = client.post("/add-device", headers=auth, data={"name": "Sh\x00p", "device": "6281234567"})
    assert r.json() == {"reason": "input invalid", "status": False}
    r = client.post("/add-device", headers=auth, json={"name": "Shop", "device": "62812\x0034567"})
    assert r.json() == {"reason": "input invalid", "status": False}
    r = client.get("/send", params={"token": "x", "target": "6281\x00", "message": "m"})
    assert r.json() == {"reason": "input invalid", "status": False}


def test_ids_beyond_32_bits_name_nothing(client: TestClient, connected: DeviceRef) -> None:
    for method in ("/status", "/delete-message"):
        r = client.post(method, headers=connected.auth, data={"id": str(2**40)})
        assert r.json() == {"reason": "message not found", "status": False}
    assert client.post(f"/gateway/cloud/{2**40}/webhook", content=b"{}").json() == {
        "reason": "invalid device",
        "status": False,
    }
