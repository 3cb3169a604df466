"""Every refusal of POST /3.0/callback: HTTP 500, head status 500, a descriptive message,
and nothing written."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from omnirelay.callbacks.models import Call
from tests.callbacks.conftest import ANSWERS


def n_calls(db) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Call)) or 0)


def refused(r, fragment: str) -> None:
    assert r.status_code == 500, r.text
    head = r.json()["head"]
    assert head["status"] == 500
    assert fragment.lower() in head["message"].lower(), head
    assert r.json()["data"] is None


def local(days: int, hour: int, minute: int = 0, tz: str = "Europe/Moscow") -> str:
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=days)
    return f"{day:%Y-%m-%d} {hour:02d}:{minute:02d}:00"


def test_missing_option_and_number(api, account, db):
    refused(api("POST", "/callback", data={"fc_number": ANSWERS}), "fc_option")
    refused(api("POST", "/callback", data={"fc_option": account.option}), "fc_number")
    assert n_calls(db) == 0


@pytest.mark.one_engine
@pytest.mark.parametrize("number", ["123", "abc", "+7 000"])
def test_bad_number(api, account, db, number):
    refused(api("POST", "/callback", data={"fc_number": number, "fc_option": account.option}),
            "Invalid fc_number")  # fmt: skip
    assert n_calls(db) == 0


def test_unknown_paused_and_closed_options_and_paused_profile(api, admin, account, db):
    base = {"fc_number": ANSWERS}
    refused(
        api("POST", "/callback", data={**base, "fc_option": "OP" + "0" * 32}), "Unknown call option"
    )
    for status in ("paused", "closed"):
        assert (
            admin("PATCH", f"/options/{account.option}", json={"status": status}).status_code == 200
        )
        refused(api("POST", "/callback", data={**base, "fc_option": account.option}), status)
    admin("PATCH", f"/options/{account.option}", json={"status": "active"})
    admin("PATCH", f"/profiles/{account.profile}", json={"status": "paused"})
    refused(api("POST", "/callback", data={**base, "fc_option": account.option}), "paused")
    assert n_calls(db) == 0


def test_questions(api, admin, account, db):
    questions = f"/profiles/{account.profile}/questions"
    num = admin(
        "POST", questions, json={"text": "Order number?", "kind": "number", "required": True}
    ).json()["sid"]
    pick = admin(
        "POST", questions, json={"text": "Topic?", "kind": "choice", "choices": ["billing", "tech"]}
    ).json()["sid"]
    base = {"fc_number": ANSWERS, "fc_option": account.option}
    refused(api("POST", "/callback", data=base), "required question: Order number?")
    refused(
        api("POST", "/callback", data={**base, f"fc_question_{num}": "abc"}), "must be a number"
    )
    answered = {**base, f"fc_question_{num}": "1"}
    refused(
        api("POST", "/callback", data={**answered, f"fc_question_{pick}": "x"}),
        "must be one of: billing, tech",
    )
    refused(
        api("POST", "/callback", data={**answered, "fc_question_QUnope": "x"}),
        "Unknown pre-call question",
    )
    assert n_calls(db) == 0
    ok = api("POST", "/callback.json", json={**base, "answers": {num: "42", pick: "tech"}})
    assert ok.status_code == 200, ok.text
    assert n_calls(db) == 1


def test_sms_opt_in_needs_sms_on_the_profile(api, admin, account, db):
    admin("PATCH", f"/profiles/{account.profile}", json={"sms": False})
    body = {"fc_number": ANSWERS, "fc_option": account.option, "fc_sms": "1"}
    refused(api("POST", "/callback", data=body), "SMS updates are not enabled")
    assert n_calls(db) == 0


def test_start_date_refusals(api, admin, account, db):
    base = {"fc_number": ANSWERS, "fc_option": account.option}
    refused(
        api("POST", "/callback", data={**base, "fc_start_date": "tomorrow"}),
        "Invalid fc_start_date",
    )
    refused(api("POST", "/callback", data={**base, "fc_start_date": local(-1, 12)}), "in the past")
    refused(
        api("POST", "/callback", data={**base, "fc_start_date": local(8, 12)}), "more than 7 days"
    )
    window = {"day_of_week": list(range(7)), "start_time": ["09:00"], "end_time": ["17:00"]}
    admin("PATCH", f"/profiles/{account.profile}", json={"entries": [window]})
    refused(api("POST", "/callback", data={**base, "fc_start_date": local(1, 8, 59)}), "outside")
    refused(api("POST", "/callback", data={**base, "fc_start_date": local(1, 17, 0)}), "outside")
    admin("PATCH", f"/profiles/{account.profile}", json={"scheduling": False})
    refused(api("POST", "/callback", data={**base, "fc_start_date": local(1, 12)}), "not enabled")
    assert n_calls(db) == 0
    admin("PATCH", f"/profiles/{account.profile}", json={"scheduling": True})
    ok = api("POST", "/callback", data={**base, "fc_start_date": local(1, 9, 0)})
    assert ok.status_code == 200, ok.text
    assert ok.json()["head"]["message"] == "Call-back scheduled successfully."
    assert n_calls(db) == 1


# --- found by the fuzz tests (tests/fuzz) ----------------------------------------------


def test_a_form_that_does_not_parse_is_a_refusal(api, account, db):
    # A multipart body without its boundary: starlette's 400 is a seed-003 refusal (500).
    r = api("POST", "/callback", content=b"x", headers={"Content-Type": "multipart/form-data"})
    refused(r, "boundary")
    assert n_calls(db) == 0


def test_nul_characters_are_refused(api, account, db):
    refused(api("POST", "/callback", data={"fc_number": ANSWERS, "fc_option": "OP\x00"}), "NUL")
    refused(api("GET", "/profile/PF%00"), "NUL")
    assert n_calls(db) == 0


def test_null_settings_are_not_given(admin, account):
    # null timezone / telephony / entries were a 500 (the validators took None); a null
    # option status was a NOT NULL violation.
    nulls = {"name": None, "timezone": None, "telephony": None, "entries": None, "sms": None}
    r = admin("PATCH", f"/profiles/{account.profile}", json=nulls)
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["timezone"], r.json()["sms"]) == (
        "Support",
        "Europe/Moscow",
        True,
    )
    r = admin("POST", "/profiles", json=nulls)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Call-back profile"
    r = admin("PATCH", f"/options/{account.option}", json={"destination": "+79160000000"})
    assert r.status_code == 200, r.text
    nulls = {"name": None, "position": None, "status": None, "destination": None}
    r = admin("PATCH", f"/options/{account.option}", json=nulls)
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["status"], r.json()["destination"]) == (
        "Sales",
        "active",
        None,  # destination is the one that may be null: null clears it
    )
