"""The contacts filter language through /user/contacts: the 14 operators, each checked
against the field's type, nested and/or, offset/limit/order/total, bounded input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.platform.conftest import Call


@pytest.fixture
def people(call: Call) -> dict[str, Any]:
    """Four contacts with a NUMBER, a STRING and a DATE variable, and a variable id map."""
    orders = call("/variables/create", {"name": "Orders", "validateAs": "NUMBER"})["id"]
    rows = [
        {"phone": "79990000011", "vkId": 11, "orders": 5, "city": "Moscow", "bday": "1990-05-01"},
        {"phone": "79990000012", "orders": 15, "city": "Saint Petersburg", "bday": "2001-01-01"},
        {"phone": "79990000013", "telegramId": 13, "orders": 25, "city": "Kazan"},
        {"phone": "79990000014", "vkId": 14},
    ]
    names = {}
    for i, row in enumerate(rows):
        variables = [{"id": orders, "value": row["orders"]}] if "orders" in row else []
        if "city" in row:
            variables.append({"name": "City", "value": row["city"]})
        if "bday" in row:
            variables.append({"name": "Birthday", "value": row["bday"]})
        ids = {k: row[k] for k in ("phone", "vkId", "telegramId") if k in row}
        created = call("/contacts/create", [ids | {"variables": variables}])["data"][0]
        names[created["id"]] = i
    var = {v["name"]: v["id"] for v in call("/variables/list")["data"]}
    return {"names": names, "var": var}


def _match(call: Call, people: dict[str, Any], flt: Any, **extra: Any) -> list[int]:
    answer = call("/contacts", {"filter": flt, **extra})
    return sorted(people["names"][c["id"]] for c in answer["data"])


def _cond(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"union": None, "conditions": [{"field": field, "op": op, "value": value}]}


def test_each_operator(call: Call, people: dict[str, Any]) -> None:
    v = people["var"]
    cases: list[tuple[str, str, Any, list[int]]] = [
        (v["Orders"], "eq", 15, [1]),
        (v["Orders"], "neq", 15, [0, 2, 3]),  # no value: not equal
        (v["Orders"], "lt", 15, [0]),
        (v["Orders"], "lte", 15, [0, 1]),
        (v["Orders"], "gt", 15, [2]),
        (v["Orders"], "gte", "15", [1, 2]),
        (v["Orders"], "exists", None, [0, 1, 2]),
        (v["Orders"], "nexists", None, [3]),
        (v["City"], "eq", "Kazan", [2]),
        (v["City"], "contains", "PETERS", [1]),  # case-insensitive
        (v["City"], "ncontains", "o", [1, 2, 3]),  # Moscow has one
        ("City", "contains", "%", []),  # a wildcard character is a character
        (v["Birthday"], "before", "2000-01-01", [0]),
        (v["Birthday"], "after", "01.01.1995", [1]),
        (v["Birthday"], "eq", "2001-01-01T10:00:00Z", [1]),
        ("channels", "has", "vk", [0, 3]),
        ("channels", "nhas", "telegram", [0, 1, 3]),
        ("phone", "eq", "+7 999 000-00-12", [1]),
        ("phone", "contains", "0013", [2]),
        ("vkId", "exists", None, [0, 3]),
    ]
    for field, op, value, expected in cases:
        assert _match(call, people, _cond(field, op, value)) == expected, (field, op, value)


def test_nested_and_or_total_and_paging(call: Call, people: dict[str, Any]) -> None:
    v = people["var"]
    flt = {
        "union": "or",
        "conditions": [
            {
                "union": "and",
                "conditions": [
                    {"field": v["Orders"], "op": "gt", "value": 10},
                    {"field": v["Orders"], "op": "lt", "value": 20},
                ],
            },
            {"union": None, "conditions": [{"field": "channels", "op": "has", "value": "vk"}]},
        ],
    }
    assert _match(call, people, flt) == [0, 1, 3]
    answer = call(
        "/contacts", {"filter": flt, "offset": 1, "limit": 1, "order": [[v["Orders"], "DESC"]]}
    )
    assert answer["total"] == 3
    assert [people["names"][c["id"]] for c in answer["data"]] == [0]  # 15, 5, then no value
    everything = call("/contacts", {"order": [["phone", "ASC"]]})
    assert [people["names"][c["id"]] for c in everything["data"]] == [0, 1, 2, 3]
    assert everything["total"] == 4
    assert call("/contacts", {"limit": 0})["data"] == []
    newest = call("/contacts", {"limit": 1})["data"][0]  # default order: createdAt DESC
    assert people["names"][newest["id"]] == 3
    assert call("/contacts/list", {"filter": {}})["total"] == 4
    mixed = {  # negatives, a contact-row test and two variables, nested
        "union": "or",
        "conditions": [
            {"field": v["Orders"], "op": "nexists"},
            {
                "union": "and",
                "conditions": [
                    {"field": "City", "op": "eq", "value": "Kazan"},
                    {"field": "channels", "op": "nhas", "value": "vk"},
                    {"field": v["Orders"], "op": "gte", "value": 25},
                ],
            },
        ],
    }
    assert _match(call, people, mixed) == [2, 3]
    assert call("/contacts", {"filter": mixed})["total"] == 2
    assert _match(call, people, {"union": "and", "conditions": []}) == [0, 1, 2, 3]


def test_pages_of_many_matches_walk_the_contacts_in_order(
    call: Call, people: dict[str, Any]
) -> None:
    """A page of a filter matching most contacts is read by testing each contact in page
    order (ADR 29); every operator's page there is the same as the full list's."""
    v = people["var"]
    ordered = [c["id"] for c in call("/contacts", {"order": [["createdAt", "DESC"]]})["data"]]
    cases = [
        (v["Orders"], "neq", 15),
        (v["Orders"], "lt", 20),
        (v["City"], "ncontains", "x"),
        (v["Birthday"], "nexists", None),
        ("channels", "has", "sms"),
        ("phone", "contains", "999"),
        ("vkId", "nexists", None),
    ]
    filters = [
        {"union": "or", "conditions": [_cond(field, op, value), _cond("id", "eq", "x")]}
        for field, op, value in cases
    ]
    # Two conditions of one variable in a node: one probe of its value row.
    filters.append(
        {
            "union": "and",
            "conditions": [
                {"field": v["Orders"], "op": "gte", "value": 5},
                {"field": v["Orders"], "op": "lt", "value": 20},
            ],
        }
    )
    for flt in filters:
        field, op = flt["conditions"][0].get("field"), flt["conditions"][0].get("op")
        every = call("/contacts", {"filter": flt})
        matching = [i for i in ordered if i in {c["id"] for c in every["data"]}]
        assert every["total"] == len(matching) >= 2, (field, op)
        for order in ("DESC", "ASC"):
            want = matching if order == "DESC" else matching[::-1]
            for offset in range(len(want)):
                page = call(
                    "/contacts",
                    {"filter": flt, "limit": 1, "offset": offset, "order": [["createdAt", order]]},
                )
                assert page["total"] == len(want)
                assert [c["id"] for c in page["data"]] == want[offset : offset + 1], (field, op)


def test_channel_tests_next_to_variables_follow_channel_id_changes(
    call: Call, people: dict[str, Any]
) -> None:
    """A channel test in an "and" with a variable's condition is read from the value rows
    (ADR 39): what they carry follows an update of the channel ids and a merge."""
    v = people["var"]

    def both(*conditions: dict[str, Any]) -> list[int]:
        return _match(call, people, {"union": "and", "conditions": list(conditions)})

    has_orders = {"field": v["Orders"], "op": "exists"}
    has_vk = {"field": "channels", "op": "has", "value": "vk"}
    assert both(has_orders, has_vk) == [0]
    # An "or" of one variable (disjoint ranges, counted arm by arm) under the test.
    outside = {
        "union": "or",
        "conditions": [
            {"field": v["Orders"], "op": "lt", "value": 10},
            {"field": v["Orders"], "op": "gte", "value": 20},
        ],
    }
    sms = {"field": "channels", "op": "has", "value": "sms"}
    assert both(outside, sms) == [0, 2]
    assert (
        call("/contacts", {"filter": {"union": "and", "conditions": [outside, sms]}})["total"] == 2
    )
    assert both(outside, {"field": "channels", "op": "nhas", "value": "vk"}) == [2]
    second = next(c for c, i in people["names"].items() if i == 1)
    call("/contacts/update", {"contactId": second, "vkId": 99})
    assert both(has_orders, has_vk) == [0, 1]
    assert both(has_orders, {"field": "vkId", "op": "nexists"}) == [2]
    # A telegram-only contact with Orders 30, merged into the older contact 3 (vk 14).
    newer = call(
        "/contacts/create", [{"telegramId": 77, "variables": [{"id": v["Orders"], "value": 30}]}]
    )["data"][0]
    people["names"][newer["id"]] = 4
    assert _match(call, people, _cond("phone", "neq", "79990000011")) == [1, 2, 3, 4]
    assert both({"field": v["Orders"], "op": "gte", "value": 30}, has_vk) == []
    third = next(c for c, i in people["names"].items() if i == 3)
    call("/contacts/update", {"contactId": third, "telegramId": 77})  # the newer goes
    telegram = {"field": "channels", "op": "has", "value": "telegram"}
    assert both({"field": v["Orders"], "op": "gte", "value": 30}, has_vk, telegram) == [3]
    no_telegram = {"field": "channels", "op": "nhas", "value": "telegram"}
    assert both(has_orders, no_telegram) == [0, 1]
    assert (
        call("/contacts", {"filter": {"union": "and", "conditions": [has_orders, telegram]}})[
            "total"
        ]
        == 2
    )


def test_bad_filters_are_refused(call: Call, people: dict[str, Any]) -> None:
    v = people["var"]
    deep: dict[str, Any] = {"field": "phone", "op": "exists"}
    for _ in range(9):
        deep = {"union": "and", "conditions": [deep]}
    wide = {"union": "or", "conditions": [{"field": "phone", "op": "exists"}] * 101}
    cases: list[tuple[Any, str]] = [
        (_cond(v["Orders"], "like", 1), "invalid_filter"),
        (_cond(v["Orders"], {"op": "eq"}, 1), "invalid_filter"),  # type: ignore[arg-type]
        (_cond(v["Orders"], ["neq"], 1), "invalid_filter"),  # type: ignore[arg-type]
        (_cond(v["Orders"], "contains", "1"), "invalid_filter"),  # not for numbers
        (_cond(v["City"], "gt", 1), "invalid_filter"),  # not for strings
        (_cond(v["Birthday"], "lt", "2000-01-01"), "invalid_filter"),
        (_cond("channels", "eq", "vk"), "invalid_filter"),
        (_cond(v["Orders"], "gt", "ten"), "1056"),
        (_cond(v["Birthday"], "before", "yesterday"), "1054"),
        (_cond("channels", "has", "pigeon"), "invalid_filter"),
        (_cond("nosuchvariable", "eq", "x"), "invalid_filter"),
        (_cond(v["City"], "eq", {"a": 1}), "invalid_filter"),
        ({"union": "xor", "conditions": []}, "invalid_filter"),
        ({"union": "and", "conditions": "x"}, "invalid_filter"),
        (deep, "invalid_filter"),
        (wide, "invalid_filter"),
    ]
    for flt, code in cases:
        assert call("/contacts", {"filter": flt}, error=True)["code"] == code, flt
    for body in (
        {"limit": -1},
        {"offset": -1},
        {"order": [["nosuch", "ASC"]]},
        {"order": [["createdAt", "UP"]]},
    ):
        assert call("/contacts", body, error=True)["result"] == "error", body
