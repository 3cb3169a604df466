"""`/user/channels/connections`: the organization's connections grouped by seed 004
designation, with the ids other methods reference; and the designation rules themselves
(names, `notify+vk`, connection ids checked against the caller)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnirelay.connections import designations
from omnirelay.db import Database
from omnirelay.errors import InvalidInput, NotFound
from tests.conftest import Org
from tests.platform.conftest import UserCall


def _groups(user: UserCall, org: Org | None = None) -> dict[str, Any]:
    answer = user("channels/connections", as_org=org)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["result"] == "success"
    return dict(body["data"])


def _admin_ids(client: TestClient, org: Org) -> dict[str, int]:
    items = client.get("/api/connections", headers=org.headers()).json()["items"]
    return {item["channel"]: item["id"] for item in items}


def test_a_new_organization_sees_its_sandbox_connections_in_the_seeds_order(
    client: TestClient, org: Org, user: UserCall
) -> None:
    ids = _admin_ids(client, org)
    data = _groups(user)
    assert list(data) == ["vk", "telegram", "viber", "sms"]  # the seed's order of channels
    assert data["sms"] == [{"id": ids["sms"], "name": "Sandbox sms", "active": True}]
    assert data["vk"][0]["id"] == ids["vk"] and data["telegram"][0]["id"] == ids["telegram"]
    assert data["viber"][0]["id"] == ids["viber"]


def test_whatsapp_devices_are_whatsapp_and_on_the_cloud_api_whatsapp_business(
    client: TestClient, org: Org, user: UserCall
) -> None:
    admin = org.headers()
    account = client.post("/api/gateway/account-token", headers=admin).json()["token"]
    for number in ("6281234567001", "6281234567002"):
        added = client.post(
            "/add-device",
            data={"name": f"Shop {number[-1]}", "device": number},
            headers={"Authorization": account},
        ).json()
        assert added["status"] is True, added
    devices = client.get("/api/gateway/devices", headers=admin).json()["items"]
    cloud = {"phone_number_id": "1234567890", "access_token": "EAAG-test"}
    moved = client.put(
        f"/api/gateway/devices/{devices[1]['id']}/driver",
        json={"provider": "whatsapp_cloud", "settings": cloud},
        headers=admin,
    )
    assert moved.status_code == 200, moved.text
    wa = {
        c["id"]: c
        for c in client.get("/api/connections", headers=admin).json()["items"]
        if c["channel"] == "whatsapp"
    }
    data = _groups(user)
    assert list(data) == ["vk", "telegram", "whatsapp-business", "whatsapp", "viber", "sms"]
    (business,) = data["whatsapp-business"]
    (web,) = data["whatsapp"]
    assert wa[business["id"]]["provider"] == "whatsapp_cloud"
    assert wa[web["id"]]["provider"] == "wa_sandbox"
    assert {business["id"], web["id"]} == set(wa)


def test_deleted_connections_go_inactive_ones_stay_marked_and_nothing_of_another_org(
    client: TestClient, org: Org, make_org: Callable[..., Org], user: UserCall
) -> None:
    other = make_org("Other", "admin@other.test")
    ids = _admin_ids(client, org)
    admin = org.headers()
    assert client.delete(f"/api/connections/{ids['telegram']}", headers=admin).status_code == 204
    off = {"active": False}
    patched = client.patch(f"/api/connections/{ids['viber']}", json=off, headers=admin)
    assert patched.status_code == 200, patched.text
    extra = client.post(
        "/api/connections",
        json={"channel": "sms", "name": "Second SMS", "senders": ["SHOP"]},
        headers=admin,
    ).json()

    data = _groups(user)
    assert "telegram" not in data
    assert data["viber"] == [{"id": ids["viber"], "name": "Sandbox viber", "active": False}]
    assert [c["id"] for c in data["sms"]] == [ids["sms"], extra["id"]]  # by id
    theirs = _groups(user, other)
    mine = {c["id"] for group in data.values() for c in group}
    assert mine.isdisjoint(c["id"] for group in theirs.values() for c in group)


def test_errors_are_in_the_surfaces_shape(client: TestClient) -> None:
    answer = client.post("/user/channels/connections")
    assert answer.status_code == 500
    assert answer.json()["result"] == "error" and answer.json()["code"] == "missing_token"
    answer = client.get("/user/channels/connections")
    assert answer.status_code == 405 and answer.json()["code"] == "method_not_allowed"


# --- the rules other methods use (`channels: [{name, connections}]`) -------------------


def test_names_and_cascades_parse_and_unknown_names_are_refused() -> None:
    assert [d.name for d in designations.parse("notify+vk")] == ["notify", "vk"]
    assert [d.name for d in designations.parse("sms+sms")] == ["sms"]
    assert designations.get("whatsapp-business").contact_field == "phone"
    assert designations.get("vk").contact_field == "vkId"
    assert designations.get("webchat").contact_field == "id"
    assert len(designations.NAMES) == 11
    with pytest.raises(InvalidInput) as refused:
        designations.parse("notify+telegraph")
    assert refused.value.code == "invalid_channel"


def test_connection_ids_are_checked_against_the_caller_and_the_channel(
    db: Database, client: TestClient, org: Org, make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    ids = _admin_ids(client, org)
    theirs = _admin_ids(client, other)
    with db.transaction() as session:
        cascade = designations.parse("sms+vk")
        rows = designations.resolve(session, org.id, cascade, [ids["vk"], ids["sms"], ids["vk"]])
        assert [r.id for r in rows] == [ids["vk"], ids["sms"]]
        with pytest.raises(NotFound) as foreign:
            designations.resolve(session, org.id, cascade, [theirs["sms"]])
        with pytest.raises(NotFound) as unknown:
            designations.resolve(session, org.id, cascade, [10**9])
        # Another organization's id reads exactly like an id that does not exist.
        assert foreign.value.code == unknown.value.code == "connection_not_found"
        with pytest.raises(InvalidInput) as mismatch:
            designations.resolve(session, org.id, designations.parse("sms"), [ids["viber"]])
        assert mismatch.value.code == "connection_channel_mismatch"
