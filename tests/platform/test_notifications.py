"""`/user/notifications/send`: the contact found or created, its route from the ids it has
and the channel entries, templates, attachments, the pipeline's statuses on the callback
server as `notification_message_updated`, and refusals that write nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

import omnirelay.tasks  # noqa: F401  (the pipeline's handlers and the notification reporter)
from omnirelay.connections import service as connections
from omnirelay.contacts.models import Contact
from omnirelay.db import Database
from omnirelay.messaging import service as messaging
from omnirelay.messaging.models import Message
from omnirelay.templates import service as templates
from omnirelay.webhooks.models import WebhookEvent
from tests.conftest import Org
from tests.pipeline import Pipeline, jump
from tests.platform.conftest import Call

HOOK = "https://8.8.8.8/hook"  # a public address: events are rows, nothing is sent
PHONE = "79161234567"  # the sandbox delivers it
NO_DESTINATION = (
    "Unable to send to any channel because contact doesn't have destination params for "
    "specified channels"
)


@pytest.fixture
def org(make_org: Callable[..., Org], db: Database) -> Org:
    """An organization whose sandbox answers at once, with a callback server set."""
    made = make_org()
    with db.transaction() as session:
        for row in connections.list_connections(session, made.id):
            instant = {"report_delay": 0, "read_delay": 0, "reply_delay": 0}
            connections.update(session, made.id, row.id, {"settings": instant})
    return made


@pytest.fixture
def hooked(call: Call) -> Call:
    call("/callback/set", {"callbackUrl": HOOK, "secret": "s3cr3t"})
    return call


def _ids(db: Database, org: Org) -> dict[str, int]:
    with db.read() as session:
        return {r.channel: r.id for r in connections.list_connections(session, org.id)}


def _set(db: Database, org: Org, channel: str, **changes: Any) -> None:
    with db.transaction() as session:
        connections.update(session, org.id, _ids(db, org)[channel], changes)


def _message(db: Database, message_id: str) -> Message:
    with db.read() as session:
        row = session.get(Message, message_id)
        assert row is not None
        session.expunge(row)
        return row


def _events(db: Database, kind: str = "notification_message_updated") -> list[dict[str, Any]]:
    with db.read() as session:
        rows = session.scalars(select(WebhookEvent).order_by(WebhookEvent.seq))
        return [dict(e.payload) for e in rows if e.event_type == kind]


def _statuses(db: Database) -> list[tuple[str, str]]:
    return [(e["data"]["status"], e["data"]["channel"]) for e in _events(db)]


def _count(db: Database, model: Any) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _contact(call: Call, **ids: Any) -> str:
    return str(call("/contacts/create", [ids])["data"][0]["id"])


def _route(db: Database, message_id: str) -> list[tuple[str, str]]:
    return [(s["extra"]["designation"], s["channel"]) for s in _message(db, message_id).route]


# --- sending ------------------------------------------------------------------------


def test_by_phone_creates_the_contact_and_the_cascade_fails_over_to_the_next_channel(
    hooked: Call, db: Database, org: Org
) -> None:
    _contact(hooked, phone=PHONE, vkId=555)  # found by phone: it has a VK id too
    _set(db, org, "vk", settings={"outcome": "undelivered", "report_delay": 0})
    body = {
        "phone": PHONE,
        "message": {"text": "Your order is ready"},
        "channels": [{"name": "telegram+vk", "ttl": 600}, {"name": "sms"}],
    }
    answer = hooked("/notifications/send", body)
    assert set(answer) == {"result", "id"}
    # telegram: the contact has no telegramId; vk first, then sms.
    assert _route(db, answer["id"]) == [("vk", "vk"), ("sms", "sms")]
    assert _message(db, answer["id"]).route[0]["extra"]["to"] == {"vkId": "555"}
    assert _message(db, answer["id"]).route[0]["ttl"] == 600
    assert _count(db, Contact) == 1  # found, not created again

    Pipeline(db).run_until_idle()
    assert _statuses(db) == [("sent", "vk"), ("sent", "sms"), ("delivered", "sms")]
    final = _events(db)[-1]
    assert final["type"] == final["name"] == "notification_message_updated"
    assert final["secret"] == "s3cr3t"
    assert final["data"] == {
        "id": answer["id"],
        "status": "delivered",
        "channel": "sms",
        "statusDetails": {"desc": "Delivered"},
    }
    assert _message(db, answer["id"]).status == "delivered"


def test_a_new_phone_gets_a_contact_and_the_default_cascade(
    hooked: Call, db: Database, org: Org
) -> None:
    answer = hooked("/notifications/send", {"phone": "+7 916 123-45-67", "message": {"text": "Hi"}})
    # The sandbox's connections, messengers first: vk and telegram need ids it lacks.
    assert _route(db, answer["id"]) == [("viber", "viber"), ("sms", "sms")]
    with db.read() as session:
        (contact,) = session.scalars(select(Contact)).all()
        assert contact.phone == "+79161234567"
    assert [e["data"][0]["phone"] for e in _events(db, "contact_created")] == ["+79161234567"]
    Pipeline(db).run_until_idle()
    assert _statuses(db) == [("sent", "viber"), ("delivered", "viber"), ("read", "viber")]


def test_the_default_cascade_is_the_organizations_default_route_when_set(
    call: Call, db: Database, org: Org
) -> None:
    with db.transaction() as session:
        route = [{"channel": "sms"}, {"channel": "viber"}]
        messaging.update_settings(session, org.id, {"default_route": route})
    answer = call("/notifications/send", {"phone": PHONE, "message": {"text": "Hi"}})
    assert _route(db, answer["id"]) == [("sms", "sms"), ("viber", "viber")]


def test_by_contact_id_reaches_the_ids_the_profile_has(call: Call, db: Database) -> None:
    contact = _contact(call, telegramId="tg-42")
    body = {
        "contactId": contact,
        "message": {"text": "Hello"},
        "channels": [{"name": "vk"}, {"name": "telegram"}, {"name": "sms"}],
    }
    answer = call("/notifications/send", body)
    # No phone: neither SMS nor the SMS fallback.
    assert _route(db, answer["id"]) == [("telegram", "telegram")]
    assert _message(db, answer["id"]).route[0]["extra"]["to"] == {"telegramId": "tg-42"}


def test_a_contact_no_channel_can_reach_is_accepted_and_reported_as_an_error(
    hooked: Call, db: Database
) -> None:
    contact = _contact(hooked, telegramId="tg-1")
    body = {
        "contactId": contact,
        "message": {"text": "Hello"},
        "channels": [{"name": "vk"}, {"name": "whatsapp-business"}],
    }
    answer = hooked("/notifications/send", body)
    message = _message(db, answer["id"])
    assert message.status == "error" and message.final_at is not None and message.due_at is None
    assert _events(db)[-1]["data"] == {
        "id": answer["id"],
        "status": "error",
        "channel": "vk",
        "statusDetails": {"desc": NO_DESTINATION},
    }
    assert Pipeline(db).run_until_idle() == 0  # nothing to dispatch


def test_a_named_connection_is_the_one_used(
    call: Call, client: Any, db: Database, org: Org
) -> None:
    second = client.post(
        "/api/connections",
        json={"channel": "sms", "name": "Second", "senders": ["SHOP"]},
        headers=org.headers(),
    ).json()["id"]
    body = {
        "phone": PHONE,
        "message": {"text": "Hi"},
        "channels": [{"name": "sms", "connections": [second]}],
    }
    step = _message(db, call("/notifications/send", body)["id"]).route[0]
    assert step["connection_id"] == second and step["sender"] == "SHOP"


# --- templates ----------------------------------------------------------------------


def _template(db: Database, org: Org, text: str, channels: list[str]) -> int:
    with db.transaction() as session:
        row = templates.create(
            session,
            org.id,
            name="Code",
            text=text,
            channels=channels,
            group_url=None,
            comment=None,
        )
        templates.moderate(session, org.id, row.uuid, "approved", None)
        return row.id


def test_a_matching_template_is_used_and_then_no_sms_fallback(
    call: Call, db: Database, org: Org
) -> None:
    template = _template(db, org, "Your code is #CODE#", ["vk"])
    contact = _contact(call, phone=PHONE, vkId=7)
    body = {"contactId": contact, "message": {"text": "Your code is 1234"}}
    matched = call("/notifications/send", {**body, "channels": [{"name": "vk"}]})
    step = _message(db, matched["id"]).route
    assert [s["extra"]["designation"] for s in step] == ["vk"]
    assert step[0]["extra"]["template"] == {"id": template, "variables": {"CODE": "1234"}}
    # A text no template matches: SMS is added as the last step.
    other = call(
        "/notifications/send",
        {**body, "message": {"text": "Something else"}, "channels": [{"name": "vk"}]},
    )
    assert _route(db, other["id"]) == [("vk", "vk"), ("sms", "sms")]


def test_whatsapp_business_takes_only_approved_templates_else_sms(
    call: Call, client: Any, db: Database, org: Org
) -> None:
    admin = org.headers()
    account = client.post("/api/gateway/account-token", headers=admin).json()["token"]
    client.post(
        "/add-device",
        data={"name": "Shop", "device": "6281234567001"},
        headers={"Authorization": account},
    )
    device = client.get("/api/gateway/devices", headers=admin).json()["items"][0]["id"]
    cloud = {"phone_number_id": "1234567890", "access_token": "EAAG-test"}
    moved = client.put(
        f"/api/gateway/devices/{device}/driver",
        json={"provider": "whatsapp_cloud", "settings": cloud},
        headers=admin,
    )
    assert moved.status_code == 200, moved.text
    body = {
        "phone": PHONE,
        "message": {"text": "Free text"},
        "channels": [{"name": "whatsapp-business"}],
    }
    answer = call("/notifications/send", body)
    assert _route(db, answer["id"]) == [("sms", "sms")]


def test_a_templates_only_connection_is_skipped_without_a_matching_template(
    call: Call, db: Database, org: Org
) -> None:
    _set(db, org, "viber", templates_only=True)
    body = {
        "phone": PHONE,
        "message": {"text": "Free text"},
        "channels": [{"name": "viber"}, {"name": "sms"}],
    }
    assert _route(db, call("/notifications/send", body)["id"]) == [("sms", "sms")]
    _template(db, org, "Free #WHAT#", ["viber"])
    assert _route(db, call("/notifications/send", body)["id"]) == [
        ("viber", "viber"),
        ("sms", "sms"),
    ]


# --- attachments --------------------------------------------------------------------

IMAGE = "https://cdn.example.com/a/photo.png"


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("channel", "attachments", "why"),
    [
        ("sms", [IMAGE], "sms takes no attachments"),
        ("notify+vk", [IMAGE], "notify takes no attachments"),
        ("viber", [IMAGE, IMAGE], "viber takes at most 1 attachment"),
        ("instagram", ["https://cdn.example.com/c.pdf"], "instagram takes only image"),
    ],
)
def test_attachments_a_channel_cannot_carry_are_refused(
    call: Call, db: Database, channel: str, attachments: list[str], why: str
) -> None:
    body = {
        "phone": PHONE,
        "message": {"text": "See", "attachments": attachments},
        "channels": [{"name": channel}],
    }
    refused = call("/notifications/send", body, error=True)
    assert refused["code"] == "attachments_not_allowed" and why in refused["desc"]
    assert _count(db, Message) == 0 and _count(db, Contact) == 0


def test_one_image_goes_to_viber_and_several_files_to_vk(call: Call, db: Database) -> None:
    contact = _contact(call, phone=PHONE, vkId=9)
    image = {"url": IMAGE, "name": "photo.png"}
    viber = call(
        "/notifications/send",
        {
            "contactId": contact,
            "message": {"text": "See", "attachments": [image]},
            "channels": [{"name": "viber"}],
        },
    )
    step = _message(db, viber["id"]).route
    assert step[0]["image"] == IMAGE and len(step) == 1  # no SMS fallback with attachments
    files = [IMAGE, {"url": "https://cdn.example.com/c.pdf", "type": "document"}]
    vk = call(
        "/notifications/send",
        {
            "contactId": contact,
            "message": {"text": "See", "attachments": files},
            "channels": [{"name": "vk"}],
        },
    )
    assert _message(db, vk["id"]).route[0]["extra"]["attachments"] == [
        {"url": IMAGE, "type": "image"},
        {"url": "https://cdn.example.com/c.pdf", "type": "file"},
    ]


# --- statuses -----------------------------------------------------------------------


def test_a_block_by_the_user_and_an_expiry_are_reported_in_the_seeds_words(
    hooked: Call, db: Database
) -> None:
    pipeline = Pipeline(db)
    blocked = hooked(
        "/notifications/send",
        {"phone": "79161041102", "message": {"text": "Hi"}, "channels": [{"name": "sms"}]},
    )  # the sandbox: ...04CCCC fails with code CCCC, 1102 "blocked by the VK.com user"
    pipeline.run_until_idle()
    assert _statuses(db) == [("sent", "sms"), ("blocked_by_user", "sms")]
    assert _events(db)[-1]["data"]["statusDetails"] == {"desc": "Sandbox error"}
    assert _message(db, blocked["id"]).status == "error"

    silent = hooked(
        "/notifications/send",
        {"phone": "79161000002", "message": {"text": "Hi"}, "channels": [{"name": "vk+sms"}]},
    )  # ...000002: no report at all; the contact has no vkId, so sms alone
    pipeline.run_until_idle()
    jump(db, 172_801)
    pipeline.run_until_idle()
    mine = [e["data"] for e in _events(db) if e["data"]["id"] == silent["id"]]
    assert [(d["status"], d["channel"]) for d in mine] == [("sent", "sms"), ("expired", "sms")]
    assert mine[-1]["statusDetails"]["desc"] == "Possible delivery time is up"


def test_no_callback_server_no_events_and_the_message_still_goes(call: Call, db: Database) -> None:
    answer = call("/notifications/send", {"phone": PHONE, "message": {"text": "Hi"}})
    Pipeline(db).run_until_idle()
    assert _events(db) == [] and _message(db, answer["id"]).status == "read"


# --- refusals: nothing written ------------------------------------------------------


def test_phone_or_contact_id_exactly_one(call: Call, db: Database) -> None:
    contact = _contact(call, phone=PHONE)
    for body in (
        {"message": {"text": "Hi"}},
        {"phone": PHONE, "contactId": contact, "message": {"text": "Hi"}},
    ):
        assert call("/notifications/send", body, error=True)["code"] == "phone_or_contact"
    assert _count(db, Message) == 0


def test_another_organizations_ids_read_as_unknown(
    call: Call, db: Database, make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    theirs = _contact(lambda p, b: call(p, b, who=other), phone=PHONE)
    refused = call(
        "/notifications/send", {"contactId": theirs, "message": {"text": "Hi"}}, error=True
    )
    unknown = call(
        "/notifications/send", {"contactId": "0" * 24, "message": {"text": "Hi"}}, error=True
    )
    assert refused["code"] == unknown["code"] == "contact_not_found"
    assert refused["desc"] == unknown["desc"]
    their_sms = _ids(db, other)["sms"]
    body = {
        "phone": "79160000001",
        "message": {"text": "Hi"},
        "channels": [{"name": "sms", "connections": [their_sms]}],
    }
    assert call("/notifications/send", body, error=True)["code"] == "connection_not_found"
    assert _count(db, Message) == 0
    assert _count(db, Contact) == 1  # theirs; no contact was created for the refused phone


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"channels": [{"name": "pigeon"}]}, "invalid_channel"),
        ({"channels": [{"name": "sms", "ttl": 5}]}, "invalid_ttl"),
        ({"channels": []}, "invalid_field"),
        ({"phone": "12"}, "1010"),
        ({"message": {"text": ""}}, "invalid_field"),
        ({"message": {"text": "Hi", "attachments": ["ftp://x/y.png"]}}, "invalid_attachment"),
        (
            {"message": {"text": "Hi", "attachments": [{"url": IMAGE, "type": "hologram"}]}},
            "invalid_attachment",
        ),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    call: Call, db: Database, changes: dict[str, Any], code: str
) -> None:
    body = {"phone": PHONE, "message": {"text": "Hi"}, **changes}
    assert call("/notifications/send", body, error=True)["code"] == code
    assert _count(db, Message) == 0 and _count(db, Contact) == 0


def test_a_connection_of_another_channel_is_refused_and_no_contact_is_left(
    call: Call, db: Database, org: Org
) -> None:
    body = {
        "phone": PHONE,
        "message": {"text": "Hi"},
        "channels": [{"name": "vk", "connections": [_ids(db, org)["sms"]]}],
    }
    assert call("/notifications/send", body, error=True)["code"] == "connection_channel_mismatch"
    assert _count(db, Contact) == 0 and _count(db, Message) == 0


def test_no_funds_refuses_the_notification_and_undoes_its_new_contact(
    call: Call, db: Database, org: Org
) -> None:
    from omnirelay.billing import service as billing

    with db.transaction() as session:
        billing.set_price(session, org.id, "sms", 10**12)
    body = {"phone": PHONE, "message": {"text": "Hi"}, "channels": [{"name": "sms"}]}
    assert call("/notifications/send", body, error=True)["code"] == "1015"
    assert _count(db, Contact) == 0 and _count(db, Message) == 0
    # A known contact's notification is accepted with the group commit of the single
    # sends: refused the same way.
    _contact(call, phone=PHONE)
    refused = call("/notifications/send", body, error=True)
    assert refused["code"] == "1015" and "funds" in refused["desc"]
    assert _count(db, Message) == 0


def test_a_whatsapp_device_is_the_whatsapp_channel_in_events(
    hooked: Call, client: Any, db: Database, org: Org
) -> None:
    admin = org.headers()
    account = client.post("/api/gateway/account-token", headers=admin).json()["token"]
    added = client.post(
        "/add-device",
        data={"name": "Shop", "device": "6281234567001"},
        headers={"Authorization": account},
    ).json()
    assert added["status"] is True, added
    body = {"phone": PHONE, "message": {"text": "Hi"}, "channels": [{"name": "whatsapp"}]}
    answer = hooked("/notifications/send", body)
    assert _route(db, answer["id"]) == [("whatsapp", "whatsapp"), ("sms", "sms")]
    pipeline = Pipeline(db)
    pipeline.run_until_idle()
    jump(db, 10)  # the device sandbox's own report delays
    pipeline.run_until_idle()
    assert _statuses(db) == [("sent", "whatsapp"), ("delivered", "whatsapp"), ("read", "whatsapp")]


# --- the planning cache (notifications/cache.py) ---------------------------------------


def test_the_organizations_planning_reads_are_cached_and_a_change_is_seen_at_once(
    call: Call, db: Database, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from omnirelay.connections.models import ChannelConnection
    from omnirelay.notifications import cache

    now = [0.0]
    planning = cache.PlanningCache(clock=lambda: now[0])
    monkeypatch.setattr(cache, "CACHE", planning)
    contact = _contact(call, phone=PHONE, vkId=7)
    body = {
        "contactId": contact,
        "message": {"text": "Your code is 1234"},
        "channels": [{"name": "vk"}, {"name": "sms"}],
    }
    for _ in range(3):
        assert _route(db, call("/notifications/send", body)["id"]) == [("vk", "vk"), ("sms", "sms")]
    assert planning.reads == 1  # one snapshot for the three
    # A change committed in this process: seen by the next notification.
    template = _template(db, org, "Your code is #CODE#", ["vk"])
    step = _message(db, call("/notifications/send", body)["id"]).route
    assert step[0]["extra"]["template"]["id"] == template
    _set(db, org, "vk", active=False)
    assert _route(db, call("/notifications/send", body)["id"]) == [("sms", "sms")]
    assert planning.reads == 3
    # Another process's change (a write this process's ORM never saw): within the TTL.
    with db.transaction() as session:
        session.execute(
            update(ChannelConnection)
            .where(ChannelConnection.organization_id == org.id)
            .values(active=True)
        )
    assert _route(db, call("/notifications/send", body)["id"]) == [("sms", "sms")]
    now[0] += cache.TTL
    assert _route(db, call("/notifications/send", body)["id"]) == [("vk", "vk"), ("sms", "sms")]
    assert planning.reads == 4


def test_a_rolled_back_change_does_not_invalidate_and_does_not_break_the_rollback(
    call: Call, db: Database, org: Org
) -> None:
    from omnirelay.connections import service as connections
    from omnirelay.notifications import cache

    class Boom(Exception):
        pass

    before = dict(cache._generations)
    with pytest.raises(Boom), db.transaction() as session:
        row = connections.list_connections(session, org.id)[0]
        connections.update(session, org.id, row.id, {"active": False})
        session.flush()  # the watched write happens, then the transaction is undone
        raise Boom
    assert cache._generations.get(org.id) == before.get(org.id)
    with db.read() as session:
        assert all(r.active for r in connections.list_connections(session, org.id))
