"""Merging contacts that share a channel id, and the callback events of contacts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from omnirelay.contacts import service as contacts
from omnirelay.contacts import unit
from omnirelay.contacts.models import Contact
from omnirelay.contacts.schemas import NewContact, VariableValue
from omnirelay.db import Database
from omnirelay.webhooks.models import WebhookEvent
from tests.conftest import Org
from tests.platform.conftest import Call

HOOK = "https://8.8.8.8/hook"  # a public address: nothing is sent, no worker runs


def _events(db: Database) -> list[dict[str, Any]]:
    with db.read() as session:
        rows = session.scalars(select(WebhookEvent).order_by(WebhookEvent.seq))
        return [dict(e.payload) for e in rows]


def _two(call: Call) -> tuple[dict[str, Any], dict[str, Any]]:
    orders = call("/variables/create", {"name": "Orders", "validateAs": "NUMBER"})["id"]
    a = call(
        "/contacts/create",
        [{"phone": "79990000021", "vkId": 21, "variables": [{"name": "City", "value": "Moscow"}]}],
    )["data"][0]
    b = call(
        "/contacts/create",
        [
            {
                "phone": "79990000022",
                "telegramId": 22,
                "vk": {"first_name": "Ivan"},
                "variables": [{"name": "City", "value": "Kazan"}, {"id": orders, "value": 3}],
            }
        ],
    )["data"][0]
    return a, b


def test_update_to_a_held_phone_merges_into_the_older(call: Call, db: Database) -> None:
    a, b = _two(call)
    call("/callback/set", {"callbackUrl": HOOK, "secret": "s3"})
    call("/contacts/update", {"contactId": b["id"], "phone": "+79990000021"})
    kept = call("/contacts/get", {"id": a["id"]})
    assert call("/contacts/get", {"id": b["id"]}) == kept  # the merged-away id redirects
    assert kept["phone"] == "+79990000021" and kept["vkId"] == 21 and kept["telegramId"] == 22
    assert kept["vk"] == {"first_name": "Ivan"}
    assert {v["name"]: v["value"] for v in kept["variables"]} == {"City": "Moscow", "Orders": 3}
    assert call("/contacts")["total"] == 1
    [event] = _events(db)
    assert event["type"] == event["name"] == "contact_merged" and event["secret"] == "s3"
    assert event["data"]["preservedContact"]["id"] == a["id"]
    assert event["data"]["preservedContact"]["telegramId"] == 22
    deleted = event["data"]["deletedContact"]
    assert deleted["id"] == b["id"] and deleted["phone"] == "+79990000022"


def test_the_older_contact_given_the_newer_ones_id_is_kept(call: Call) -> None:
    a, b = _two(call)
    call("/contacts/update", {"contactId": a["id"], "telegramId": 22})
    kept = call("/contacts/get", {"id": a["id"]})
    assert kept["telegramId"] == 22 and kept["phone"] == "+79990000021"
    assert call("/contacts/get", {"id": b["id"]})["id"] == a["id"]
    assert call("/contacts")["total"] == 1


def test_create_matching_two_contacts_merges_them(call: Call, db: Database) -> None:
    a, b = _two(call)
    call("/callback/set", {"callbackUrl": HOOK})
    [one] = call("/contacts/create", [{"phone": "79990000021", "telegramId": 22}])["data"]
    assert one["id"] == a["id"] and call("/contacts")["total"] == 1
    assert call("/contacts/get", {"id": b["id"]})["id"] == a["id"]
    assert [e["type"] for e in _events(db)] == ["contact_merged", "contact_updated"]


def test_a_merged_away_id_names_the_kept_contact(call: Call, make_org: Callable[..., Org]) -> None:
    """Calls with a deleted contact's id reach the contact it was merged into, through
    merges of merges, and only in its organization."""
    a, b = _two(call)
    c = call("/contacts/create", [{"phone": "79990000023"}])["data"][0]
    call("/contacts/update", {"contactId": c["id"], "phone": "79990000022"})  # c into b
    assert call("/contacts/get", {"id": c["id"]})["id"] == b["id"]
    call("/contacts/update", {"contactId": b["id"], "phone": "79990000021"})  # b into a
    for gone in (b["id"], c["id"]):
        assert call("/contacts/get", {"id": gone})["id"] == a["id"], gone
    call("/contacts/update", {"contactId": c["id"], "fbId": "fb-7"})
    assert call("/contacts/get", {"id": a["id"]})["fbId"] == "fb-7"
    call("/variables/set", {"contactId": b["id"], "variables": [{"name": "City", "value": "Ufa"}]})
    shown = {v["name"]: v["value"] for v in call("/contacts/get", {"id": a["id"]})["variables"]}
    assert shown["City"] == "Ufa"
    status = call("/deals/attributes/list")["data"][0]
    deal = call(
        "/deals/create",
        {
            "name": "Order",
            "contactId": c["id"],
            "attributes": [{"id": status["id"], "value": status["options"][0]}],
        },
    )
    assert deal["contactId"] == a["id"]
    other = make_org("Other", "admin@other.test")
    assert call("/contacts/get", {"id": b["id"]}, who=other, error=True)["code"] == (
        "contact_not_found"
    )
    assert call("/contacts")["total"] == 1


def test_events_of_create_and_update(call: Call, db: Database) -> None:
    call("/contacts/create", [{"phone": "79990000030"}])  # no callback server: no event
    assert _events(db) == []
    call("/callback/set", {"callbackUrl": HOOK})
    made = call("/contacts/create", [{"phone": "79990000031"}, {"phone": "79990000032"}])["data"]
    call(
        "/variables/set",
        {"contactId": made[0]["id"], "variables": [{"name": "City", "value": "Ufa"}]},
    )
    call("/contacts/update", {"contactId": made[1]["id"], "vkId": 9})
    created, set_vars, updated = _events(db)
    assert created["type"] == "contact_created"
    assert [c["id"] for c in created["data"]] == [c["id"] for c in made]  # an array
    assert set_vars["type"] == "contact_updated" and set_vars["data"]["id"] == made[0]["id"]
    assert set_vars["data"]["variables"][0]["value"] == "Ufa"  # all fields, not just the change
    assert updated["data"]["vkId"] == 9 and updated["data"]["phone"] == "+79990000032"
    call("/contacts/create", [{"phone": "bad"}], error=True)  # refused: no event
    assert len(_events(db)) == 3


def test_concurrent_creates_and_merges_leave_no_duplicate(db: Database, org: Org) -> None:
    phones = [f"7999100{i:04d}" for i in range(40)]

    def creator(offset: int) -> None:
        for start in range(0, len(phones), 10):
            batch = phones[start : start + 10]
            batch = batch[offset:] + batch[:offset]  # another order in each thread
            items = [
                NewContact(ids={"phone": p}, variables=[VariableValue("City", str(offset))])
                for p in batch
            ]
            unit.run(db, lambda s, items=items: contacts.create(s, org.id, items))

    def merger() -> None:
        for i in range(0, 20):

            def work(s: Any, i: int = i) -> None:
                found = contacts.find_by_channel_id(s, org.id, "phone", phones[i])
                if found is not None:
                    contacts.update_channel_id(s, org.id, found.id, "vkId", str(i % 5))

            unit.run(db, work)

    errors: list[BaseException] = []

    def guarded(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(creator, n)) for n in range(4)]
    threads.append(threading.Thread(target=guarded, args=(merger,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(Contact))
        distinct = session.scalar(select(func.count(func.distinct(Contact.phone))))
        vk = session.scalar(select(func.count(Contact.vk_id)))
        vk_distinct = session.scalar(select(func.count(func.distinct(Contact.vk_id))))
    assert errors == []
    assert total == distinct  # no phone held twice
    assert vk == vk_distinct
    # However the threads interleaved, each vkId given is on one contact (those it met
    # were merged into it), and no contact is lost but by a merge.
    assert vk is not None and vk <= 5 and total is not None and total >= 40 - 20 + vk


def test_find_or_create_by_channel_id(db: Database, org: Org, call: Call) -> None:
    """What inbound messages and sends by phone use: one contact per channel id."""

    def run(value: str) -> tuple[str, bool]:
        def work(s: Any) -> tuple[str, bool]:
            contact, made = contacts.find_or_create(s, org.id, "phone", value)
            return contact.id, made

        return unit.run(db, work)

    first, made = run("+7 999 000-00-60")
    assert made is True
    assert run("89990000060") == (first, False)
    assert call("/contacts/get", {"id": first})["phone"] == "+79990000060"
    vk, made = unit.run(db, lambda s: contacts.find_or_create(s, org.id, "vkId", 60))
    assert made is True and vk.id != first and call("/contacts")["total"] == 2
