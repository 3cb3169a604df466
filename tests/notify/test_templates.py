"""Templates of /v3 (create, show, change, delete), their moderation through the admin
API, and connections that take approved templates only."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnirelay.db import Database
from omnirelay.messaging.models import Message
from tests.conftest import Org
from tests.notify.conftest import DELIVERED

NO_TEMPLATE = "The text is not matched existing templates"
WRONG_TYPE = "Wrong value for this field type"
VERIFY = "There was an error verifying fields values"
URL = ": group_url must be an http(s) URL"
MISSING = "Missed value that is obligatory"
SHOWN = {
    "id",
    "name",
    "text",
    "sms",
    "viber",
    "vk",
    "telegram",
    "channel",
    "group_url",
    "status",
    "comment",
    "created",
    "updated",
    "fields",
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


# --- helpers ------------------------------------------------------------------------


def _create(v3: Callable[..., Any], text: str, channels: list[str], **extra: Any) -> str:
    extra.setdefault("name", "Template")
    r = v3("template/create", {"text": text, "channels": channels, **extra})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _show(v3: Callable[..., Any]) -> list[dict[str, Any]]:
    r = v3("template/show")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"] == "success"
    templates: list[dict[str, Any]] = body["data"]
    return templates


def _one(v3: Callable[..., Any], template_id: str) -> dict[str, Any]:
    (row,) = [t for t in _show(v3) if t["id"] == template_id]
    return row


def _error(r: Any, status: int, number: int | None, desc: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["result"] == "error" and body["desc"] == desc, body
    assert body.get("code") == number, body
    return body


def _moderate(
    client: TestClient, org: Org, template_id: str, status: str = "approved", **extra: Any
) -> Any:
    return client.post(
        f"/api/templates/{template_id}/moderation",
        headers=org.headers(),
        json={"status": status, **extra},
    )


def _approve(client: TestClient, org: Org, template_id: str) -> None:
    r = _moderate(client, org, template_id)
    assert r.status_code == 200, r.text


def _templates_only(client: TestClient, org: Org, channel: str = "sms") -> None:
    r = client.get(f"/api/connections?channel={channel}", headers=org.headers())
    (conn,) = r.json()["items"]
    r = client.patch(
        f"/api/connections/{conn['id']}", headers=org.headers(), json={"templates_only": True}
    )
    assert r.status_code == 200 and r.json()["templates_only"] is True, r.text


def _sms(v3: Callable[..., Any], text: str) -> Any:
    return v3("message/sendSMS", {"sender": "SANDBOX", "phone": DELIVERED, "text": text})


def _viber(v3: Callable[..., Any], text: str) -> Any:
    return v3("message/sendViber", {"sender": "SANDBOX", "phone": DELIVERED, "text": text})


def _refused(r: Any) -> None:
    body = _error(r, 400, 1000, NO_TEMPLATE)
    assert body["field"] == "text"


def _message_count(db: Database, org: Org) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Message).where(Message.organization_id == org.id)
            )
            or 0
        )


# --- create -------------------------------------------------------------------------


def test_create_answers_id_and_name(v3: Callable[..., Any]) -> None:
    r = v3(
        "template/create",
        {
            "name": "Code",
            "text": "Your code is #CODE#",
            "channels": ["sms", "viber"],
            "comment": "one-time codes",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"result", "id", "name"}
    assert body["result"] == "success" and body["name"] == "Code"
    assert str(uuid.UUID(body["id"])) == body["id"]


def test_create_without_name_is_1042(v3: Callable[..., Any]) -> None:
    r = v3("template/create", {"text": "Hello #NAME#"})
    assert r.status_code == 400, r.text
    assert r.json() == {
        "result": "error",
        "desc": "Missed title for the template",
        "code": 1042,
        "field": "name",
    }
    assert _show(v3) == []


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("body", "number", "desc", "field"),
    [
        ({"name": "x"}, 1043, "Missed template text", "text"),
        ({"text": "hi"}, 1042, "Missed title for the template", "name"),
        ({"text": "hi", "name": "n" * 201}, 1052, VERIFY + ": name is longer than 200", "name"),
        ({"text": "hi", "name": "n", "group_url": "vk.com"}, 1052, VERIFY + URL, "group_url"),
        ({"text": "hi", "name": "n", "group_url": 5}, 1056, WRONG_TYPE, "group_url"),
        ({"name": "x", "text": ""}, 1043, "Missed template text", None),
        ({"name": "x", "text": "   "}, 1043, "Missed template text", None),
        ({"name": "", "text": "hi"}, 1042, "Missed title for the template", None),
        ({"name": "  ", "text": "hi"}, 1042, "Missed title for the template", None),
        ({"text": "hi", "name": "n", "channels": "sms"}, 1056, WRONG_TYPE, "channels"),
        ({"text": "hi", "name": "n", "channels": {"sms": 1}}, 1056, WRONG_TYPE, "channels"),
        ({"text": "hi", "name": "n", "channels": [1]}, 1056, WRONG_TYPE, "channels"),
        ({"text": "hi", "name": "n", "channels": ""}, 1056, WRONG_TYPE, "channels"),
        ({"text": "hi", "name": 5}, 1056, WRONG_TYPE, "name"),
        ({"text": ["hi"], "name": "n"}, 1056, WRONG_TYPE, "text"),
    ],
)
def test_create_errors(
    v3: Callable[..., Any], body: dict[str, Any], number: int, desc: str, field: str | None
) -> None:
    err = _error(v3("template/create", body), 400, number, desc)
    if field is not None:
        assert err["field"] == field
    assert _show(v3) == []


def test_create_unknown_channel(v3: Callable[..., Any]) -> None:
    r = v3("template/create", {"name": "n", "text": "hi", "channels": ["sms", "fax"]})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["result"] == "error" and body["code"] == 1052 and body["field"] == "channels"
    assert "fax" in body["desc"]
    assert _show(v3) == []


def test_create_body_that_is_not_an_object(client: TestClient, org: Org) -> None:
    headers = {**org.token, "Content-Type": "application/json"}
    r = client.post("/v3/template/create", headers=headers, content=b'["hi"]')
    assert r.status_code == 400 and r.json() == {"result": "error", "desc": "No params"}
    r = client.post("/v3/template/create", headers=headers, content=b"{oops")
    assert r.status_code == 400 and r.json() == {"result": "error", "desc": "No params"}


# --- show ---------------------------------------------------------------------------


def test_show_lists_every_field(client: TestClient, org: Org, v3: Callable[..., Any]) -> None:
    assert _show(v3) == []
    text = "Hello {name}, your code is #CODE#. Bye {name}"
    template_id = _create(
        v3,
        text,
        ["sms", "vk"],
        name="Greeting",
        group_url="https://vk.com/acme",
        comment="for VK and SMS",
    )
    other_id = _create(v3, "Plain text", ["telegram"])

    first, second = _show(v3)
    assert set(first) == SHOWN
    assert first["id"] == template_id and second["id"] == other_id
    assert first["name"] == "Greeting" and first["text"] == text
    assert (first["sms"], first["viber"], first["vk"], first["telegram"]) == (
        True,
        False,
        True,
        False,
    )
    assert first["group_url"] == "https://vk.com/acme"
    assert first["comment"] == "for VK and SMS"
    assert first["status"] == "new"
    assert TIMESTAMP.match(first["created"]) and TIMESTAMP.match(first["updated"])
    assert first["fields"] == ["name", "CODE"]
    assert second["fields"] == [] and second["telegram"] is True and second["sms"] is False
    assert second["group_url"] is None and second["comment"] is None

    # GET answers the same as POST.
    r = client.get("/v3/template/show", headers=org.token)
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "success", "data": [first, second]}


def test_show_lists_only_own_templates(
    client: TestClient, v3: Callable[..., Any], make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    r = client.post(
        "/v3/template/create",
        headers=other.token,
        json={"name": "T", "text": "Theirs", "channels": []},
    )
    assert r.status_code == 200, r.text
    mine = _create(v3, "Mine", [])
    assert [t["id"] for t in _show(v3)] == [mine]
    theirs = client.get("/v3/template/show", headers=other.token).json()["data"]
    assert [t["text"] for t in theirs] == ["Theirs"]


# --- change -------------------------------------------------------------------------


def test_change_answers_the_changed_fields(
    client: TestClient, org: Org, v3: Callable[..., Any]
) -> None:
    template_id = _create(v3, "Your code is #CODE#", ["sms"], name="Code")
    r = v3("template/change", {"id": template_id, "options": {"name": "OTP", "comment": "c"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "success", "change": {"name": "OTP", "comment": "c"}}
    shown = _one(v3, template_id)
    assert shown["name"] == "OTP" and shown["comment"] == "c"
    assert shown["text"] == "Your code is #CODE#" and shown["status"] == "new"

    r = v3("template/change", {"id": template_id, "options": {"channels": ["viber", "sms"]}})
    assert r.status_code == 200, r.text
    assert r.json()["change"] == {"channels": ["viber", "sms"]}
    shown = _one(v3, template_id)
    assert shown["sms"] is True and shown["viber"] is True and shown["vk"] is False

    r = v3("template/change", {"id": template_id, "options": {"group_url": "https://vk.com/x"}})
    assert r.json()["change"] == {"group_url": "https://vk.com/x"}
    assert _one(v3, template_id)["group_url"] == "https://vk.com/x"


def test_changing_the_text_resets_the_status(
    client: TestClient, org: Org, v3: Callable[..., Any]
) -> None:
    template_id = _create(v3, "Your code is #CODE#", ["sms"], name="Code")
    _approve(client, org, template_id)
    assert _one(v3, template_id)["status"] == "approved"

    # Name and the same text keep the approval.
    r = v3(
        "template/change",
        {"id": template_id, "options": {"name": "OTP", "text": "Your code is #CODE#"}},
    )
    assert r.status_code == 200 and r.json()["change"] == {"name": "OTP"}
    assert _one(v3, template_id)["status"] == "approved"

    r = v3("template/change", {"id": template_id, "options": {"text": "Code: {code}"}})
    assert r.status_code == 200, r.text
    assert r.json()["change"] == {"text": "Code: {code}", "status": "new"}
    shown = _one(v3, template_id)
    assert shown["status"] == "new" and shown["text"] == "Code: {code}"
    assert shown["fields"] == ["code"]


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("options", "number", "desc"),
    [
        ({"name": ""}, 1042, "Missed title for the template"),
        ({"text": " "}, 1043, "Missed template text"),
        ({"channels": "sms"}, 1056, WRONG_TYPE),
        ({"comment": 5}, 1056, WRONG_TYPE),
        ({"colour": "red"}, 1052, VERIFY + ": unknown option 'colour'"),
        ({"name": "Renamed", "colour": "red"}, 1052, VERIFY + ": unknown option 'colour'"),
        ({}, 1053, MISSING),
        ({"name": 5}, 1056, WRONG_TYPE),
        ({"channels": [5]}, 1056, WRONG_TYPE),
        ({"channels": ["fax"]}, 1052, VERIFY + ": unknown channel 'fax'"),
        ({"group_url": "ftp://x"}, 1052, VERIFY + URL),
    ],
)
def test_change_errors_change_nothing(
    v3: Callable[..., Any], options: dict[str, Any], number: int, desc: str
) -> None:
    template_id = _create(v3, "Your code is #CODE#", ["sms"], name="Code")
    before = _one(v3, template_id)
    _error(v3("template/change", {"id": template_id, "options": options}), 400, number, desc)
    assert _one(v3, template_id) == before


def test_change_missing_id_or_options(v3: Callable[..., Any]) -> None:
    template_id = _create(v3, "hi", [])
    assert (
        _error(v3("template/change", {"options": {"name": "x"}}), 400, 1053, MISSING)["field"]
        == "id"
    )
    assert _error(v3("template/change", {"id": template_id}), 400, 1053, MISSING)["field"] == (
        "options"
    )
    r = v3("template/change", {"id": template_id, "options": ["name"]})
    assert _error(r, 400, 1056, WRONG_TYPE)["field"] == "options"
    r = v3("template/change", {"id": 5, "options": {"name": "x"}})
    assert _error(r, 400, 1056, WRONG_TYPE)["field"] == "id"


def test_change_unknown_or_foreign_template(
    client: TestClient, v3: Callable[..., Any], make_org: Callable[..., Org]
) -> None:
    r = v3("template/change", {"id": str(uuid.uuid4()), "options": {"name": "x"}})
    _error(r, 404, 1050, "Template does not exist")

    other = make_org("Other", "admin@other.test")
    r = client.post(
        "/v3/template/create", headers=other.token, json={"name": "Theirs", "text": "Theirs"}
    )
    theirs = r.json()["id"]
    r = v3("template/change", {"id": theirs, "options": {"name": "Stolen"}})
    _error(r, 404, 1050, "Template does not exist")
    shown = client.get("/v3/template/show", headers=other.token).json()["data"]
    assert [t["name"] for t in shown] == ["Theirs"]


# --- delete -------------------------------------------------------------------------


def test_delete(client: TestClient, v3: Callable[..., Any], make_org: Callable[..., Org]) -> None:
    keep = _create(v3, "Keep me", [])
    gone = _create(v3, "Delete me", [])
    r = v3("template/delete", {"id": gone})
    assert r.status_code == 200 and r.json() == {"result": "success"}
    assert [t["id"] for t in _show(v3)] == [keep]
    no_access = "You don't have access to the template"
    _error(v3("template/delete", {"id": gone}), 403, 1051, no_access)
    r = v3("template/change", {"id": gone, "options": {"name": "back"}})
    _error(r, 403, 1051, no_access)
    _error(v3("template/delete", {}), 400, 1053, MISSING)
    _error(v3("template/delete", {"id": 5}), 400, 1056, WRONG_TYPE)

    other = make_org("Other", "admin@other.test")
    theirs = client.post(
        "/v3/template/create", headers=other.token, json={"name": "T", "text": "T"}
    ).json()
    _error(v3("template/delete", {"id": theirs["id"]}), 404, 1050, "Template does not exist")
    shown = client.get("/v3/template/show", headers=other.token).json()["data"]
    assert [t["id"] for t in shown] == [theirs["id"]]


# --- moderation ---------------------------------------------------------------------


def test_moderation_sets_the_status(client: TestClient, org: Org, v3: Callable[..., Any]) -> None:
    template_id = _create(v3, "Your code is #CODE#", ["sms"])
    r = _moderate(client, org, template_id, "approved", comment="fine")
    assert r.status_code == 200, r.text
    assert r.json() == {"id": template_id, "status": "approved"}
    assert _one(v3, template_id)["status"] == "approved"

    r = _moderate(client, org, template_id, "rejected")
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert _one(v3, template_id)["status"] == "rejected"


@pytest.mark.one_engine
@pytest.mark.parametrize("status", ["bogus", "deleted", ""])
def test_moderation_refuses_unknown_status(
    client: TestClient, org: Org, v3: Callable[..., Any], status: str
) -> None:
    template_id = _create(v3, "hi", ["sms"])
    r = _moderate(client, org, template_id, status)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["statusCode"] == 400 and body["code"] == "invalid_status"
    assert [e["field"] for e in body["errors"]] == ["status"]
    assert _one(v3, template_id)["status"] == "new"


def test_moderation_of_unknown_foreign_or_by_member(
    client: TestClient, org: Org, v3: Callable[..., Any], make_org: Callable[..., Org]
) -> None:
    r = _moderate(client, org, str(uuid.uuid4()))
    assert r.status_code == 404 and r.json()["statusCode"] == 404

    other = make_org("Other", "admin@other.test")
    theirs = client.post(
        "/v3/template/create", headers=other.token, json={"name": "T", "text": "T"}
    ).json()
    r = _moderate(client, org, theirs["id"])
    assert r.status_code == 404 and r.json()["statusCode"] == 404

    template_id = _create(v3, "hi", ["sms"])
    r = client.post("/api/users", headers=org.headers(), json={"email": "m@acme.test", "name": "M"})
    user_id = r.json()["id"]
    token = client.post(f"/api/users/{user_id}/access-token", headers=org.headers()).json()
    r = client.post(
        f"/api/templates/{template_id}/moderation",
        headers=org.headers(token=token["token"]),
        json={"status": "approved"},
    )
    assert r.status_code == 403 and r.json()["code"] == "admin_required"
    assert _one(v3, template_id)["status"] == "new"


# --- templates_only connections -----------------------------------------------------


def test_templates_only_refuses_unmatched_text_and_writes_nothing(
    client: TestClient, org: Org, v3: Callable[..., Any], db: Database
) -> None:
    _templates_only(client, org)
    _refused(_sms(v3, "Hello"))
    assert _message_count(db, org) == 0
    assert v3("balance").json()["balance"] == "1000.00"

    # A template that is not approved yet unlocks nothing.
    template_id = _create(v3, "Your code is #CODE#", ["sms"])
    _refused(_sms(v3, "Your code is 1234"))

    _approve(client, org, template_id)
    r = _sms(v3, "Your code is 1234")
    assert r.status_code == 200, r.text
    assert _message_count(db, org) == 1
    assert v3("balance").json()["balance"] == "999.95"
    _refused(_sms(v3, "Your code is"))
    _refused(_sms(v3, "Your code is "))
    _refused(_sms(v3, "Hello"))
    _refused(_sms(v3, "Say: Your code is 1234"))
    assert _message_count(db, org) == 1
    assert v3("balance").json()["balance"] == "999.95"

    # Other channels are not affected.
    assert _viber(v3, "Hello").status_code == 200


def test_template_for_viber_only_does_not_unlock_sms(
    client: TestClient, org: Org, v3: Callable[..., Any], db: Database
) -> None:
    _templates_only(client, org, "sms")
    _templates_only(client, org, "viber")
    template_id = _create(v3, "Your code is #CODE#", ["viber"])
    _approve(client, org, template_id)
    _refused(_sms(v3, "Your code is 1234"))
    assert _viber(v3, "Your code is 1234").status_code == 200
    _refused(_viber(v3, "Hello"))
    assert _message_count(db, org) == 1


def test_adding_a_channel_to_an_approved_template_needs_moderation_again(
    client: TestClient, org: Org, v3: Callable[..., Any]
) -> None:
    """Approval is for the channels a template was moderated for: adding sms to a template
    approved for viber must not let arbitrary sms through a templates_only connection."""
    _templates_only(client, org, "sms")
    template_id = _create(v3, "Your code is #CODE#", ["viber"])
    _approve(client, org, template_id)
    r = v3("template/change", {"id": template_id, "options": {"channels": ["viber", "sms"]}})
    assert r.status_code == 200, r.text
    _refused(_sms(v3, "Your code is 1234"))


def test_placeholders_and_special_characters(
    client: TestClient, org: Org, v3: Callable[..., Any]
) -> None:
    _templates_only(client, org)
    _approve(client, org, _create(v3, "Hi {name}!", ["sms"]))
    _approve(client, org, _create(v3, "Total: $#SUM# (incl. VAT) [#N#]", ["sms"]))
    assert _sms(v3, "Hi Ann!").status_code == 200
    assert _sms(v3, "Hi Ann and Bob!").status_code == 200
    _refused(_sms(v3, "Hi !"))
    _refused(_sms(v3, "Hi Ann"))
    assert _sms(v3, "Total: $10.50 (incl. VAT) [7]").status_code == 200
    _refused(_sms(v3, "Total: $10.50 incl. VAT 7"))


def test_deleted_rejected_or_foreign_templates_unlock_nothing(
    client: TestClient, org: Org, v3: Callable[..., Any], make_org: Callable[..., Org]
) -> None:
    _templates_only(client, org)
    template_id = _create(v3, "Your code is #CODE#", ["sms"])
    _approve(client, org, template_id)
    assert _sms(v3, "Your code is 1").status_code == 200

    assert _moderate(client, org, template_id, "rejected").status_code == 200
    _refused(_sms(v3, "Your code is 2"))
    _approve(client, org, template_id)
    assert _sms(v3, "Your code is 3").status_code == 200
    assert v3("template/delete", {"id": template_id}).status_code == 200
    _refused(_sms(v3, "Your code is 4"))

    other = make_org("Other", "admin@other.test")
    r = client.post(
        "/v3/template/create",
        headers=other.token,
        json={"name": "X", "text": "Hello #X#", "channels": ["sms"]},
    )
    _approve(client, other, r.json()["id"])
    _refused(_sms(v3, "Hello there"))


def test_show_has_an_operation_id_per_method(client: TestClient) -> None:
    # One route with two methods gave both the same id (FastAPI warned; OpenAPI forbids it).
    paths = client.get("/v3/openapi.json").json()["paths"]
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert set(paths["/template/show"]) == {"get", "post"}
