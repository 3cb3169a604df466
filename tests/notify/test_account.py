"""The /v3 account methods (balance, senders, info, check/phone), the token check of /v3,
and bodies that are not a JSON object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnirelay.db import Database
from omnirelay.messaging.models import Message
from tests.conftest import Org
from tests.notify.conftest import DELIVERED

PHONE_FIELDS = {
    "phone_source",
    "phone_number",
    "status",
    "country",
    "operator",
    "region_id",
    "region_name",
    "region_timezone",
}
NO_PARAMS = {"result": "error", "desc": "No params"}
LIMIT = "You've reached max. subscribers per request limit"


# --- helpers ------------------------------------------------------------------------


def _balance(v3: Callable[..., Any]) -> str:
    r = v3("balance")
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "success"
    return str(r.json()["balance"])


def _sms(v3: Callable[..., Any], text: str = "hi") -> Any:
    r = v3("message/sendSMS", {"sender": "SANDBOX", "phone": DELIVERED, "text": text})
    assert r.status_code == 200, r.text
    return r


def _error(r: Any, status: int, number: int | None, desc: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["result"] == "error" and body["desc"] == desc, body
    assert body.get("code") == number, body
    return body


def _check(v3: Callable[..., Any], body: dict[str, Any]) -> list[dict[str, Any]]:
    r = v3("check/phone", body)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "success"
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def _message_count(db: Database, org: Org) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Message).where(Message.organization_id == org.id)
            )
            or 0
        )


# --- balance ------------------------------------------------------------------------


def test_balance_of_a_new_organization(v3: Callable[..., Any]) -> None:
    r = v3("balance")
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "success", "balance": "1000.00", "currency": "EUR"}


def test_balance_without_a_body_or_with_an_empty_object(client: TestClient, org: Org) -> None:
    for content in (b"", b"{}"):
        r = client.post("/v3/balance", headers=org.token, content=content)
        assert r.status_code == 200 and r.json()["balance"] == "1000.00", r.text


def test_top_up_shows_in_the_balance(client: TestClient, org: Org, v3: Callable[..., Any]) -> None:
    r = client.post("/api/billing/top-up", headers=org.headers(), json={"amount": "5.5"})
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == "1005.50" and r.json()["currency"] == "EUR"
    assert v3("balance").json() == {"result": "success", "balance": "1005.50", "currency": "EUR"}
    r = client.post("/api/billing/top-up", headers=org.headers(), json={"amount": "-0.25"})
    assert r.status_code == 200, r.text
    assert _balance(v3) == "1005.25"


def test_one_sms_costs_the_sms_price(
    client: TestClient, v3: Callable[..., Any], org: Org, message: Callable[[str], Message]
) -> None:
    assert client.get("/api/billing", headers=org.headers()).json()["prices"]["sms"] == "0.05"
    sent = message(_sms(v3, "Hello there").json()["id"])
    assert sent.parts == 1
    assert _balance(v3) == "999.95"


@pytest.mark.parametrize(
    ("text", "parts", "balance"),
    [
        ("a" * 160, 1, "999.95"),
        ("a" * 161, 2, "999.90"),
        ("a" * 159 + "€", 2, "999.90"),  # an extension character takes two septets
        ("Ж" * 70, 1, "999.95"),
        ("Ж" * 71, 2, "999.90"),
        ("a" * 307, 3, "999.85"),
    ],
)
def test_sms_is_priced_by_parts(
    v3: Callable[..., Any],
    message: Callable[[str], Message],
    text: str,
    parts: int,
    balance: str,
) -> None:
    sent = message(_sms(v3, text).json()["id"])
    assert sent.parts == parts
    assert _balance(v3) == balance


def test_price_change_applies_to_the_next_send(
    client: TestClient, org: Org, v3: Callable[..., Any]
) -> None:
    r = client.put("/api/billing/prices/sms", headers=org.headers(), json={"amount": "0.1"})
    assert r.status_code == 200, r.text
    assert r.json()["prices"]["sms"] == "0.10"
    _sms(v3)
    assert _balance(v3) == "999.90"
    _sms(v3, "a" * 161)
    assert _balance(v3) == "999.70"
    # Other channels keep their price.
    r = v3("message/sendViber", {"sender": "SANDBOX", "phone": DELIVERED, "text": "hi"})
    assert r.status_code == 200, r.text
    assert _balance(v3) == "999.67"


def test_refused_send_costs_nothing(v3: Callable[..., Any], db: Database, org: Org) -> None:
    r = v3("message/sendSMS", {"sender": "NOBODY", "phone": DELIVERED, "text": "hi"})
    _error(r, 400, 1011, "Sender ID error")
    assert _balance(v3) == "1000.00"
    assert _message_count(db, org) == 0


# --- senders ------------------------------------------------------------------------


def test_senders_of_sms(v3: Callable[..., Any]) -> None:
    r = v3("senders", {"channel": "sms"})
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "success", "senders": {"sms": ["SANDBOX"]}}


def test_senders_of_all_channels(v3: Callable[..., Any]) -> None:
    r = v3("senders", {"channel": "all"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "result": "success",
        "senders": {
            "sms": ["SANDBOX"],
            "viber": ["SANDBOX"],
            "vk": ["1"],
            "telegram": ["SANDBOX"],
        },
    }


@pytest.mark.one_engine
@pytest.mark.parametrize("body", [{}, {"channel": None}, None])
def test_senders_without_channel(v3: Callable[..., Any], body: Any) -> None:
    body_err = _error(v3("senders", body), 400, None, 'No field "channel"')
    assert body_err["field"] == "channel"


@pytest.mark.one_engine
@pytest.mark.parametrize("channel", ["x", "viber", "", 5, ["sms"]])
def test_senders_with_a_wrong_channel(v3: Callable[..., Any], channel: Any) -> None:
    r = v3("senders", {"channel": channel})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["result"] == "error" and body["code"] == 1021 and body["field"] == "channel"


# --- info ---------------------------------------------------------------------------


def test_info_is_the_organization_name(
    client: TestClient, v3: Callable[..., Any], make_org: Callable[..., Org]
) -> None:
    r = v3("info")
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "success", "login": "Acme"}
    other = make_org("Globex", "admin@globex.test")
    r = client.post("/v3/info", headers=other.token)
    assert r.json() == {"result": "success", "login": "Globex"}


# --- check/phone --------------------------------------------------------------------


def test_check_one_phone(v3: Callable[..., Any]) -> None:
    (row,) = _check(v3, {"phone": "79939819173"})
    assert set(row) >= PHONE_FIELDS
    assert row["phone_source"] == "79939819173"
    assert row["phone_number"] == "+7 (993) 981-91-73"
    assert row["status"] == "ok"
    assert row["country"] == "Russia"
    # A mobile range: phonenumbers has no region or single zone for it (docs).
    assert (row["region_id"], row["region_name"], row["region_timezone"]) == ("", "", None)
    for name in ("operator", "region_id", "region_name"):
        assert isinstance(row[name], str)


def test_check_formatted_phone_keeps_only_digits(v3: Callable[..., Any]) -> None:
    (row,) = _check(v3, {"phone": "+7 (993) 981-91-73"})
    assert row["phone_source"] == "79939819173"
    assert row["phone_number"] == "+7 (993) 981-91-73" and row["status"] == "ok"


def test_check_many_phones_in_order(v3: Callable[..., Any]) -> None:
    phones = ["79939819173", "123", "+1 212 555 0123", "not a phone", "89939819173"]
    data = _check(v3, {"phones": phones})
    assert len(data) == 5
    for row in data:
        assert set(row) >= PHONE_FIELDS
    assert [r["status"] for r in data] == ["ok", "invalid", "ok", "invalid", "ok"]
    assert [r["phone_source"] for r in data] == [
        "79939819173",
        "123",
        "12125550123",
        "",
        "89939819173",
    ]
    assert [r["phone_number"] for r in data] == [
        "+7 (993) 981-91-73",
        "",
        "+1 (212) 555-0123",
        "",
        "+7 (993) 981-91-73",
    ]
    assert data[2]["country"] == "United States"
    assert data[1]["country"] == "" and data[1]["operator"] == ""


def test_check_phone_and_phones_together(v3: Callable[..., Any]) -> None:
    data = _check(v3, {"phone": "12125550123", "phones": ["79939819173"]})
    assert [r["phone_source"] for r in data] == ["12125550123", "79939819173"]


def test_check_every_entry_has_every_field(v3: Callable[..., Any]) -> None:
    """Entries that are not strings are invalid numbers, reported in the same shape."""
    data = _check(v3, {"phones": ["79939819173", {"n": 1}, None, 79939819173]})
    assert [r["status"] for r in data] == ["ok", "invalid", "invalid", "ok"]
    for row in data:
        assert set(row) >= PHONE_FIELDS, row


def test_check_up_to_500_phones(v3: Callable[..., Any]) -> None:
    data = _check(v3, {"phones": ["79939819173"] * 500})
    assert len(data) == 500
    r = v3("check/phone", {"phones": ["79939819173"] * 501})
    _error(r, 400, 1020, LIMIT)
    r = v3("check/phone", {"phone": "79939819173", "phones": ["79939819173"] * 500})
    _error(r, 400, 1020, LIMIT)


@pytest.mark.one_engine
@pytest.mark.parametrize("body", [{}, {"phone": ""}, {"phones": []}, None])
def test_check_without_phone(v3: Callable[..., Any], body: Any) -> None:
    _error(v3("check/phone", body), 400, None, 'No field "phone"')


def test_check_phones_not_a_list(v3: Callable[..., Any]) -> None:
    r = v3("check/phone", {"phones": "79939819173"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 1021 and r.json()["field"] == "phones"


# --- authorization ------------------------------------------------------------------


@pytest.mark.one_engine
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer x"},
        {"Authorization": "Token "},
        {"Authorization": "Token 00000000-0000-0000-0000-000000000000"},
        {"Authorization": "ec2e6f63-f100-42fd-813f-9207241ac706"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v3/balance"),
        ("POST", "/v3/message/sendSMS"),
        ("POST", "/v3/senders"),
        ("GET", "/v3/template/show"),
    ],
)
def test_requests_without_a_valid_token_are_refused(
    client: TestClient, org: Org, method: str, path: str, headers: dict[str, str]
) -> None:
    body = {"sender": "SANDBOX", "phone": DELIVERED, "text": "hi", "channel": "sms"}
    r = client.request(method, path, headers=headers, json=body)
    assert r.status_code == 401, r.text
    answer = r.json()
    assert answer["result"] == "error" and answer["code"] == 1003
    assert answer["desc"].startswith("Authorization error")


def test_token_schemes_and_other_credentials(client: TestClient, org: Org) -> None:
    for value in (f"Token {org.api_token}", f"token {org.api_token}"):
        r = client.post("/v3/balance", headers={"Authorization": value})
        assert r.status_code == 200, r.text
    # The admin API's access token is not a /v3 key, nor is a raw key without the scheme.
    for value in (org.access_token, f"Token {org.access_token}", org.api_token):
        r = client.post("/v3/balance", headers={"Authorization": value})
        assert r.status_code == 401 and r.json()["code"] == 1003, value


def test_each_token_sees_its_own_balance(
    client: TestClient, org: Org, v3: Callable[..., Any], make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    r = client.post("/api/billing/top-up", headers=other.headers(), json={"amount": "10"})
    assert r.status_code == 200, r.text

    def theirs() -> str:
        return str(client.post("/v3/balance", headers=other.token).json()["balance"])

    assert theirs() == "1010.00"
    assert _balance(v3) == "1000.00"
    _sms(v3)
    assert _balance(v3) == "999.95"
    assert theirs() == "1010.00"


# --- bodies that are not a JSON object ----------------------------------------------


@pytest.mark.one_engine
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"   ",
        b"not json",
        b'{"sender": "SANDBOX",',
        b"\xff\xfe\x00",
        b"[]",
        b'[{"sender": "SANDBOX", "phone": "79161234567", "text": "hi"}]',
        b"{}",
        b"null",
        b'"hi"',
        b"42",
    ],
)
def test_send_sms_without_an_object_is_no_params(
    client: TestClient, org: Org, db: Database, content: bytes
) -> None:
    headers = {**org.token, "Content-Type": "application/json"}
    r = client.post("/v3/message/sendSMS", headers=headers, content=content)
    assert r.status_code == 400, r.text
    assert r.json() == NO_PARAMS
    assert _message_count(db, org) == 0


def test_form_body_is_no_params(client: TestClient, org: Org) -> None:
    r = client.post(
        "/v3/message/sendSMS",
        headers=org.token,
        data={"sender": "SANDBOX", "phone": DELIVERED, "text": "hi"},
    )
    assert r.status_code == 400 and r.json() == NO_PARAMS


@pytest.mark.one_engine
@pytest.mark.parametrize("path", ["senders", "check/phone", "template/create"])
def test_account_methods_with_an_array_body_are_no_params(
    client: TestClient, org: Org, path: str
) -> None:
    r = client.post(f"/v3/{path}", headers=org.token, json=[{"channel": "sms"}])
    assert r.status_code == 400 and r.json() == NO_PARAMS
