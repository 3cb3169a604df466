"""/user/template2/*: templates v2 (seed 004) with per-channel entries and moderation; the
same templates as /v3/template/* (ADR 27); and ``templates.service.match``, the senders'
question (which approved template does this text fill in?)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import omnirelay.tasks  # noqa: F401  (the job handlers the worker runs)
from omnirelay.db import Database
from omnirelay.errors import InvalidInput
from omnirelay.queue.models import Job
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from omnirelay.templates import moderation, service
from omnirelay.templates.models import Template, TemplateChannel
from tests.conftest import Org
from tests.platform.conftest import Call

TEXT = " Test template from the company #COMPANY_NAME#."
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CHANNEL_KEYS = {
    "id",
    "channel",
    "status",
    "updated_at",
    "components",
    "keyboard",
    "attachments",
    "sender",
    "comment",
}
ITEM_KEYS = {"id", "displayName", "text", "regexpText", "name", "channels"}


def drain(db: Database) -> None:
    """Run every due job (moderation among them) to the end."""
    worker = Worker(db, tasks, backoff_base=0.01, backoff_max=0.01, lease_seconds=30)
    while worker.run_until_idle(max_jobs=1000):
        pass


def listed(call: Call, who: Org | None = None, **body: Any) -> list[dict[str, Any]]:
    answer = call("/template2/list", body or None, who=who)
    assert answer["total"] >= len(answer["data"])
    data: list[dict[str, Any]] = answer["data"]
    return data


def one(call: Call, template_id: int) -> dict[str, Any]:
    (row,) = [t for t in listed(call) if t["id"] == template_id]
    return row


def statuses(call: Call, template_id: int) -> dict[str, str]:
    return {c["channel"]: c["status"] for c in one(call, template_id)["channels"]}


def create(call: Call, text: str = TEXT, *channels: str, **extra: Any) -> dict[str, Any]:
    body = {"text": text, "channels": [{"channel": c} for c in channels], **extra}
    answer: dict[str, Any] = call("/template2/create", body)
    return answer


def v3_show(client: TestClient, org: Org) -> list[dict[str, Any]]:
    answer = client.post("/v3/template/show", headers=org.token)
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def counts(db: Database) -> tuple[int, int, int]:
    with db.read() as session:
        return (
            int(session.scalar(select(func.count()).select_from(Template)) or 0),
            int(session.scalar(select(func.count()).select_from(TemplateChannel)) or 0),
            int(session.scalar(select(func.count()).select_from(Job)) or 0),
        )


# --- create and list ------------------------------------------------------------------


def test_create_answers_the_template_with_its_channels_in_moderation(call: Call) -> None:
    answer = call(
        "/template2/create",
        {
            "displayName": "Test template",
            "text": TEXT,
            "name": "before_visit_10_min",
            "channels": [
                {"channel": "sms", "sender": "SANDBOX"},
                {
                    "channel": "telegram",
                    "keyboard": {
                        "inline": True,
                        "buttons": [{"text": "Open", "link": "https://a.test"}],
                    },
                    "attachments": ["https://cdn.test/a.png"],
                    "components": [{"type": "body"}],
                },
            ],
        },
    )
    assert set(answer) == {"result"} | ITEM_KEYS
    assert isinstance(answer["id"], int)
    assert answer["displayName"] == "Test template" and answer["name"] == "before_visit_10_min"
    assert answer["text"] == TEXT
    assert answer["regexpText"] == r"^ Test template from the company (.+)\.$"
    sms, telegram = answer["channels"]
    assert set(sms) == CHANNEL_KEYS and STAMP.match(sms["updated_at"])
    assert (sms["channel"], sms["status"], sms["sender"]) == ("sms", "moderate", "SANDBOX")
    assert sms["keyboard"] is None and sms["attachments"] == [] and sms["components"] is None
    assert telegram["status"] == "moderate"
    assert telegram["keyboard"] == {
        "inline": True,
        "buttons": [{"text": "Open", "link": "https://a.test"}],
    }
    assert telegram["attachments"] == ["https://cdn.test/a.png"]
    assert telegram["components"] == [{"type": "body"}]

    (item,) = listed(call)
    assert set(item) == ITEM_KEYS | {"templateGroupId", "groupName", "group"}
    assert item["templateGroupId"] is None and item["groupName"] is None and item["group"] == []
    assert {k: item[k] for k in ITEM_KEYS} == {k: answer[k] for k in ITEM_KEYS}


def test_display_name_defaults_to_the_event_then_the_text(call: Call) -> None:
    assert create(call, "Hi #NAME#!", name="welcome")["displayName"] == "welcome"
    assert create(call, "Hi #NAME#!")["displayName"] == "Hi #NAME#!"


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"channels": []}, "missing_field", "text"),
        ({"text": ""}, "invalid_field", "text"),
        ({"text": "   "}, "invalid_field", "text"),
        ({"text": "hi", "channels": [{"channel": "fax"}]}, "invalid_channel", "channel"),
        (
            {"text": "hi", "channels": [{"channel": "sms"}, {"channel": "sms"}]},
            "duplicate_channel",
            "channels.1.channel",
        ),
        (
            {
                "text": "hi",
                "channels": [{"channel": "sms", "attachments": ["https://a.test/x.png"]}],
            },
            "attachments_not_allowed",
            "channels.0.attachments",
        ),
        (
            {
                "text": "hi",
                "channels": [
                    {
                        "channel": "viber",
                        "attachments": ["https://a.test/1.png", "https://a.test/2.png"],
                    }
                ],
            },
            "attachments_not_allowed",
            "channels.0.attachments",
        ),
        (
            {"text": "hi", "channels": [{"channel": "vk", "attachments": ["ftp://a.test/x"]}]},
            "invalid_field",
            "channels.0.attachments",
        ),
        (
            {"text": "hi", "channels": [{"channel": "sms", "sender": "NOBODY"}]},
            "sender_not_found",
            "channels.0.sender",
        ),
        (
            {"text": "hi", "channels": [{"channel": "whatsapp-business", "sender": "SANDBOX"}]},
            "sender_not_found",
            "channels.0.sender",
        ),
        ({"text": "hi", "displayName": "n" * 201}, "invalid_field", "displayName"),
        ({"text": 5}, "invalid_field", "text"),
    ],
)
def test_create_refusals_write_nothing(
    call: Call, db: Database, body: dict[str, Any], code: str, field: str
) -> None:
    before = counts(db)
    refused = call("/template2/create", body, error=True)
    assert refused["code"] == code and refused["field"] == field, refused
    assert refused["desc"]
    assert counts(db) == before
    assert listed(call) == []


def test_list_pages_and_orders(call: Call) -> None:
    ids = [create(call, f"Text {n} #X#.", displayName=f"T{9 - n}")["id"] for n in range(4)]
    assert [t["id"] for t in listed(call)] == ids[::-1]  # createdAt DESC by default
    answer = call("/template2/list", {"offset": 1, "limit": 2, "order": [["id", "ASC"]]})
    assert [t["id"] for t in answer["data"]] == ids[1:3] and answer["total"] == 4
    by_name = listed(call, order=[["displayName", "ASC"]])
    assert [t["displayName"] for t in by_name] == ["T6", "T7", "T8", "T9"]
    assert listed(call, limit=0) == []
    for order, field in (
        ([["colour", "ASC"]], "order.0"),
        ([["id", "UP"]], "order.0"),
        ([["id"], ["id"], ["id"], ["id"]], "order"),
    ):
        refused = call("/template2/list", {"order": order}, error=True)
        assert refused["code"] == "invalid_order" and refused["field"] == field
    refused = call("/template2/list", {"offset": -1}, error=True)
    assert refused["code"] == "invalid_field" and refused["field"] == "offset"


def test_list_shows_only_the_callers_templates(call: Call, make_org: Callable[..., Org]) -> None:
    other = make_org("Other", "admin@other.test")
    mine = create(call, "Mine #X#.", "sms")["id"]
    call("/template2/create", {"text": "Theirs #X#."}, who=other)
    assert [t["id"] for t in listed(call)] == [mine]
    assert [t["text"] for t in listed(call, who=other)] == ["Theirs #X#."]


# --- one object, two surfaces ---------------------------------------------------------


def test_a_v3_template_is_a_v2_template_and_back(client: TestClient, org: Org, call: Call) -> None:
    made = client.post(
        "/v3/template/create",
        headers=org.token,
        json={"name": "Code", "text": "Your code is #CODE#", "channels": ["sms", "viber"]},
    ).json()
    (v2,) = listed(call)
    assert v2["displayName"] == "Code" and v2["text"] == "Your code is #CODE#"
    assert v2["name"] is None and v2["regexpText"] == "^Your code is (.+)$"
    assert [(c["channel"], c["status"]) for c in v2["channels"]] == [
        ("sms", "moderate"),
        ("viber", "moderate"),
    ]

    other = create(call, "Hello #NAME#.", "telegram", "whatsapp-business", displayName="Hello")
    first, second = v3_show(client, org)
    assert first["id"] == made["id"]
    assert second["name"] == "Hello" and second["text"] == "Hello #NAME#."
    assert second["telegram"] is True and second["sms"] is False  # whatsapp-business: not in v3
    assert second["status"] == "send"  # at moderation

    # A change through one surface is seen through the other.
    r = client.post(
        "/v3/template/change",
        headers=org.token,
        json={"id": second["id"], "options": {"channels": ["telegram", "vk"]}},
    )
    assert r.status_code == 200, r.text
    assert set(statuses(call, other["id"])) == {"telegram", "whatsapp-business", "vk"}
    call("/template2/channel/remove", {"templateId": other["id"], "channel": "vk"})
    assert next(t for t in v3_show(client, org) if t["id"] == second["id"])["vk"] is False
    call("/template2/delete", {"templateId": v2["id"]})
    assert [t["id"] for t in v3_show(client, org)] == [second["id"]]
    r = client.post("/v3/template/delete", headers=org.token, json={"id": second["id"]})
    assert r.status_code == 200, r.text
    assert listed(call) == []


def test_operator_moderation_of_v3_decides_every_channel(
    client: TestClient, org: Org, call: Call
) -> None:
    made = client.post(
        "/v3/template/create",
        headers=org.token,
        json={"name": "Code", "text": "Your code is #CODE#", "channels": ["sms"]},
    ).json()
    r = client.post(
        f"/api/templates/{made['id']}/moderation",
        headers=org.headers(),
        json={"status": "rejected", "comment": "no"},
    )
    assert r.status_code == 200, r.text
    (v2,) = listed(call)
    assert [(c["status"], c["comment"]) for c in v2["channels"]] == [("rejected", "no")]


# --- moderation -----------------------------------------------------------------------


def test_the_sandbox_moderates_by_its_rule(
    call: Call, db: Database, client: TestClient, org: Org
) -> None:
    good = create(call, TEXT, "sms", "vk")["id"]
    marked = create(call, "Please REJECT this #X#.", "sms")["id"]
    only_vars = create(call, "#A# #B#", "sms")["id"]
    adjacent = create(call, "Code: #A##B#.", "sms")["id"]
    assert statuses(call, good) == {"sms": "moderate", "vk": "moderate"}
    drain(db)
    assert statuses(call, good) == {"sms": "approved", "vk": "approved"}
    for template_id, reason in (
        (marked, "the text contains REJECT"),
        (only_vars, "the text has no fixed part besides its variables"),
        (adjacent, "two variables side by side"),
    ):
        (entry,) = one(call, template_id)["channels"]
        assert (entry["status"], entry["comment"]) == ("rejected", reason)
    shown = {t["text"]: t["status"] for t in v3_show(client, org)}
    assert shown[TEXT] == "approved" and shown["#A# #B#"] == "rejected"


def test_a_new_text_goes_back_to_moderation(call: Call, db: Database) -> None:
    template_id = create(call, TEXT, "sms")["id"]
    drain(db)
    assert statuses(call, template_id) == {"sms": "approved"}
    call("/template2/update", {"id": template_id, "text": TEXT})  # the same text: no change
    assert statuses(call, template_id) == {"sms": "approved"}
    assert call("/template2/update", {"id": template_id, "text": "Now REJECT #X#."}) == {
        "result": "success"
    }
    assert statuses(call, template_id) == {"sms": "moderate"}
    assert one(call, template_id)["regexpText"] == "^Now REJECT (.+)\\.$"
    drain(db)
    assert statuses(call, template_id) == {"sms": "rejected"}
    call("/template2/update", {"id": template_id, "text": "Fine #X#."})
    drain(db)
    assert statuses(call, template_id) == {"sms": "approved"}


def test_add_and_remove_a_channel(call: Call, db: Database) -> None:
    template_id = create(call, TEXT, "sms")["id"]
    answer = call(
        "/template2/channel/add", {"templateId": template_id, "channel": {"channel": "telegram"}}
    )
    assert set(answer) == {"result", "id", "templateId", "channel", "status", "updated_at"}
    assert (answer["templateId"], answer["channel"], answer["status"]) == (
        template_id,
        "telegram",
        "moderate",
    )
    assert STAMP.match(answer["updated_at"])
    drain(db)
    assert statuses(call, template_id) == {"sms": "approved", "telegram": "approved"}
    assert call("/template2/channel/remove", {"templateId": template_id, "channel": "sms"}) == {
        "result": "success"
    }
    assert statuses(call, template_id) == {"telegram": "approved"}


def test_channel_refusals_write_nothing(
    call: Call, db: Database, make_org: Callable[..., Org]
) -> None:
    template_id = create(call, TEXT, "sms")["id"]
    theirs = call("/template2/create", {"text": "x #X#."}, who=make_org("Other", "o@o.test"))
    before = counts(db)
    cases = [
        (
            "/template2/channel/add",
            {"templateId": template_id, "channel": {"channel": "sms"}},
            "channel_exists",
        ),
        (
            "/template2/channel/add",
            {"templateId": template_id, "channel": {"channel": "fax"}},
            "invalid_channel",
        ),
        (
            "/template2/channel/add",
            {"templateId": theirs["id"], "channel": {"channel": "vk"}},
            "template_not_found",
        ),
        (
            "/template2/channel/add",
            {"templateId": 10**9, "channel": {"channel": "vk"}},
            "template_not_found",
        ),
        (
            "/template2/channel/add",
            {
                "templateId": template_id,
                "channel": {"channel": "notify", "attachments": ["https://a.test/a.png"]},
            },
            "attachments_not_allowed",
        ),
        ("/template2/channel/add", {"templateId": template_id}, "missing_field"),
        (
            "/template2/channel/remove",
            {"templateId": template_id, "channel": "vk"},
            "template_channel_not_found",
        ),
        (
            "/template2/channel/remove",
            {"templateId": template_id, "channel": "fax"},
            "invalid_channel",
        ),
        (
            "/template2/channel/remove",
            {"templateId": theirs["id"], "channel": "sms"},
            "template_not_found",
        ),
        ("/template2/update", {"id": theirs["id"], "text": "mine now"}, "template_not_found"),
        ("/template2/update", {"id": template_id, "text": " "}, "invalid_field"),
        ("/template2/update", {"id": 2**60, "text": "x"}, "invalid_field"),
        ("/template2/delete", {"templateId": theirs["id"]}, "template_not_found"),
        ("/template2/delete", {"templateId": "one"}, "invalid_field"),
    ]
    for path, body, code in cases:
        refused = call(path, body, error=True)
        assert refused["code"] == code, (path, body, refused)
    assert counts(db) == before
    assert statuses(call, template_id) == {"sms": "moderate"}


def test_delete(call: Call, db: Database) -> None:
    keep = create(call, "Keep #X#.", "sms")["id"]
    gone = create(call, "Gone #X#.", "sms")["id"]
    assert call("/template2/delete", {"templateId": gone}) == {"result": "success"}
    assert [t["id"] for t in listed(call)] == [keep]
    assert (
        call("/template2/delete", {"templateId": gone}, error=True)["code"] == "template_not_found"
    )
    drain(db)  # its moderation job finds it deleted and decides nothing
    with db.read() as session:
        assert service.match(session, _org_of(db, keep), "sms", "Gone now.") is None


def _org_of(db: Database, template_id: int) -> str:
    with db.read() as session:
        row = session.get(Template, template_id)
        assert row is not None
        return row.organization_id


# --- a real provider ------------------------------------------------------------------


@pytest.fixture
def business(client: TestClient, org: Org) -> int:
    """A WhatsApp Business (Cloud API) connection of the organization."""
    admin = org.headers()
    account = client.post("/api/gateway/account-token", headers=admin).json()["token"]
    added = client.post(
        "/add-device",
        data={"name": "Shop", "device": "6281234567001"},
        headers={"Authorization": account},
    ).json()
    assert added["status"] is True, added
    (device,) = client.get("/api/gateway/devices", headers=admin).json()["items"]
    cloud = {"phone_number_id": "1234567890", "access_token": "EAAG-test"}
    moved = client.put(
        f"/api/gateway/devices/{device['id']}/driver",
        json={"provider": "whatsapp_cloud", "settings": cloud},
        headers=admin,
    )
    assert moved.status_code == 200, moved.text
    data = client.post("/user/channels/connections", headers=org.token).json()["data"]
    connection_id: int = data["whatsapp-business"][0]["id"]
    return connection_id


@pytest.fixture
def hook() -> Iterator[list[tuple[int, int]]]:
    asked: list[tuple[int, int]] = []
    moderation.register("whatsapp_cloud", lambda s, t, e: asked.append((t.id, e.revision)))
    yield asked
    moderation._PROVIDERS.pop("whatsapp_cloud", None)


def test_a_real_provider_is_asked_and_its_answer_recorded(
    call: Call, db: Database, org: Org, business: int
) -> None:
    template_id = create(call, TEXT, "whatsapp-business", "sms")["id"]
    drain(db)
    # No hook: the sandbox decides SMS; WhatsApp Business waits for the provider.
    (waba, sms) = one(call, template_id)["channels"]
    assert (sms["status"], waba["status"]) == ("approved", "moderate")
    assert waba["comment"] == "waiting for the answer of whatsapp_cloud"

    with db.transaction() as session:
        stale = moderation.record(session, org.id, waba["id"], 0, moderation.Decision("approved"))
        assert stale is False
        assert moderation.record(session, org.id, waba["id"], 1, moderation.Decision("approved"))
    assert statuses(call, template_id) == {"whatsapp-business": "approved", "sms": "approved"}
    with db.transaction() as session, pytest.raises(InvalidInput):
        moderation.record(session, org.id, waba["id"], 1, moderation.Decision("maybe"))


def test_a_registered_hook_is_given_the_entry(
    call: Call, db: Database, business: int, hook: list[tuple[int, int]]
) -> None:
    template_id = create(call, TEXT, "whatsapp-business")["id"]
    drain(db)
    assert hook == [(template_id, 1)]
    assert statuses(call, template_id) == {"whatsapp-business": "moderate"}


# --- the senders' question ------------------------------------------------------------


def test_match_finds_the_approved_entry_and_its_variables(
    call: Call, db: Database, org: Org, make_org: Callable[..., Org]
) -> None:
    generic = create(call, "Order #N# is #STATE#.", "sms", "telegram")["id"]
    specific = create(call, "Order #N# is ready for pickup.", "sms")["id"]
    waiting = create(call, "Hello #NAME#, bye #NAME#.", "sms")["id"]
    with db.read() as session:  # nothing approved yet
        assert service.match(session, org.id, "sms", "Order 7 is ready for pickup.") is None
    drain(db)
    call("/template2/channel/remove", {"templateId": generic, "channel": "telegram"})
    call("/template2/channel/add", {"templateId": generic, "channel": {"channel": "vk"}})
    with db.read() as session:
        found = service.match(session, org.id, "sms", "Order 7 is ready for pickup.")
        assert found is not None and found.template_id == specific  # the most specific
        assert found.variables == {"N": "7"} and found.entry.channel == "sms"
        found = service.match(session, org.id, "sms", "Order 7 is lost\nfor now.")
        assert found is not None and found.template_id == generic
        assert found.variables == {"N": "7", "STATE": "lost\nfor now"}
        assert found.template_uuid and found.text == "Order #N# is #STATE#."
        found = service.match(session, org.id, "sms", "Hello Ann, bye Ann.")
        assert found is not None and found.template_id == waiting
        assert found.variables == {"NAME": "Ann"}
        assert service.match(session, org.id, "sms", "Hello Ann, bye Bob.") is None
        assert service.match(session, org.id, "sms", "Order 7 is .") is None
        assert service.match(session, org.id, "telegram", "Order 7 is lost.") is None  # removed
        assert service.match(session, org.id, "vk", "Order 7 is lost.") is None  # not yet approved
        assert service.match(session, org.id, "viber", "Order 7 is lost.") is None
        other = make_org("Other", "admin@other.test")
        assert service.match(session, other.id, "sms", "Order 7 is lost.") is None
        with pytest.raises(InvalidInput) as unknown:
            service.match(session, org.id, "fax", "Order 7 is lost.")
        assert unknown.value.code == "invalid_channel"
    call("/template2/update", {"id": specific, "text": "Order #N# is REJECT."})
    drain(db)
    with db.read() as session:
        found = service.match(session, org.id, "sms", "Order 7 is ready for pickup.")
        assert found is not None and found.template_id == generic


def test_a_v2_approval_opens_a_templates_only_connection(
    client: TestClient, org: Org, call: Call, db: Database
) -> None:
    connection = client.get("/api/connections?channel=sms", headers=org.headers()).json()["items"][
        0
    ]
    r = client.patch(
        f"/api/connections/{connection['id']}", headers=org.headers(), json={"templates_only": True}
    )
    assert r.status_code == 200, r.text
    send = {"sender": "SANDBOX", "phone": "79161234567", "text": "Your code is 1234."}
    assert client.post("/v3/message/sendSMS", headers=org.token, json=send).status_code == 400
    create(call, "Your code is #CODE#.", "sms")
    drain(db)
    r = client.post("/v3/message/sendSMS", headers=org.token, json=send)
    assert r.status_code == 200, r.text
