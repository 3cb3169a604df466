"""The /3.0 wire: HTTP Basic, the head/data envelope, the optional .json suffix, form and
JSON bodies, tenant isolation."""

from __future__ import annotations

import base64

import pytest

from tests.callbacks.conftest import ANSWERS

GETS = [
    "/profiles",
    "/profile/{p}",
    "/profile/{p}/options",
    "/profile/{p}/option/{o}",
    "/profile/{p}/option/{o}/schedule",
    "/profile/{p}/questions",
    "/profile/{p}/question/{q}",
    "/profile/{p}/scheduling",
    "/calls",
    "/call/{c}",
    "/callback/{c}/status",
    "/realtime",
    "/pending",
    "/scheduled",
    "/timezones",
]


@pytest.fixture
def ids(account, admin, api):
    q = admin("POST", f"/profiles/{account.profile}/questions", json={"text": "Why?"}).json()
    c = api("POST", "/callback", data={"fc_number": ANSWERS, "fc_option": account.option})
    assert c.status_code == 200, c.text
    return {"p": account.profile, "o": account.option, "q": q["sid"], "c": c.json()["data"]["sid"]}


@pytest.mark.one_engine
@pytest.mark.parametrize("path", GETS)
@pytest.mark.parametrize("suffix", ["", ".json"])
def test_every_read_endpoint_answers_in_the_envelope(api, ids, path, suffix):
    r = api("GET", path.format(**ids) + suffix)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"head", "data"}
    assert body["head"]["status"] == 200 and body["head"]["message"]
    assert body["data"] is not None


@pytest.mark.one_engine
@pytest.mark.parametrize("path", GETS)
def test_every_endpoint_refuses_missing_or_wrong_credentials(client, account, ids, path):
    url = "/3.0" + path.format(**ids)
    wrong = base64.b64encode(f"{account.account_sid}:{'0' * 64}".encode()).decode()
    for headers in ({}, {"Authorization": "Bearer x"}, {"Authorization": f"Basic {wrong}"},
                    {"Authorization": "Basic !!!"}):  # fmt: skip
        r = client.get(url, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["head"]["status"] == 500
        assert r.json()["data"] is None
        assert r.headers["WWW-Authenticate"].startswith("Basic")


def test_credentials_shape(account):
    assert account.account_sid[:2].isupper() and len(account.account_sid) == 34
    int(account.account_sid[2:], 16)
    assert len(account.auth_token) == 64
    int(account.auth_token, 16)


def test_unknown_ids_and_other_organizations_objects_are_not_found(api, ids, make_account, client):
    other = make_account("Other", "admin@other.test")
    for path in ("/profile/{p}", "/profile/{p}/option/{o}", "/call/{c}", "/callback/{c}/status"):
        r = client.get("/3.0" + path.format(**ids), headers=other.basic)
        assert r.status_code == 500, r.text
        assert r.json()["head"]["status"] == 500 and "not found" in r.json()["head"]["message"]
    r = client.post(f"/3.0/callback/{ids['c']}/cancel", headers=other.basic)
    assert r.status_code == 500
    mine = client.get("/3.0/profiles", headers=other.basic).json()["data"]["profiles"]
    assert [p["sid"] for p in mine] == [other.profile]
    # An option of another organization cannot be used to start a call-back either.
    r = client.post("/3.0/callback", data={"fc_number": ANSWERS, "fc_option": ids["o"]},
                    headers=other.basic)  # fmt: skip
    assert r.status_code == 500 and "Unknown call option" in r.json()["head"]["message"]


def test_profile_and_option_fields(api, account, admin):
    admin("POST", f"/profiles/{account.profile}/options", json={"name": "Closed", "position": 2,
          "status": "closed"})  # fmt: skip
    p = api("GET", f"/profile/{account.profile}.json").json()["data"]
    assert p == {
        "sid": account.profile,
        "name": "Support",
        "status": "active",
        "total_options": 2,
        "sms": True,
        "pre_call_questions": True,
        "scheduled_callbacks": True,
        "timezone": "Europe/Moscow",
    }
    options = api("GET", f"/profile/{account.profile}/options").json()["data"]["options"]
    assert [(o["name"], o["order_position"], o["status"]) for o in options] == [
        ("Sales", 1, "active"),
        ("Closed", 2, "closed"),
    ]
    scheduling = api("GET", f"/profile/{account.profile}/scheduling").json()["data"]
    assert set(scheduling) >= {"offer_interval", "max_scheduled", "max_options",
                               "daily_overflow", "profile_sid", "entries"}  # fmt: skip
    assert scheduling["entries"][0]["day_of_week"] == [0, 1, 2, 3, 4, 5, 6]


def test_start_takes_form_and_json_bodies_and_answers_the_status_url(api, account):
    form = api("POST", "/callback", data={"fc_number": ANSWERS, "fc_option": account.option})
    js = api("POST", "/callback.json", json={"fc_number": ANSWERS, "fc_option": account.option})
    for r in (form, js):
        assert r.status_code == 200, r.text
        head, data = r.json()["head"], r.json()["data"]
        assert head == {"status": 200, "message": "Call-back started successfully."}
        assert data["sid"].startswith("CA") and len(data["sid"]) == 34
        assert data["status"] == f"/3.0/call/{data['sid']}/status.json"
        status = api("GET", data["status"].removeprefix("/3.0"))
        assert status.json()["data"]["status"] == "queued"


def test_unknown_method_and_bad_body_answer_in_the_envelope(api):
    r = api("GET", "/nothing.json")
    assert r.status_code == 404 and r.json()["head"]["status"] == 500
    r = api("POST", "/callback", content=b"{oops", headers={"Content-Type": "application/json"})
    assert r.status_code == 500 and r.json()["head"]["status"] == 500


def test_timezones(api):
    zones = api("GET", "/timezones.json").json()["data"]["timezones"]
    assert "Europe/Moscow" in zones and "America/Los_Angeles" in zones


def test_openapi_document(client):
    r = client.get("/3.0/openapi.json")
    assert r.status_code == 200 and "/callback" in r.json()["paths"]
