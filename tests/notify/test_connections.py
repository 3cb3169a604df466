"""Channel connections through the admin API (`/api/connections`) and what they do to a
/v3 send: which connection a message takes, and the seed's errors when there is none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnirelay.channels import base as channel_base
from omnirelay.channels.base import Outbound, SendResult
from omnirelay.connections.models import ChannelConnection
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from tests.conftest import Org
from tests.notify.conftest import DELIVERED

SANDBOX_SENDERS = {"sms": ["SANDBOX"], "viber": ["SANDBOX"], "vk": ["1"], "telegram": ["SANDBOX"]}
FIELDS = {
    "id",
    "session",
    "channel",
    "provider",
    "name",
    "settings",
    "senders",
    "active",
    "templates_only",
    "created_at",
    "updated_at",
}


# --- helpers ------------------------------------------------------------------------


def _list(client: TestClient, org: Org, query: str = "") -> list[dict[str, Any]]:
    r = client.get(f"/api/connections{query}", headers=org.headers())
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _sandbox(client: TestClient, org: Org, channel: str) -> dict[str, Any]:
    (row,) = [c for c in _list(client, org) if c["channel"] == channel]
    return row


def _error(r: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["statusCode"] == status and body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


def _send_error(r: Any, number: int, desc: str) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    body: dict[str, Any] = r.json()
    assert body["result"] == "error" and body["code"] == number and body["desc"] == desc, body
    return body


def _sms(v3: Callable[..., Any], sender: str = "SANDBOX", text: str = "hi") -> Any:
    return v3("message/sendSMS", {"sender": sender, "phone": DELIVERED, "text": text})


def _message_count(db: Database, org: Org) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Message).where(Message.organization_id == org.id)
            )
            or 0
        )


def _stored(db: Database, connection_id: int) -> ChannelConnection:
    with db.transaction() as session:
        row = session.get(ChannelConnection, connection_id)
        assert row is not None
        session.expunge(row)
        return row


def _member_headers(client: TestClient, org: Org) -> dict[str, str]:
    r = client.post("/api/users", headers=org.headers(), json={"email": "m@acme.test", "name": "M"})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "member"
    r = client.post(f"/api/users/{r.json()['id']}/access-token", headers=org.headers())
    assert r.status_code == 201, r.text
    return org.headers(token=r.json()["token"])


# --- the admin API ------------------------------------------------------------------


def test_new_organization_has_four_sandbox_connections(client: TestClient, org: Org) -> None:
    items = _list(client, org)
    assert [c["channel"] for c in items] == ["sms", "viber", "vk", "telegram"]
    for c in items:
        assert set(c) == FIELDS
        assert c["provider"] == "sandbox"
        assert c["senders"] == SANDBOX_SENDERS[c["channel"]]
        assert c["active"] is True and c["templates_only"] is False
    (vk,) = _list(client, org, "?channel=vk")
    assert vk["senders"] == ["1"]
    assert _list(client, org, "?channel=fax") == []


def test_create_echoes_fields_and_get_and_list_show_it(client: TestClient, org: Org) -> None:
    body = {
        "channel": "sms",
        "provider": "sandbox",
        "name": "Second SMS",
        "settings": {"report_delay": 5, "outcome": "delivered"},
        "senders": ["ACME", " ACME ", "INFO"],
        "active": True,
        "templates_only": True,
    }
    r = client.post("/api/connections", headers=org.headers(), json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == FIELDS
    assert isinstance(created["id"], int)
    assert created["channel"] == "sms" and created["provider"] == "sandbox"
    assert created["name"] == "Second SMS"
    # The sandbox fills its defaults in; senders are trimmed and kept once each.
    assert created["settings"] == {
        "report_delay": 5.0,
        "read_delay": 2.0,
        "reply_delay": 3.0,
        "outcome": "delivered",
    }
    assert created["senders"] == ["ACME", "INFO"]
    assert created["active"] is True and created["templates_only"] is True

    items = _list(client, org)
    assert len(items) == 5
    assert items[-1] == created
    assert next(c["id"] for c in items if c["channel"] == "sms") != created["id"]
    r = client.get(f"/api/connections/{created['id']}", headers=org.headers())
    assert r.status_code == 200 and r.json() == created
    assert [c["id"] for c in _list(client, org, "?channel=sms")][-1] == created["id"]


def test_create_defaults(client: TestClient, org: Org) -> None:
    r = client.post(
        "/api/connections", headers=org.headers(), json={"channel": "telegram", "name": "TG"}
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["provider"] == "sandbox"
    assert created["senders"] == [] and created["active"] is True
    assert created["templates_only"] is False


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"channel": "fax", "name": "x"}, "invalid_channel", "channel"),
        ({"channel": "sms", "provider": "nope", "name": "x"}, "invalid_provider", "provider"),
        ({"channel": "sms", "name": "x", "settings": {"x": 1}}, "invalid_settings", "settings"),
        ({"channel": "vk", "name": "x", "senders": ["acme"]}, "invalid_sender", "senders"),
        ({"channel": "sms", "name": "x", "senders": [" "]}, "invalid_sender", "senders"),
        ({"channel": "sms"}, "validation_error", "name"),
        ({"name": "x"}, "validation_error", "channel"),
        ({"channel": "sms", "name": ""}, "validation_error", "name"),
        ({"channel": "sms", "name": "x", "surprise": 1}, "validation_error", "surprise"),
    ],
)
def test_create_refuses_bad_input_naming_the_field(
    client: TestClient, org: Org, body: dict[str, Any], code: str, field: str
) -> None:
    _error(client.post("/api/connections", headers=org.headers(), json=body), 400, code, field)
    assert len(_list(client, org)) == 4


def test_patch_name_senders_active_templates_only(client: TestClient, org: Org) -> None:
    sms = _sandbox(client, org, "sms")
    r = client.patch(
        f"/api/connections/{sms['id']}",
        headers=org.headers(),
        json={"name": "Main SMS", "senders": ["SANDBOX", "ACME"], "templates_only": True},
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["name"] == "Main SMS"
    assert changed["senders"] == ["SANDBOX", "ACME"]
    assert changed["templates_only"] is True
    assert changed["active"] is True  # not sent, so not changed
    assert changed["settings"] == sms["settings"]

    r = client.patch(f"/api/connections/{sms['id']}", headers=org.headers(), json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    got = client.get(f"/api/connections/{sms['id']}", headers=org.headers()).json()
    assert got["name"] == "Main SMS" and got["senders"] == ["SANDBOX", "ACME"]
    assert got["active"] is False and got["templates_only"] is True


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"settings": {"colour": "red"}}, "invalid_settings", "settings"),
        ({"settings": {"report_delay": -1}}, "invalid_settings", "settings"),
        ({"settings": {"read_delay": "soon"}}, "invalid_settings", "settings"),
        ({"settings": {"outcome": "exploded"}}, "invalid_settings", "settings"),
        ({"senders": [""]}, "invalid_sender", "senders"),
        ({"name": ""}, "validation_error", "name"),
        ({"active": "maybe"}, "validation_error", "active"),
        ({"channel": "viber"}, "validation_error", "channel"),
    ],
)
def test_patch_refuses_bad_input_and_keeps_the_row(
    client: TestClient, org: Org, body: dict[str, Any], code: str, field: str
) -> None:
    sms = _sandbox(client, org, "sms")
    r = client.patch(f"/api/connections/{sms['id']}", headers=org.headers(), json=body)
    _error(r, 400, code, field)
    assert client.get(f"/api/connections/{sms['id']}", headers=org.headers()).json() == sms


def test_patch_settings_unknown_sandbox_setting_is_named(client: TestClient, org: Org) -> None:
    sms = _sandbox(client, org, "sms")
    r = client.patch(
        f"/api/connections/{sms['id']}", headers=org.headers(), json={"settings": {"colour": 1}}
    )
    assert "colour" in _error(r, 400, "invalid_settings", "settings")["message"]
    r = client.patch(
        f"/api/connections/{sms['id']}",
        headers=org.headers(),
        json={"settings": {"report_delay": 7}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["report_delay"] == 7.0


def test_delete_then_not_found_and_gone_from_the_list(client: TestClient, org: Org) -> None:
    viber = _sandbox(client, org, "viber")
    r = client.delete(f"/api/connections/{viber['id']}", headers=org.headers())
    assert r.status_code == 204 and r.content == b""
    url = f"/api/connections/{viber['id']}"
    _error(client.get(url, headers=org.headers()), 404, "connection_not_found")
    r = client.patch(url, headers=org.headers(), json={"name": "x"})
    _error(r, 404, "connection_not_found")
    _error(client.delete(url, headers=org.headers()), 404, "connection_not_found")
    assert [c["channel"] for c in _list(client, org)] == ["sms", "vk", "telegram"]
    assert _list(client, org, "?channel=viber") == []


def test_unknown_id_is_not_found(client: TestClient, org: Org) -> None:
    r = client.get("/api/connections/999999", headers=org.headers())
    _error(r, 404, "connection_not_found")
    r = client.get("/api/connections/abc", headers=org.headers())
    _error(r, 400, "validation_error", "connection_id")


def test_member_can_read_but_not_change(client: TestClient, org: Org) -> None:
    member = _member_headers(client, org)
    sms = _sandbox(client, org, "sms")
    r = client.get("/api/connections", headers=member)
    assert r.status_code == 200 and len(r.json()["items"]) == 4
    assert client.get(f"/api/connections/{sms['id']}", headers=member).status_code == 200

    body = {"channel": "sms", "name": "Mine", "senders": ["MINE"]}
    _error(client.post("/api/connections", headers=member, json=body), 403, "admin_required")
    url = f"/api/connections/{sms['id']}"
    r = client.patch(url, headers=member, json={"active": False})
    _error(r, 403, "admin_required")
    _error(client.delete(url, headers=member), 403, "admin_required")
    assert _sandbox(client, org, "sms") == sms
    assert len(_list(client, org)) == 4


def test_another_organizations_connection_is_not_found(
    client: TestClient, org: Org, make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    theirs = _sandbox(client, other, "sms")
    url = f"/api/connections/{theirs['id']}"
    _error(client.get(url, headers=org.headers()), 404, "connection_not_found")
    r = client.patch(url, headers=org.headers(), json={"name": "Stolen", "active": False})
    _error(r, 404, "connection_not_found")
    _error(client.delete(url, headers=org.headers()), 404, "connection_not_found")
    assert theirs["id"] not in [c["id"] for c in _list(client, org)]
    # Theirs is untouched.
    assert client.get(url, headers=other.headers()).json() == theirs
    assert len(_list(client, other)) == 4


# --- secrets ------------------------------------------------------------------------


class _SecretProvider:
    """A provider whose settings hold a password (the sandbox has no secrets)."""

    name = "test-secret"
    channels: tuple[str, ...] = ("sms",)

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = set(settings) - {"login", "password"}
        if unknown:
            raise ValueError(f"unknown setting {sorted(unknown)[0]!r}")
        return dict(settings)

    def send(self, message: Outbound) -> SendResult:  # pragma: no cover - never dispatched
        raise AssertionError("not sent in these tests")


@pytest.fixture
def secret_provider(monkeypatch: pytest.MonkeyPatch) -> str:
    assert channel_base.get_adapter("sandbox") is not None  # load the registry first
    monkeypatch.setitem(channel_base._registry, _SecretProvider.name, _SecretProvider())
    return _SecretProvider.name


def test_secrets_are_masked_and_round_trip(
    client: TestClient, org: Org, db: Database, secret_provider: str
) -> None:
    r = client.post(
        "/api/connections",
        headers=org.headers(),
        json={
            "channel": "sms",
            "provider": secret_provider,
            "name": "Real SMS",
            "settings": {"login": "acme", "password": "s3cret"},
            "senders": ["ACME"],
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["settings"] == {"login": "acme", "password": "***"}
    assert "s3cret" not in r.text
    url = f"/api/connections/{created['id']}"
    got = client.get(url, headers=org.headers())
    assert got.json()["settings"] == {"login": "acme", "password": "***"}
    listed = client.get("/api/connections", headers=org.headers())
    assert "s3cret" not in got.text and "s3cret" not in listed.text
    assert _stored(db, created["id"]).settings == {"login": "acme", "password": "s3cret"}

    # A client sends the object it read back, with a new login: the secret stays.
    r = client.patch(
        url,
        headers=org.headers(),
        json={"name": "Real SMS 2", "settings": {**got.json()["settings"], "login": "acme2"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {"login": "acme2", "password": "***"}
    assert _stored(db, created["id"]).settings == {"login": "acme2", "password": "s3cret"}

    # A new password replaces it, and is masked as well.
    r = client.patch(
        url, headers=org.headers(), json={"settings": {"login": "acme2", "password": "n3w"}}
    )
    assert r.status_code == 200 and r.json()["settings"]["password"] == "***"
    assert "n3w" not in r.text
    assert _stored(db, created["id"]).settings == {"login": "acme2", "password": "n3w"}


# --- sending through connections ----------------------------------------------------


def test_no_sms_connection_is_not_found_channel_settings(
    client: TestClient, org: Org, v3: Callable[..., Any], db: Database
) -> None:
    sms = _sandbox(client, org, "sms")
    assert client.delete(f"/api/connections/{sms['id']}", headers=org.headers()).status_code == 204
    _send_error(_sms(v3), 1016, "Not found channel settings")
    assert _message_count(db, org) == 0
    assert v3("balance").json()["balance"] == "1000.00"
    # The other channels keep working.
    r = v3("message/sendViber", {"sender": "SANDBOX", "phone": DELIVERED, "text": "hi"})
    assert r.status_code == 200, r.text


def test_inactive_connection_is_channel_not_allowed(
    client: TestClient, org: Org, v3: Callable[..., Any], db: Database
) -> None:
    sms = _sandbox(client, org, "sms")
    url = f"/api/connections/{sms['id']}"
    assert client.patch(url, headers=org.headers(), json={"active": False}).status_code == 200
    _send_error(_sms(v3), 1030, "The channel is not allowed")
    _send_error(_sms(v3, sender="ANYONE"), 1030, "The channel is not allowed")
    assert _message_count(db, org) == 0
    assert v3("senders", {"channel": "sms"}).json()["senders"] == {"sms": []}

    assert client.patch(url, headers=org.headers(), json={"active": True}).status_code == 200
    assert _sms(v3).status_code == 200
    assert _message_count(db, org) == 1


def test_telegram_without_connection_and_inactive(
    client: TestClient, org: Org, v3: Callable[..., Any]
) -> None:
    tg = _sandbox(client, org, "telegram")
    url = f"/api/connections/{tg['id']}"
    body = {"phone": DELIVERED, "text": "hi"}
    assert v3("message/sendTelegram", body).status_code == 200
    assert client.patch(url, headers=org.headers(), json={"active": False}).status_code == 200
    _send_error(v3("message/sendTelegram", body), 1030, "The channel is not allowed")
    assert client.delete(url, headers=org.headers()).status_code == 204
    _send_error(v3("message/sendTelegram", body), 1016, "Not found channel settings")


def test_sender_on_no_connection_is_sender_id_error(
    client: TestClient, org: Org, v3: Callable[..., Any], db: Database
) -> None:
    body = _send_error(_sms(v3, sender="NOBODY"), 1011, "Sender ID error")
    assert body["field"] == "sender"
    assert _message_count(db, org) == 0


def test_adding_a_sender_makes_it_usable(
    client: TestClient,
    org: Org,
    v3: Callable[..., Any],
    message: Callable[[str], Message],
) -> None:
    sms = _sandbox(client, org, "sms")
    _send_error(_sms(v3, sender="ACME"), 1011, "Sender ID error")
    r = client.patch(
        f"/api/connections/{sms['id']}",
        headers=org.headers(),
        json={"senders": ["SANDBOX", "ACME"]},
    )
    assert r.status_code == 200, r.text
    r = _sms(v3, sender="ACME")
    assert r.status_code == 200, r.text
    sent = message(r.json()["id"])
    assert sent.route[0]["connection_id"] == sms["id"]
    assert sent.route[0]["sender"] == "ACME"
    assert v3("senders", {"channel": "sms"}).json()["senders"] == {"sms": ["SANDBOX", "ACME"]}

    # Removing it again refuses it again.
    r = client.patch(
        f"/api/connections/{sms['id']}", headers=org.headers(), json={"senders": ["SANDBOX"]}
    )
    assert r.status_code == 200
    _send_error(_sms(v3, sender="ACME"), 1011, "Sender ID error")


def test_a_send_takes_the_connection_of_its_sender(
    client: TestClient,
    org: Org,
    v3: Callable[..., Any],
    message: Callable[[str], Message],
) -> None:
    sandbox = _sandbox(client, org, "sms")
    r = client.post(
        "/api/connections",
        headers=org.headers(),
        json={"channel": "sms", "name": "Second", "senders": ["SECOND"]},
    )
    assert r.status_code == 201, r.text
    second = r.json()

    r = _sms(v3, sender="SECOND")
    assert r.status_code == 200, r.text
    assert message(r.json()["id"]).route[0]["connection_id"] == second["id"]
    r = _sms(v3, sender="SANDBOX")
    assert r.status_code == 200, r.text
    assert message(r.json()["id"]).route[0]["connection_id"] == sandbox["id"]

    # An inactive connection's senders are refused while the channel still has another one.
    url = f"/api/connections/{second['id']}"
    assert client.patch(url, headers=org.headers(), json={"active": False}).status_code == 200
    _send_error(_sms(v3, sender="SECOND"), 1011, "Sender ID error")
    assert _sms(v3, sender="SANDBOX").status_code == 200
    assert v3("senders", {"channel": "sms"}).json()["senders"] == {"sms": ["SANDBOX"]}
