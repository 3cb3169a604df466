"""Issue 17 on /3.0: SMS opt-ins (17.5) and scheduling entries with their status (17.6)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.callbacks.conftest import ANSWERS, Account

DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def test_optins_list_and_one(
    api: Callable[..., Any],
    account: Account,
    client: TestClient,
    make_account: Callable[..., Account],
) -> None:
    r = api(
        "POST", "/callback", data={"fc_number": ANSWERS, "fc_option": account.option, "fc_sms": "1"}
    )
    assert r.status_code == 200, r.text
    call_sid = r.json()["data"]["sid"]
    r = api("POST", "/callback", data={"fc_number": "79161234568", "fc_option": account.option})
    assert r.status_code == 200, r.text  # no opt-in: not listed

    r = api("GET", "/optins.json")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["head"] == {"status": 200, "message": "SMS opt-ins listed."}
    (optin,) = body["data"]["optins"]
    assert DATE.match(optin.pop("date"))
    assert optin == {
        "sid": "SO" + call_sid[2:],
        "number": ANSWERS,
        "option_sid": account.option,
        "profile_sid": account.profile,
        "callback_sid": call_sid,
        "status": "active",
    }
    for path in (f"/optin/{optin['sid']}", f"/optin/{optin['sid']}.json"):
        r = api("GET", path)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["head"] == {"status": 200, "message": "SMS opt-in found."}
        assert {k: v for k, v in got["data"].items() if k != "date"} == optin

    # A range that ends before today lists none; a cancelled call-back's opt-in ended.
    r = api("GET", "/optins", params={"start_date": "2020-01-01", "end_date": "2020-01-02"})
    assert r.status_code == 200 and r.json()["data"]["optins"] == []
    assert api("POST", f"/callback/{call_sid}/cancel").status_code == 200
    assert api("GET", f"/optin/{optin['sid']}").json()["data"]["status"] == "ended"

    # Another account's opt-in is not found, as an unknown one.
    other = make_account("Other", "admin@other.test")
    r = client.get(f"/3.0/optin/{optin['sid']}", headers=other.basic)
    assert r.status_code == 500
    assert r.json() == {
        "head": {"status": 500, "message": f"SMS opt-in {optin['sid']} not found."},
        "data": None,
    }
    assert client.get("/3.0/optins", headers=other.basic).json()["data"]["optins"] == []


def test_scheduling_entries_carry_status(
    api: Callable[..., Any], admin: Callable[..., Any], account: Account
) -> None:
    # Windows stored without a status are active (and say so).
    entries: list[dict[str, Any]] = [
        {"day_of_week": [0, 1], "start_time": ["09:00"], "end_time": ["17:00"]},
        {"status": "inactive", "day_of_week": [5], "start_time": ["10:00"], "end_time": ["12:00"]},
    ]
    r = admin("PATCH", f"/profiles/{account.profile}", json={"entries": entries})
    assert r.status_code == 200, r.text
    r = api("GET", f"/profile/{account.profile}/scheduling.json")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["entries"] == [
        {"status": "active", "day_of_week": [0, 1], "start_time": ["09:00"], "end_time": ["17:00"]},
        {"status": "inactive", "day_of_week": [5], "start_time": ["10:00"], "end_time": ["12:00"]},
    ]
