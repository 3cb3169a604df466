"""Fixtures of the fuzz tests: one organization with every credential and a few real
objects of each kind, so that generated requests get past authentication and, for ids in
paths, past "not found"."""

from __future__ import annotations

import base64
import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnirelay.config import Settings
from tests.conftest import Org

ALL_WEEK = [
    {
        "status": "active",
        "day_of_week": [0, 1, 2, 3, 4, 5, 6],
        "start_time": ["00:00"],
        "end_time": ["23:59"],
    }
]


@dataclass
class World:
    """The organization the fuzzer acts as. Credentials change when the fuzzer rotates
    them (a regenerated subscription key, a new /3.0 auth token), so they live here."""

    org: Org
    account_sid: str
    auth_token: str  # /3.0
    account_token: str = ""  # the gateway's (seed 002)
    device_token: str = ""
    # Values that get a request past "not found" and its like: real ids by kind, a valid
    # phone number, a registered sender, a URL that passes the SSRF guard.
    real: dict[str, Any] = field(default_factory=dict)

    @property
    def basic(self) -> str:
        raw = f"{self.account_sid}:{self.auth_token}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated URLs name random hosts: the SSRF guard must not ask a real resolver about
    them. IP literals still resolve (numerically); any name "does not resolve"."""
    real = socket.getaddrinfo

    def numeric_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "no DNS in the fuzz tests") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The suite's settings (limits no fuzz case should meet), with uploads (gateway
    /send, media storage) kept in the test's own folder."""
    return settings.model_copy(update={"media_dir": str(tmp_path / "media")})


@pytest.fixture
def world(client: TestClient, org: Org) -> World:
    admin = org.headers()

    def api(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        return _ok(client.request(method, f"/api{path}", headers=admin, json=body), status)

    creds = api("POST", "/callbacks/credentials/regenerate")
    w = World(org, creds["account_sid"], creds["auth_token"])
    # The sandbox connections' senders (onboarding), and a public address: nothing is ever
    # sent to it, no worker runs.
    w.real.update(
        phone="79161234567", sender="SANDBOX", group=1, channel="sms", url="https://8.8.8.8/hook"
    )
    # A second user: the fuzzer may deactivate it or rotate its token, never the admin's.
    user = {"email": "target@acme.test", "name": "Target", "externalId": "target"}
    w.real["user"] = api("POST", "/users", user, 201)["id"]
    profile: dict[str, Any] = {"name": "Support", "timezone": "Europe/Moscow"}
    profile |= {"entries": ALL_WEEK, "sms": True, "questions": True, "scheduling": True}
    pf = w.real["profile"] = api("POST", "/callbacks/profiles", profile, 201)["sid"]
    option = {"name": "Sales", "position": 1}
    op = w.real["option"] = api("POST", f"/callbacks/profiles/{pf}/options", option, 201)["sid"]
    question = {"text": "Order number?", "kind": "number"}
    w.real["question"] = api("POST", f"/callbacks/profiles/{pf}/questions", question, 201)["sid"]
    w.real["agent"] = api("POST", f"/callbacks/options/{op}/agents", {"name": "Ann"}, 201)["sid"]
    w.real["connection"] = api("GET", "/connections")["items"][0]["id"]

    sms = {"sender": "SANDBOX", "phone": w.real["phone"], "text": "Hello"}
    w.real["message"] = _ok(client.post("/v3/message/sendSMS", json=sms, headers=org.token))["id"]
    w.real["job"] = api("GET", "/jobs")["items"][0]["id"]  # the message's dispatch
    template = {"name": "Code", "text": "Your code is #VAR#", "channels": ["sms"]}
    created = _ok(client.post("/v3/template/create", json=template, headers=org.token))
    w.real["template"] = created["id"]
    # The same template through /user is a number; a second one in a group of its own.
    v2 = {"text": "Hello #NAME#.", "channels": [{"channel": "telegram"}]}
    w.real["template2"] = _ok(client.post("/user/template2/create", json=v2, headers=org.token))[
        "id"
    ]
    grouped = {"name": "Group", "templates": [w.real["template2"]]}
    made_group = _ok(client.post("/user/template2/group/create", json=grouped, headers=org.token))
    w.real["template_group"] = made_group["id"]
    call = {"fc_number": w.real["phone"], "fc_option": op}
    started = _ok(client.post("/3.0/callback", data=call, headers={"Authorization": w.basic}))
    w.real["call"] = started["data"]["sid"]

    contact = {"phone": "79161234500", "variables": [{"name": "City", "value": "Moscow"}]}
    made = _ok(client.post("/user/contacts/create", json=[contact], headers=org.token))
    w.real["contact"] = made["data"][0]["id"]
    attrs = _ok(client.post("/user/deals/attributes/list", json={}, headers=org.token))["data"]
    w.real["attribute"] = amount = next(a["id"] for a in attrs if a["name"] == "Amount")
    deal = {
        "name": "Order",
        "attributes": [{"id": amount, "value": 10}],
        "contactId": w.real["contact"],
    }
    w.real["deal"] = _ok(client.post("/user/deals/create", json=deal, headers=org.token))["id"]

    w.account_token = api("POST", "/gateway/account-token")["token"]
    device = {"name": "Sales", "device": "6281234567001"}
    added = _ok(client.post("/add-device", data=device, headers={"Authorization": w.account_token}))
    w.device_token = added["token"]
    w.real["device"] = api("GET", "/gateway/devices")["items"][0]["id"]
    # A media upload slot (local disk): its form target gets a real slot and token.
    slot = _ok(client.post("/user/media/upload", json={"filename": "a.png"}, headers=org.token))
    w.real.update(slot=slot["id"], slot_token=slot["fields"]["token"], slot_type="image/png")
    return w
