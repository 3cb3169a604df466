"""/user/template2/group/*: a template is in one group at most, and templates that share a
channel cannot be grouped, however the channel gets there (v2 or v3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from omnirelay.db import Database
from tests.conftest import Org
from tests.platform.conftest import Call
from tests.platform.test_templates import STAMP, counts, create, listed, one


def group(call: Call, name: str, *ids: int, error: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = call(
        "/template2/group/create", {"name": name, "templates": list(ids)}, error=error
    )
    return answer


def test_a_group_is_shown_with_each_of_its_templates(call: Call) -> None:
    a = create(call, "A #X#.", "sms", displayName="A")["id"]
    b = create(call, "B #X#.", "viber", "vk", displayName="B")["id"]
    alone = create(call, "C #X#.", "sms")["id"]
    answer = group(call, "A group of templates", a, b, a)  # a repeat counts once
    assert set(answer) == {"result", "id", "name", "created_at", "updated_at"}
    assert answer["name"] == "A group of templates"
    assert STAMP.match(answer["created_at"]) and STAMP.match(answer["updated_at"])
    for template_id in (a, b):
        item = one(call, template_id)
        assert item["templateGroupId"] == answer["id"]
        assert item["groupName"] == "A group of templates"
        assert [m["id"] for m in item["group"]] == [a, b]
        assert set(item["group"][1]) == {
            "id",
            "displayName",
            "text",
            "regexpText",
            "name",
            "channels",
        }
        assert [c["channel"] for c in item["group"][1]["channels"]] == ["viber", "vk"]
    assert one(call, alone)["templateGroupId"] is None


def test_grouping_refusals_write_nothing(
    call: Call, db: Database, make_org: Callable[..., Org]
) -> None:
    a = create(call, "A #X#.", "sms", "telegram")["id"]
    b = create(call, "B #X#.", "telegram")["id"]
    c = create(call, "C #X#.", "viber")["id"]
    d = create(call, "D #X#.", "vk")["id"]
    theirs = call("/template2/create", {"text": "T #X#."}, who=make_org("Other", "o@o.test"))
    before = counts(db)
    refused = group(call, "G", a, b, error=True)
    assert refused["code"] == "group_channel_conflict" and "'telegram'" in refused["desc"]
    assert f"templates {a} and {b}" in refused["desc"]
    assert group(call, "G", c, theirs["id"], error=True)["code"] == "template_not_found"
    assert group(call, "G", c, 10**9, error=True)["code"] == "template_not_found"
    assert group(call, "G", error=True)["code"] == "invalid_field"
    assert group(call, "", c, error=True)["code"] == "invalid_field"
    assert counts(db) == before
    assert all(t["templateGroupId"] is None for t in listed(call))

    first = group(call, "First", a, c)["id"]
    refused = group(call, "Second", c, d, error=True)
    assert refused["code"] == "template_in_group" and f"group {first}" in refused["desc"]
    assert one(call, d)["templateGroupId"] is None


def test_add_to_and_remove_from_a_group(call: Call, make_org: Callable[..., Org]) -> None:
    a = create(call, "A #X#.", "sms")["id"]
    b = create(call, "B #X#.", "viber")["id"]
    c = create(call, "C #X#.", "sms", "vk")["id"]
    d = create(call, "D #X#.", "vk")["id"]
    g = group(call, "G", a)["id"]
    add = "/template2/group/add"
    assert call(add, {"templateId": b, "templateGroupId": g}) == {"result": "success"}
    assert call(add, {"templateId": b, "templateGroupId": g}) == {"result": "success"}  # there
    assert [m["id"] for m in one(call, a)["group"]] == [a, b]
    refused = call(add, {"templateId": c, "templateGroupId": g}, error=True)
    assert refused["code"] == "group_channel_conflict" and one(call, c)["templateGroupId"] is None
    refused = call(add, {"templateId": d, "templateGroupId": 10**9}, error=True)
    assert refused["code"] == "group_not_found"
    other = make_org("Other", "o@o.test")
    their_template = call("/template2/create", {"text": "T #X#."}, who=other)["id"]
    their_group = group_as(call, other, their_template)
    refused = call(add, {"templateId": d, "templateGroupId": their_group}, error=True)
    assert refused["code"] == "group_not_found"
    refused = call(add, {"templateId": their_template, "templateGroupId": g}, error=True)
    assert refused["code"] == "template_not_found"
    h = group(call, "H", d)["id"]
    refused = call(add, {"templateId": d, "templateGroupId": g}, error=True)
    assert refused["code"] == "template_in_group"

    remove = "/template2/group/remove"
    assert call(remove, {"templateId": a}) == {"result": "success"}
    assert one(call, a)["templateGroupId"] is None
    assert [m["id"] for m in one(call, b)["group"]] == [b]
    assert call(remove, {"templateId": a}, error=True)["code"] == "template_not_in_group"
    # The last template out: the group goes with it.
    call(remove, {"templateId": d})
    refused = call(add, {"templateId": c, "templateGroupId": h}, error=True)
    assert refused["code"] == "group_not_found"
    # Deleting a template takes it out of its group too.
    call("/template2/delete", {"templateId": b})
    refused = call(add, {"templateId": a, "templateGroupId": g}, error=True)
    assert refused["code"] == "group_not_found"


def group_as(call: Call, who: Org, template_id: int) -> int:
    answer = call(
        "/template2/group/create", {"name": "Theirs", "templates": [template_id]}, who=who
    )
    group_id: int = answer["id"]
    return group_id


def test_a_channel_another_member_has_cannot_be_added(
    call: Call, client: TestClient, org: Org, db: Database
) -> None:
    a = create(call, "A #X#.", "sms")["id"]
    b = create(call, "B #X#.", "viber")["id"]
    group(call, "G", a, b)
    before = counts(db)
    refused = call(
        "/template2/channel/add", {"templateId": b, "channel": {"channel": "sms"}}, error=True
    )
    assert refused["code"] == "group_channel_conflict"
    # Through /v3 as well: the same rule, in seed 001's shape.
    uuid = next(
        t["id"]
        for t in client.post("/v3/template/show", headers=org.token).json()["data"]
        if t["text"] == "B #X#."
    )
    r = client.post(
        "/v3/template/change",
        headers=org.token,
        json={"id": uuid, "options": {"channels": ["viber", "sms"]}},
    )
    assert r.status_code == 400 and r.json()["code"] == 1052, r.text
    assert counts(db) == before
    # A channel no member has is fine.
    call("/template2/channel/add", {"templateId": b, "channel": {"channel": "vk"}})
    assert [c["channel"] for c in one(call, b)["channels"]] == ["viber", "vk"]
