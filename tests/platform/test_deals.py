"""Deals and deal attributes through /user/deals/*."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Org
from tests.platform.conftest import Call


@pytest.fixture
def setup(call: Call) -> dict[str, Any]:
    attrs = {a["name"]: a for a in call("/deals/attributes/list")["data"]}
    city = call(
        "/deals/attributes/create",
        {"name": "City", "type": "STRING", "required": True, "apiField": "order.city"},
    )
    contact = call("/contacts/create", [{"phone": "79990000051"}])["data"][0]["id"]
    return {
        "status": attrs["Status"]["id"],
        "amount": attrs["Amount"]["id"],
        "pname": attrs["Name"]["id"],
        "cost": attrs["Cost"]["id"],
        "city": city["id"],
        "contact": contact,
    }


def _deal(s: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "name": "Order 1",
        "attributes": [
            {"id": s["city"], "value": "Moscow"},
            {"id": s["amount"], "value": "1500.5"},
            {"id": s["status"], "value": "New"},
        ],
        "products": [
            {"attributes": [{"id": s["pname"], "value": "Tea"}, {"id": s["cost"], "value": 3}]}
        ],
        "contactId": s["contact"],
    }
    return body | extra


def test_default_attributes_and_attribute_lifecycle(call: Call) -> None:
    listed = call("/deals/attributes/list")["data"]
    assert [(a["name"], a["entity"], a["type"], a["isDefault"]) for a in listed] == [
        ("Status", "deal", "SELECT", True),
        ("Amount", "deal", "NUMBER", True),
        ("Name", "product", "STRING", True),
        ("Cost", "product", "NUMBER", True),
    ]
    made = call(
        "/deals/attributes/create",
        {"name": "Size", "type": "SELECT", "options": ["S", "M"], "entity": "product"},
    )
    assert made["isDefault"] is False and made["active"] is True and made["required"] is False
    changed = call("/deals/attributes/update", {"id": made["id"], "options": ["S", "M", "L"]})
    assert changed["options"] == ["S", "M", "L"] and changed["name"] == "Size"
    refusals = [
        ({"name": "X", "type": "SELECT"}, "invalid_field"),  # no options
        ({"name": "X", "type": "NUMBER", "options": [1]}, "invalid_field"),
        ({"name": "Size", "type": "STRING", "entity": "product"}, "attribute_exists"),
        ({"name": "X", "type": "COLOR"}, "invalid_field"),
    ]
    for body, code in refusals:
        assert call("/deals/attributes/create", body, error=True)["code"] == code, body
    status = listed[0]["id"]
    assert (
        call("/deals/attributes/update", {"id": status, "type": "STRING"}, error=True)["code"]
        == "1058"
    )
    assert call("/deals/attributes/delete", {"id": status}, error=True)["code"] == "1058"
    call("/deals/attributes/delete", {"id": made["id"]})
    assert len(call("/deals/attributes/list")["data"]) == 4


def test_create_list_update_delete(call: Call, setup: dict[str, Any]) -> None:
    s = setup
    deal = call("/deals/create", _deal(s))
    assert deal["name"] == "Order 1" and deal["contactId"] == s["contact"]
    values = {a["name"]: a["value"] for a in deal["attributes"]}
    assert values == {"City": "Moscow", "Amount": 1500.5, "Status": "New"}
    city = next(a for a in deal["attributes"] if a["name"] == "City")
    assert city["apiField"] == "order.city" and city["required"] is True
    [product] = deal["products"]
    assert product["dealId"] == deal["id"]
    assert {a["name"]: a["value"] for a in product["attributes"]} == {"Name": "Tea", "Cost": 3}

    second = call("/deals/create", _deal(s, name="Order 2"))
    listed = call(
        "/deals/list", {"filter": {}, "offset": 0, "limit": 10, "order": [["createdAt", "DESC"]]}
    )
    assert listed["total"] == 2 and [d["name"] for d in listed["data"]] == ["Order 2", "Order 1"]
    flt = {
        "union": "and",
        "conditions": [
            {"field": s["amount"], "op": "gt", "value": 1000},
            {"field": "name", "op": "contains", "value": "2"},
        ],
    }
    assert [d["id"] for d in call("/deals/list", {"filter": flt})["data"]] == [second["id"]]

    # Full replacement: Status not given is unlinked; the product given by id is replaced,
    # a product without id is added.
    update = {
        "id": deal["id"],
        "name": "Order 1b",
        "attributes": [{"id": s["city"], "value": "Kazan"}],
        "products": [
            {"id": product["id"], "attributes": [{"id": s["cost"], "value": 4}]},
            {"attributes": [{"id": s["pname"], "value": "Cake"}]},
        ],
        "contactId": s["contact"],
    }
    updated = call("/deals/update", update)
    assert {a["name"]: a["value"] for a in updated["attributes"]} == {"City": "Kazan"}
    assert [p["id"] == product["id"] for p in updated["products"]] == [True, False]
    assert {a["name"]: a["value"] for a in updated["products"][0]["attributes"]} == {"Cost": 4}

    call(
        "/deals/setAttribute",
        {"dealId": deal["id"], "attributeId": s["city"], "productId": None, "value": "Ufa"},
    )
    call(
        "/deals/setAttribute",
        {"dealId": deal["id"], "attributeId": s["cost"], "productId": product["id"], "value": 9},
    )
    got = call(
        "/deals/list",
        {
            "filter": {
                "union": None,
                "conditions": [{"field": "id", "op": "eq", "value": deal["id"]}],
            }
        },
    )["data"][0]
    assert {a["name"]: a["value"] for a in got["attributes"]} == {"City": "Ufa"}
    assert got["products"][0]["attributes"][0]["value"] == 9
    not_linked = {"dealId": deal["id"], "attributeId": s["status"], "value": "New"}
    assert call("/deals/setAttribute", not_linked, error=True)["code"] == "attribute_not_linked"
    required = {"dealId": deal["id"], "attributeId": s["city"], "value": None}
    assert call("/deals/setAttribute", required, error=True)["code"] == "1053"

    assert call("/deals/delete", {"id": deal["id"]})["data"] is True
    batch = call("/deals/delete", [{"id": second["id"]}, {"id": deal["id"]}])["data"]
    assert batch[0] is True and batch[1]["code"] == "deal_not_found"
    assert call("/deals/list", {})["total"] == 0


def test_batch_create_errors_at_their_index(call: Call, setup: dict[str, Any]) -> None:
    s = setup
    missing_city = _deal(s)
    missing_city["attributes"] = missing_city["attributes"][1:]
    bad_status = _deal(s)
    bad_status["attributes"][2]["value"] = "Lost"  # not an option
    wrong_entity = _deal(s)
    wrong_entity["attributes"].append({"id": s["cost"], "value": 1})
    answer = call(
        "/deals/create",
        [_deal(s), missing_city, bad_status, wrong_entity, _deal(s, contactId="nope")],
    )
    data = answer["data"]
    assert "id" in data[0] and "error" not in data[0]
    assert [d.get("code") for d in data[1:]] == ["1053", "1056", "1052", "contact_not_found"]
    assert all(isinstance(d["error"], str) and d["error"] for d in data[1:])
    assert call("/deals/list", {})["total"] == 1
    single = call("/deals/create", _deal(s, contactId="nope"), error=True)
    assert single["code"] == "contact_not_found"


def test_types_and_filters(call: Call, setup: dict[str, Any]) -> None:
    s = setup
    kinds = {
        "When": ("DATETIME", None),
        "Paid": ("BOOLEAN", None),
        "Tags": ("MULTISELECT", ["a", "b"]),
        "Site": ("URL", None),
        "Due": ("DATE", None),
    }
    ids = {}
    for name, (kind, options) in kinds.items():
        ids[name] = call(
            "/deals/attributes/create", {"name": name, "type": kind, "options": options}
        )["id"]
    good = _deal(s)
    good["attributes"] += [
        {"id": ids["When"], "value": "2024-05-10T10:00:00+03:00"},
        {"id": ids["Paid"], "value": True},
        {"id": ids["Tags"], "value": ["b", "a"]},
        {"id": ids["Site"], "value": "https://example.com/x"},
        {"id": ids["Due"], "value": "10.05.2024"},
    ]
    made = call("/deals/create", good)
    shown = {a["name"]: a["value"] for a in made["attributes"]}
    assert shown["When"] == "2024-05-10T07:00:00.000Z" and shown["Paid"] is True
    assert shown["Tags"] == ["b", "a"] and shown["Due"] == "2024-05-10"
    for name, value, code in [
        ("When", "soon", "1054"),
        ("Paid", "yes", "1056"),
        ("Tags", ["c"], "1056"),
        ("Site", "ftp://x", "1056"),
        ("Due", "2024-13-01", "1054"),
    ]:
        bad = _deal(s)
        bad["attributes"].append({"id": ids[name], "value": value})
        assert call("/deals/create", bad, error=True)["code"] == code, name

    def count(field: str, op: str, value: Any = None) -> int:
        flt = {"union": None, "conditions": [{"field": field, "op": op, "value": value}]}
        return int(call("/deals/list", {"filter": flt})["total"])

    call("/deals/create", _deal(s, name="Plain"))
    assert count(ids["Paid"], "eq", True) == 1
    assert count(ids["Paid"], "neq", True) == 1  # no value: not equal
    assert count(ids["Due"], "before", "2024-06-01") == 1
    assert count(ids["When"], "after", "2024-05-10T06:00:00Z") == 1
    assert count(ids["Tags"], "exists") == 1 and count(ids["Tags"], "nexists") == 1
    assert count("contactId", "eq", s["contact"]) == 2
    assert count(ids["Tags"], "has", "a") == 1 and count(ids["Tags"], "nhas", "a") == 1
    for flt in (
        {"union": None, "conditions": [{"field": ids["Paid"], "op": "gt", "value": 1}]},
        {"union": None, "conditions": [{"field": ids["Tags"], "op": "has", "value": "z"}]},
        {"union": None, "conditions": [{"field": ids["Paid"], "op": "has", "value": True}]},
        {"union": None, "conditions": [{"field": s["cost"], "op": "contains", "value": 1}]},
        {"union": None, "conditions": [{"field": "nosuch", "op": "eq", "value": 1}]},
        {"union": None, "conditions": [{"field": "name", "op": {"a": 1}, "value": 1}]},
    ):
        assert call("/deals/list", {"filter": flt}, error=True)["code"] == "invalid_filter"
    assert (
        call("/deals/list", {"order": [["nosuch", "ASC"]]}, error=True)["code"] == "invalid_order"
    )


def test_filters_on_product_attributes_and_multiselect_options(
    call: Call, setup: dict[str, Any]
) -> None:
    """A product condition matches a deal one of whose products matches it; a negative
    one, a deal none of whose products matches its positive twin. ``has``/``nhas`` test a
    MULTISELECT's options, on deals and on products."""
    s = setup
    size = call(
        "/deals/attributes/create",
        {"name": "Sizes", "type": "MULTISELECT", "options": ["S", "M", "L"], "entity": "product"},
    )["id"]

    def product(name: str, cost: float, sizes: list[str] | None = None) -> dict[str, Any]:
        attrs: list[dict[str, Any]] = [
            {"id": s["pname"], "value": name},
            {"id": s["cost"], "value": cost},
        ]
        if sizes is not None:
            attrs.append({"id": size, "value": sizes})
        return {"attributes": attrs}

    tea = call("/deals/create", _deal(s, name="Tea", products=[product("Tea", 3, ["S"])]))
    both = call(
        "/deals/create",
        _deal(s, name="Both", products=[product("Tea", 5, ["M", "L"]), product("Cake", 40)]),
    )
    none = call("/deals/create", _deal(s, name="None", products=[]))

    def names(*conditions: dict[str, Any], union: str | None = None) -> set[str]:
        flt = {"union": union, "conditions": list(conditions)}
        listed = call("/deals/list", {"filter": flt})
        assert listed["total"] == len(listed["data"])
        return {d["name"] for d in listed["data"]}

    def c(field: str, op: str, value: Any = None) -> dict[str, Any]:
        return {"field": field, "op": op, "value": value}

    assert names(c(s["pname"], "eq", "Cake")) == {"Both"}
    assert names(c(s["pname"], "neq", "Cake")) == {"Tea", "None"}
    assert names(c(s["cost"], "gt", 4)) == {"Both"}
    assert names(c(s["cost"], "lte", 3)) == {"Tea"}
    assert names(c(s["pname"], "contains", "ak")) == {"Both"}
    assert names(c(s["pname"], "exists")) == {"Tea", "Both"}
    assert names(c(s["pname"], "nexists")) == {"None"}
    assert names(c(size, "has", "L")) == {"Both"}
    assert names(c(size, "nhas", "S")) == {"Both", "None"}
    # a product and a deal condition, nested
    assert names(
        c(s["amount"], "gt", 1000),
        {"union": "or", "conditions": [c(size, "has", "S"), c(s["pname"], "eq", "Cake")]},
    ) == {"Tea", "Both"}
    assert names(c(s["pname"], "eq", "Cake"), c(s["cost"], "lt", 4), union="or") == {"Tea", "Both"}
    assert {tea["id"], both["id"], none["id"]} == {d["id"] for d in call("/deals/list")["data"]}


def test_deals_follow_merges_and_stay_in_their_organization(
    call: Call, setup: dict[str, Any], make_org: Callable[..., Org]
) -> None:
    s = setup
    deal = call("/deals/create", _deal(s))
    newer = call("/contacts/create", [{"phone": "79990000052"}])["data"][0]["id"]
    moved = call("/deals/create", _deal(s, contactId=newer))
    call("/contacts/update", {"contactId": newer, "phone": "79990000051"})  # merged into s
    listed = call("/deals/list", {})["data"]
    assert {d["id"]: d["contactId"] for d in listed} == {
        deal["id"]: s["contact"],
        moved["id"]: s["contact"],
    }
    other = make_org("Other", "admin@other.test")
    theirs = call("/contacts/create", [{"phone": "79990000053"}], who=other)["data"][0]["id"]
    assert (
        call("/deals/create", _deal(s, contactId=theirs), error=True)["code"] == "contact_not_found"
    )
    assert (
        call("/deals/delete", {"id": deal["id"]}, who=other, error=True)["code"] == "deal_not_found"
    )
    upd = {"dealId": deal["id"], "attributeId": s["city"], "value": "x"}
    assert call("/deals/setAttribute", upd, who=other, error=True)["code"] == "deal_not_found"
    assert call("/deals/list", {}, who=other)["total"] == 0
