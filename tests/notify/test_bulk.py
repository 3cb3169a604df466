"""sendMixed, prices and SMS parts, balance exhaustion, custom_id races, idempotency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from omnirelay.db import Database
from omnirelay.idempotency.models import IdempotencyKey
from omnirelay.messaging.models import Message
from tests.notify.conftest import DELIVERED


def route(phone: str = DELIVERED, text: str = "x", **kw: Any) -> dict[str, Any]:
    return {"route": [{"channel": "sms", "phone": phone, "sender": "SANDBOX", "text": text}], **kw}


def n_messages(db: Database) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def balance(v3: Any) -> str:
    return str(v3("balance").json()["balance"])


def test_send_mixed_gives_one_id_per_element_and_per_element_errors(v3, db, drain, message):
    body = [route(custom_id="m1"), route(phone="123"), route(custom_id="m1"), route(custom_id="m3")]
    r = v3("message/sendMixed", body)
    assert r.status_code == 200, r.text
    ids = r.json()["id"]
    assert len(ids) == 4 and ids[1] is None and ids[2] is None
    assert r.json()["errors"] == [
        {"index": 1, "desc": "Tel.number error", "code": 1010, "field": "route[0].phone"},
        {
            "index": 2,
            "desc": "You've already sent message with same user message ID",
            "code": 1018,
            "field": "custom_id",
        },
    ]
    assert n_messages(db) == 2
    drain()
    assert message(ids[0]).status == message(ids[3]).status == "delivered"


def test_send_mixed_limits(v3, db):
    r = v3("message/sendMixed", [route()] * 1001)
    assert (r.status_code, r.json()["code"]) == (400, 1020)
    r = v3("message/sendMixed", [route(phone="1")])
    assert r.status_code == 400 and r.json()["id"] == [None]
    assert v3("message/sendMixed", {"route": []}).json()["desc"] == "No params"
    assert n_messages(db) == 0


def test_send_mixed_of_a_thousand(v3, db):
    r = v3("message/sendMixed", [route(custom_id=str(i)) for i in range(1000)])
    assert r.status_code == 200
    assert len(set(r.json()["id"])) == 1000
    assert n_messages(db) == 1000
    assert balance(v3) == "950.00"  # 1000 x 0.05


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters count two septets
        ("€" * 81, 2),
        ("ж" * 70, 1),  # UCS-2
        ("ж" * 71, 2),
        ("😀" * 35, 1),  # an emoji is two UTF-16 units
        ("😀" * 36, 2),
    ],
)
def test_sms_parts_and_price(v3, message, text, parts):
    mid = v3("message/sendSMS", {"sender": "SANDBOX", "phone": DELIVERED, "text": text}).json()[
        "id"
    ]
    row = message(mid)
    assert row.parts == parts
    assert row.price == 500 * parts  # 0.05 per part, in ten-thousandths
    assert balance(v3) == f"{1000 - 0.05 * parts:.2f}"


def test_balance_exhaustion_mid_send_mixed(client, org, v3, db):
    r = client.post("/api/billing/top-up", json={"amount": "-999.88"}, headers=org.headers())
    assert r.status_code == 200 and r.json()["balance"] == "0.12"
    r = v3("message/sendMixed", [route(custom_id=str(i)) for i in range(4)])
    ids = r.json()["id"]
    assert [i is not None for i in ids] == [True, True, False, False]
    assert {e["code"] for e in r.json()["errors"]} == {1015}
    assert balance(v3) == "0.02"
    single = v3("message/sendSMS", {"sender": "SANDBOX", "phone": DELIVERED, "text": "x"})
    assert single.status_code == 402
    assert single.json() == {
        "result": "error", "desc": "Balance error - not enough funds", "code": 1015
    }  # fmt: skip
    assert n_messages(db) == 2 and balance(v3) == "0.02"


def test_duplicate_custom_id_under_concurrency_exactly_one_wins(v3, db):
    def send(_: int) -> int:
        body = {"sender": "SANDBOX", "phone": DELIVERED, "text": "x", "custom_id": "race"}
        return int(v3("message/sendSMS", body).status_code)

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(16)))
    assert sorted(codes) == [200] + [409] * 15
    assert n_messages(db) == 1
    assert balance(v3) == "999.95"  # the losers' debits were rolled back


def test_idempotency_key_replays_the_first_answer(v3, db):
    body = {"sender": "SANDBOX", "phone": DELIVERED, "text": "x"}
    first = v3("message/sendSMS", body, headers={"Idempotency-Key": "k-1"})
    again = v3("message/sendSMS", body, headers={"Idempotency-Key": "k-1"})
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert n_messages(db) == 1
    other = v3("message/sendSMS", {**body, "text": "y"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.json()["result"] == "error"
    fresh = v3("message/sendSMS", body, headers={"Idempotency-Key": "k-2"})
    assert fresh.json()["id"] != first.json()["id"]
    mixed = [route(), route()]
    m1 = v3("message/sendMixed", mixed, headers={"Idempotency-Key": "k-3"})
    m2 = v3("message/sendMixed", mixed, headers={"Idempotency-Key": "k-3"})
    assert m1.json() == m2.json()
    assert n_messages(db) == 4


def test_send_mixed_refused_with_an_idempotency_key_is_not_stored(v3, db):
    # Found by the fuzz tests: the 400 "No message was accepted" was stored under the key,
    # so the corrected retry got the refusal replayed (or 409 for its other body).
    refused = v3("message/sendMixed", [route(phone="1")], headers={"Idempotency-Key": "k"})
    assert refused.status_code == 400 and refused.json()["id"] == [None]
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    again = v3("message/sendMixed", [route(phone="1")], headers={"Idempotency-Key": "k"})
    assert again.status_code == 400 and "Idempotent-Replayed" not in again.headers
    fixed = v3("message/sendMixed", [route()], headers={"Idempotency-Key": "k"})
    assert fixed.status_code == 200, fixed.text
    assert n_messages(db) == 1


def test_idempotency_key_under_concurrency(v3, db):
    body = {"sender": "SANDBOX", "phone": DELIVERED, "text": "x"}

    def send(_: int) -> str:
        r = v3("message/sendSMS", body, headers={"Idempotency-Key": "same"})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(send, range(12)))
    assert len(ids) == 1
    assert n_messages(db) == 1


def test_a_refused_request_is_not_stored_under_its_key(v3, db):
    bad = {"sender": "SANDBOX", "phone": "1", "text": "x"}
    assert v3("message/sendSMS", bad, headers={"Idempotency-Key": "k"}).status_code == 400
    good = {**bad, "phone": DELIVERED}
    r = v3("message/sendSMS", good, headers={"Idempotency-Key": "k"})
    assert r.status_code == 200  # the failed first try left nothing behind
