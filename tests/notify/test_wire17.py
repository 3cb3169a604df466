"""Issue 17 on /v3: the exact requests existing client code sends, and the exact answers.
Template shapes (17.3), Telegram senders (17.4), check/phone (17.11), and the error codes
1013, 1019, 1025/1026/1027/1029, 1042, 1051-1053, 1056 (17.12)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnirelay.db import Database
from omnirelay.messaging.models import Message
from tests.conftest import Org
from tests.notify.conftest import DELIVERED

BLOCKED_IP = {"result": "error", "desc": "IP error (request from blacklisted IP)", "code": 1013}
BLOCKED_PHONE = {
    "result": "error",
    "desc": "Tel.number is in the black list",
    "code": 1019,
    "field": "phone",
}
NOT_FOUND = "Message with this ID was not found"


def _messages(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


# --- 17.3 template/show -------------------------------------------------------------


def test_template_show_data_is_the_list_with_a_channel_map(v3: Callable[..., Any]) -> None:
    r = v3(
        "template/create",
        {"name": "Code", "text": "Your code is #CODE#", "channels": ["sms", "viber"]},
    )
    assert r.status_code == 200, r.text
    template_id = r.json()["id"]
    r = v3("template/show")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"] == "success" and isinstance(body["data"], list)
    (shown,) = body["data"]
    created, updated = shown.pop("created"), shown.pop("updated")
    assert created and updated
    assert shown == {
        "id": template_id,
        "name": "Code",
        "text": "Your code is #CODE#",
        "sms": True,
        "viber": True,
        "vk": False,
        "telegram": False,
        "channel": {"sms": True, "viber": True, "vk": False, "telegram": False},
        "group_url": None,
        "status": "new",
        "comment": None,
        "fields": ["CODE"],
    }


# --- 17.4 senders ---------------------------------------------------------------------


def test_senders_all_lists_telegram_and_it_sends(v3: Callable[..., Any]) -> None:
    r = v3("senders", {"channel": "all"})
    assert r.status_code == 200, r.text
    assert r.json()["senders"]["telegram"] == ["SANDBOX"]
    route = [
        {"channel": "telegram", "phone": DELIVERED, "text": "Hi", "sender": "SANDBOX"},
        {"channel": "sms", "phone": DELIVERED, "text": "Hi", "sender": "SANDBOX"},
    ]
    r = v3("message/send", {"route": route})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "success"


# --- 17.11 check/phone ----------------------------------------------------------------


def test_check_phone_russian_numbers_from_the_data(v3: Callable[..., Any]) -> None:
    r = v3("check/phone", {"phones": ["+7 383 212-34-56", "79031234567"]})
    assert r.status_code == 200, r.text
    landline, mobile = r.json()["data"]
    assert landline == {
        "phone_source": "73832123456",
        "phone_number": "+7 (383) 212-34-56",
        "status": "ok",
        "country": "Russia",
        "operator": "",
        "region_id": "383",
        "region_name": "Novosibirsk",
        "region_timezone": 4,
        "timezone": "Asia/Novosibirsk",
    }
    assert mobile["operator"] == "Beeline"
    assert (mobile["region_id"], mobile["region_name"], mobile["region_timezone"]) == (
        "",
        "",
        None,
    )


# --- 17.12 templates: 1042, 1051-1053, 1056 ---------------------------------------------


def test_template_codes(v3: Callable[..., Any]) -> None:
    r = v3("template/create", {"text": "Hello"})
    assert r.status_code == 400
    assert r.json() == {
        "result": "error",
        "desc": "Missed title for the template",
        "code": 1042,
        "field": "name",
    }
    r = v3("template/create", {"name": "T", "text": "Hi", "channels": ["sms", "fax"]})
    assert r.status_code == 400
    assert r.json() == {
        "result": "error",
        "desc": "There was an error verifying fields values: unknown channel 'fax'",
        "code": 1052,
        "field": "channels",
    }
    r = v3("template/create", {"name": ["T"], "text": "Hi"})
    assert r.status_code == 400
    assert r.json() == {
        "result": "error",
        "desc": "Wrong value for this field type",
        "code": 1056,
        "field": "name",
    }
    r = v3("template/change", {"options": {"name": "x"}})
    assert r.status_code == 400
    assert r.json() == {
        "result": "error",
        "desc": "Missed value that is obligatory",
        "code": 1053,
        "field": "id",
    }
    template_id = v3("template/create", {"name": "T", "text": "Hi"}).json()["id"]
    assert v3("template/delete", {"id": template_id}).json() == {"result": "success"}
    r = v3("template/change", {"id": template_id, "options": {"name": "again"}})
    assert r.status_code == 403
    assert r.json() == {
        "result": "error",
        "desc": "You don't have access to the template",
        "code": 1051,
        "field": "id",
    }


# --- 17.12 message/status: 1025, 1026, 1027, 1029 --------------------------------------


def test_message_status_answers_the_report_shape(
    v3: Callable[..., Any],
    drain: Callable[[], int],
    client: TestClient,
    make_org: Callable[..., Org],
) -> None:
    sms = {"sender": "SANDBOX", "phone": DELIVERED, "text": "Hello", "custom_id": "order-1"}
    message_id = v3("message/sendSMS", sms).json()["id"]

    r = v3("message/status", {"id": message_id})
    assert r.status_code == 200, r.text
    accepted = {
        "id": message_id,
        "custom_id": "order-1",
        "status": "accepted",
        "channel": "sms",
        "error": None,
        "code": None,
        "price": r.json()["data"][0]["price"],
        "parts": 1,
    }
    assert r.json() == {"result": "success", "data": [accepted]}

    drain()
    r = v3("message/status", {"custom_id": "order-1"})
    assert r.status_code == 200, r.text
    (report,) = r.json()["data"]
    assert report["status"] == "delivered" and report["id"] == message_id
    assert set(report) == {
        "id",
        "custom_id",
        "status",
        "channel",
        "error",
        "code",
        "price",
        "parts",
    }

    unknown = str(uuid.uuid4())
    r = v3("message/status", {"ids": [message_id, unknown]})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "result": "success",
        "data": [report],
        "errors": [{"id": unknown, "desc": NOT_FOUND, "code": 1029}],
    }

    # Another organization's id is not found, as an unknown one.
    other = make_org("Other", "admin@other.test")
    r = client.post("/v3/message/status", headers=other.token, json={"id": message_id})
    assert r.status_code == 404
    assert r.json() == {"result": "error", "desc": NOT_FOUND, "code": 1029}


def test_message_status_errors(v3: Callable[..., Any]) -> None:
    cases: list[tuple[Any, int, dict[str, Any]]] = [
        (
            {},
            400,
            {
                "result": "error",
                "desc": "There should be at least one sms ID in the request",
                "code": 1027,
            },
        ),
        (
            {"ids": []},
            400,
            {
                "result": "error",
                "desc": "There should be at least one sms ID in the request",
                "code": 1027,
            },
        ),
        (
            {"id": "123"},
            400,
            {"result": "error", "desc": "Wrong sms ID format", "code": 1025, "field": "id"},
        ),
        (
            {"ids": [5]},
            400,
            {"result": "error", "desc": "Wrong sms ID format", "code": 1025, "field": "ids[0]"},
        ),
        (
            {"custom_id": "x" * 201},
            400,
            {
                "result": "error",
                "desc": "Wrong user message ID format",
                "code": 1026,
                "field": "custom_id",
            },
        ),
        ({"id": str(uuid.uuid4())}, 404, {"result": "error", "desc": NOT_FOUND, "code": 1029}),
        ({"custom_id": "never-sent"}, 404, {"result": "error", "desc": NOT_FOUND, "code": 1029}),
    ]
    for body, status, answer in cases:
        r = v3("message/status", body)
        assert (r.status_code, r.json()) == (status, answer), body


# --- 17.12: 1019, a number on the organization's block list ---------------------------


def test_blocked_phone_is_1019_on_every_send_method(
    client: TestClient, org: Org, v3: Callable[..., Any], db: Database
) -> None:
    r = client.post(
        "/api/blocklist/phones", headers=org.headers(), json={"phones": ["+7 (916) 123-45-67"]}
    )
    assert r.status_code == 200, r.text
    (entry,) = r.json()["items"]
    assert entry["phone"] == DELIVERED

    bodies = {
        "sendSMS": {"sender": "SANDBOX", "phone": "89161234567", "text": "Hi"},
        "sendViber": {"sender": "SANDBOX", "phone": DELIVERED, "text": "Hi"},
        "sendVK": {"group": 1, "phone": DELIVERED, "text": "Hi"},
        "sendTelegram": {"phone": DELIVERED, "text": "Hi"},
        "sendSimple": {"phone": DELIVERED, "text": "Hi"},
    }
    for method, body in bodies.items():
        r = v3(f"message/{method}", body)
        assert (r.status_code, r.json()) == (400, BLOCKED_PHONE), method
    # A route with the number in any step is refused.
    route = [
        {"channel": "sms", "phone": "79031234567", "text": "Hi", "sender": "SANDBOX"},
        {"channel": "sms", "phone": DELIVERED, "text": "Hi", "sender": "SANDBOX"},
    ]
    r = v3("message/send", {"route": route})
    assert r.status_code == 400 and r.json()["code"] == 1019, r.text
    # sendMixed: the blocked element alone is refused.
    ok = {"route": [{"channel": "sms", "phone": "79031234567", "text": "Hi", "sender": "SANDBOX"}]}
    bad = {"route": [{"channel": "sms", "phone": DELIVERED, "text": "Hi", "sender": "SANDBOX"}]}
    r = v3("message/sendMixed", [ok, bad])
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["id"][1] is None and answer["id"][0]
    assert answer["errors"] == [
        {"index": 1, "desc": "Tel.number is in the black list", "code": 1019, "field": "phone"}
    ]
    assert _messages(db) == 1

    r = client.delete(f"/api/blocklist/phones/{entry['id']}", headers=org.headers())
    assert r.status_code == 204
    assert v3("message/sendSMS", bodies["sendSMS"]).status_code == 200


# --- 17.12: 1013, a request from an address on the organization's IP block list -----------


def test_blocked_ip_is_1013(client: TestClient, org: Org, make_org: Callable[..., Org]) -> None:
    r = client.post(
        "/api/blocklist/ips", headers=org.headers(), json={"networks": ["203.0.113.0/24"]}
    )
    assert r.status_code == 200, r.text
    (entry,) = r.json()["items"]
    assert entry["network"] == "203.0.113.0/24"

    sms = {"sender": "SANDBOX", "phone": DELIVERED, "text": "Hi"}
    # Clients from other addresses on the same app (the outer client runs its lifespan).
    blocked = TestClient(client.app, client=("203.0.113.7", 40000))
    # The FastAPI-routed sends (an Idempotency-Key, sendMixed) and every other method.
    # The hot path of single sends (surfaces/notify/hot.py) calls ip_blocked itself.
    keyed = {**org.token, "Idempotency-Key": "k-1"}
    r = blocked.post("/v3/message/sendSMS", headers=keyed, json=sms)
    assert (r.status_code, r.json()) == (403, BLOCKED_IP)
    r = blocked.post("/v3/message/sendMixed", headers=org.token, json=[{"route": []}])
    assert (r.status_code, r.json()) == (403, BLOCKED_IP)
    r = blocked.post("/v3/balance", headers=org.token)
    assert (r.status_code, r.json()) == (403, BLOCKED_IP)
    for path in ("sendSMS", "send"):  # the hot path of single sends
        body = sms if path == "sendSMS" else {"route": [{"channel": "sms", **sms}]}
        r = blocked.post(f"/v3/message/{path}", headers=org.token, json=body)
        assert (r.status_code, r.json()) == (403, BLOCKED_IP)
    # Another organization's list is its own.
    other = make_org("Other", "admin@other.test")
    other_keyed = {**other.token, "Idempotency-Key": "k-2"}
    assert blocked.post("/v3/message/sendSMS", headers=other_keyed, json=sms).status_code == 200
    elsewhere = TestClient(client.app, client=("198.51.100.1", 40000))
    assert elsewhere.post("/v3/message/sendSMS", headers=keyed, json=sms).status_code == 200

    r = client.delete(f"/api/blocklist/ips/{entry['id']}", headers=org.headers())
    assert r.status_code == 204
    assert blocked.post("/v3/balance", headers=org.token).status_code == 200
