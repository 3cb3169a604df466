"""Contacts and variables through /user: create, get, update a channel id, variables."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Org
from tests.platform.conftest import Call


def _var(call: Call, name: str) -> str:
    return next(v["id"] for v in call("/variables/list")["data"] if v["name"] == name)


def test_defaults_and_variable_lifecycle(call: Call) -> None:
    listed = call("/variables/list")["data"]
    assert [(v["name"], v["validateAs"]) for v in listed] == [
        ("First Name", "STRING"),
        ("Last Name", "STRING"),
        ("Birthday", "DATE"),
        ("City", "STRING"),
        ("Country", "STRING"),
        ("Gender", "STRING"),
    ]
    new = call("/variables/create", {"name": "Orders", "validateAs": "NUMBER"})["id"]
    assert {"id": new, "name": "Orders", "validateAs": "NUMBER"} in call("/variables/list")["data"]
    dup = call("/variables/create", {"name": "Orders"}, error=True)
    assert dup["code"] == "variable_exists"
    bad = call("/variables/create", {"name": "X", "validateAs": "BOOL"}, error=True)
    assert bad["field"] == "validateAs"
    assert call("/variables/delete", {"id": _var(call, "City")}, error=True)["code"] == "1058"
    call("/variables/delete", {"id": new})
    assert all(v["id"] != new for v in call("/variables/list")["data"])
    assert call("/variables/delete", {"id": new}, error=True)["code"] == "variable_not_found"


def test_create_get_and_normalised_phone(call: Call) -> None:
    body = [
        {
            "phone": 79990000000,
            "vkId": 123456,
            "vk": {"first_name": "Ivan", "id": 123456},
            "variables": [
                {"name": "City", "value": "Moscow"},
                {"name": "Birthday", "value": "1.1.2001"},
            ],
        }
    ]
    created = call("/contacts/create", body)["data"]
    assert len(created) == 1
    c = created[0]
    assert c["phone"] == "+79990000000" and c["vkId"] == 123456
    assert c["vk"] == {"first_name": "Ivan", "id": 123456}
    assert set(c["channels"]) >= {"sms", "vk", "whatsapp"} and "telegram" not in c["channels"]
    assert c["createdAt"].endswith("Z") and len(c["createdAt"]) == 24
    values = {v["name"]: (v["validateAs"], v["value"]) for v in c["variables"]}
    assert values == {"City": ("STRING", "Moscow"), "Birthday": ("DATE", "2001-01-01")}
    got = call("/contacts/get", {"id": c["id"]})
    assert got["id"] == c["id"] and got["variables"] == c["variables"]


def test_create_with_a_known_phone_goes_into_that_contact(call: Call) -> None:
    first = call("/contacts/create", [{"phone": "+7 999 111-22-33"}])["data"][0]
    again = call(
        "/contacts/create",
        [
            {
                "phone": "89991112233",
                "telegramId": 42,
                "variables": [{"name": "City", "value": "Kazan"}],
            }
        ],
    )["data"][0]
    assert again["id"] == first["id"] and again["telegramId"] == 42
    assert call("/contacts")["total"] == 1
    # Two of one phone in one batch are one contact too.
    pair = call("/contacts/create", [{"phone": "79995550000"}, {"phone": "+79995550000"}])["data"]
    assert pair[0]["id"] == pair[1]["id"]
    assert call("/contacts")["total"] == 2


def test_refusals_write_nothing(call: Call) -> None:
    city, birthday = "City", "Birthday"
    cases = [
        ([{"phone": "123"}], "1010"),
        (
            [{"phone": "79990000001", "variables": [{"name": birthday, "value": "31.02.2001"}]}],
            "1054",
        ),
        (
            [{"phone": "79990000001", "variables": [{"name": "Nope", "value": 1}]}],
            "variable_not_found",
        ),
        ([{"phone": "79990000001", "variables": [{"name": city, "value": [1]}]}], "invalid_field"),
        ([{"variables": []}], "missing_field"),
        ([{"phone": "79990000001"}, {"phone": "bad"}], "1010"),
    ]
    for body, code in cases:
        assert call("/contacts/create", body, error=True)["code"] == code, body
    orders = call("/variables/create", {"name": "Orders", "validateAs": "NUMBER"})["id"]
    bad = [{"phone": "79990000001", "variables": [{"id": orders, "value": "many"}]}]
    assert call("/contacts/create", bad, error=True)["code"] == "1056"
    assert (
        call("/contacts/create", [{"phone": "7999"}] * 1001, error=True)["code"]
        == "batch_too_large"
    )
    assert call("/contacts")["total"] == 0


def test_set_variables_and_update_channel_id(call: Call) -> None:
    c = call("/contacts/create", [{"phone": "79990000002"}])["data"][0]
    orders = call("/variables/create", {"name": "Orders", "validateAs": "NUMBER"})["id"]
    call(
        "/variables/set",
        {
            "contactId": c["id"],
            "variables": [{"id": orders, "value": "12"}, {"name": "City", "value": "Omsk"}],
        },
    )
    got = call("/contacts/get", {"id": c["id"]})
    assert {v["name"]: v["value"] for v in got["variables"]} == {"City": "Omsk", "Orders": 12}
    assert got["updatedAt"] >= c["updatedAt"]
    call("/variables/set", {"contactId": c["id"], "variables": [{"name": "City", "value": None}]})
    got = call("/contacts/get", {"id": c["id"]})
    assert [v["name"] for v in got["variables"]] == ["Orders"]
    wrong = {"contactId": c["id"], "variables": [{"id": orders, "value": "x"}]}
    assert call("/variables/set", wrong, error=True)["code"] == "1056"

    call("/contacts/update", {"contactId": c["id"], "vkId": 777})
    call("/contacts/update", {"contactId": c["id"], "phone": "+7 (999) 000-00-03"})
    got = call("/contacts/get", {"id": c["id"]})
    assert got["vkId"] == 777 and got["phone"] == "+79990000003"
    two = {"contactId": c["id"], "vkId": 1, "fbId": "2"}
    assert call("/contacts/update", two, error=True)["code"] == "invalid_body"
    assert (
        call("/contacts/update", {"contactId": c["id"], "phone": "12"}, error=True)["code"]
        == "1010"
    )


def test_other_organizations_ids_are_unknown(call: Call, make_org: Callable[..., Org]) -> None:
    other = make_org("Other", "admin@other.test")
    theirs = call("/contacts/create", [{"phone": "79990000004"}], who=other)["data"][0]
    their_var = call("/variables/create", {"name": "Secret"}, who=other)["id"]
    assert call("/contacts/get", {"id": theirs["id"]}, error=True)["code"] == "contact_not_found"
    upd = {"contactId": theirs["id"], "vkId": 5}
    assert call("/contacts/update", upd, error=True)["code"] == "contact_not_found"
    mine = call("/contacts/create", [{"phone": "79990000004"}])["data"][0]
    assert mine["id"] != theirs["id"]  # the same phone in two organizations: two contacts
    setv = {"contactId": mine["id"], "variables": [{"id": their_var, "value": "x"}]}
    assert call("/variables/set", setv, error=True)["code"] == "variable_not_found"
    assert call("/variables/delete", {"id": their_var}, error=True)["code"] == "variable_not_found"
    assert call("/contacts")["total"] == 1
