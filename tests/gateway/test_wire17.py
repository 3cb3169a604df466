"""Issue 17 on the gateway: read-only methods by GET (17.7), a delay alone is "in queue"
(17.8), message ids never reused (17.9)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from omnirelay.db import Database
from omnirelay.gateway.models import GatewayMessage
from tests.gateway.conftest import Account, DeviceRef


def test_device_get_devices_and_validate_answer_get(
    client: TestClient, gw: Callable[..., Any], connected: DeviceRef, account: Account
) -> None:
    by_post = gw("/device", connected.token)
    r = client.get("/device", headers=connected.auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == by_post and by_post["status"] is True

    r = client.get("/get-devices", headers={"Authorization": account.token})
    assert r.status_code == 200
    assert r.json() == gw("/get-devices", account.token)
    assert r.json()["devices"] == 1

    query = {"target": "081234567890,6281200000009", "countryCode": "62"}
    r = client.get("/validate", headers=connected.auth, params=query)
    assert r.status_code == 200
    assert r.json() == gw("/validate", connected.token, data=query)

    # The token answers are the POST ones.
    r = client.get("/device", headers={"Authorization": "nope"})
    assert r.json() == {"reason": "token invalid", "status": False}
    r = client.get("/get-devices")
    assert r.json() == {"reason": "unknown user", "status": False}


def test_other_methods_answer_get_with_405(client: TestClient, connected: DeviceRef) -> None:
    for path in ("/disconnect", "/delete-device", "/status", "/add-device", "/update-device"):
        r = client.get(path, headers=connected.auth)
        assert r.status_code == 405, path
        assert r.json() == {"reason": "method not allowed", "status": False}, path


def test_send_with_delay_and_no_schedule_is_in_queue(
    gw: Callable[..., Any], connected: DeviceRef
) -> None:
    body = gw(
        "/send",
        connected.token,
        data={"target": "6281234567890,6281234567891", "message": "Hi", "delay": "2"},
    )
    assert body["status"] is True and body["detail"] == "success! message in queue", body
    body = gw(
        "/send",
        connected.token,
        data={"target": "6281234567892", "message": "Hi", "delay": "1-10"},
    )
    assert body["detail"] == "success! message in queue", body
    # A schedule is still a scheduled send.
    later = str(int(time.time()) + 3600)
    body = gw(
        "/send",
        connected.token,
        data={"target": "6281234567893", "message": "Hi", "delay": "2", "schedule": later},
    )
    assert body["detail"] == "success! message will be sent on scheduled time", body


def test_message_ids_are_never_reused(
    gw: Callable[..., Any], connected: DeviceRef, db: Database
) -> None:
    first = gw("/send", connected.token, data={"target": "6281234567890", "message": "a"})
    (first_id,) = first["id"]
    # The row goes (as a device's rows go with it): its id must not name the next message.
    with db.transaction() as session:
        session.execute(delete(GatewayMessage).where(GatewayMessage.id == int(first_id)))
    second = gw("/send", connected.token, data={"target": "6281234567891", "message": "b"})
    (second_id,) = second["id"]
    assert int(second_id) > int(first_id)
    assert second["requestid"] > first["requestid"]
    with db.read() as session:
        assert session.scalars(select(GatewayMessage.id)).all() == [int(second_id)]


def test_a_target_on_the_phone_block_list_is_refused(
    client: TestClient, gw: Callable[..., Any], connected: DeviceRef, account: Account, db: Database
) -> None:
    r = client.post(
        "/api/blocklist/phones", headers=account.org.headers(), json={"phones": ["6281234567890"]}
    )
    assert r.status_code == 200, r.text
    body = gw("/send", connected.token, data={"target": "081234567890", "message": "Hi"})
    assert body == {"reason": "input invalid", "status": False}
    with db.read() as session:
        assert session.scalars(select(GatewayMessage.id)).all() == []
