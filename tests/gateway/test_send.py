"""Seed 002's /send (POST with multipart, urlencoded and JSON bodies; GET), its
parameters and refusals, message status and cancelling, and the device webhooks."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from omnirelay.db import Database
from omnirelay.gateway.models import Device, GatewayMessage
from omnirelay.messaging.models import Message
from tests.gateway.conftest import Account, Clock, DeviceRef
from tests.notify.conftest import wait_for

Send = Callable[..., dict[str, Any]]


@pytest.fixture
def send(client: TestClient) -> Callable[..., dict[str, Any]]:
    """``send(device, kind, fields, files=None)``: kind json | form | multipart."""

    def post(
        device: DeviceRef, kind: str, fields: dict[str, Any], files: Any = None
    ) -> dict[str, Any]:
        if kind == "json":
            r = client.post("/send", headers=device.auth, json=fields)
        elif kind == "form":
            r = client.post("/send", headers=device.auth, data=fields)
        else:  # multipart, with a file part or a dummy one to force the encoding
            r = client.post(
                "/send",
                headers=device.auth,
                data=fields,
                files=files or {"unused": ("x.txt", b"", "text/plain")},
            )
        assert r.status_code == 200, r.text
        return dict(r.json())

    return post


def _rows(db: Database) -> list[tuple[GatewayMessage, Message]]:
    with db.transaction() as session:
        rows = session.execute(
            select(GatewayMessage, Message)
            .join(Message, Message.id == GatewayMessage.message_id)
            .order_by(GatewayMessage.id)
        ).all()
        for gm, m in rows:
            session.expunge(gm)
            session.expunge(m)
        return [(gm, m) for gm, m in rows]


@pytest.mark.parametrize("kind", ["json", "form", "multipart"])
def test_send_with_per_target_variables(
    kind: str, send: Send, connected: DeviceRef, db: Database
) -> None:
    body = send(
        connected,
        kind,
        {
            "target": "081234567890|Fonnte|Admin,6289876543210|Lili|User",
            "message": "test message to {name} as {var1} {var9}",
        },
    )
    assert body["status"] is True and body["detail"] == "success! message in queue"
    assert body["process"] == "pending" and isinstance(body["requestid"], int)
    assert body["target"] == ["6281234567890", "6289876543210"]  # countryCode 62 by default
    rows = _rows(db)
    assert [str(gm.id) for gm, _ in rows] == body["id"]
    assert {gm.request_id for gm, _ in rows} == {body["requestid"]}
    texts = [m.route[0]["text"] for _, m in rows]
    assert texts == [
        "test message to Fonnte as Admin {var9}",
        "test message to Lili as User {var9}",
    ]
    assert all(m.route[0]["sender"] == connected.number for _, m in rows)


def test_country_code_and_its_zero(send: Send, connected: DeviceRef) -> None:
    assert send(connected, "json", {"target": "08123456789", "message": "a", "countryCode": "1"})[
        "target"
    ] == ["18123456789"]
    off = send(connected, "json", {"target": "081234567891", "message": "a", "countryCode": "0"})
    assert off["target"] == ["081234567891"]
    group = send(connected, "json", {"target": "120363025343298878@g.us", "message": "a"})
    assert group["target"] == ["120363025343298878@g.us"]


def test_schedule_and_delay_range_space_the_targets(
    send: Send, connected: DeviceRef, db: Database, clock: Clock
) -> None:
    at = int((clock.now + timedelta(hours=1)).timestamp())
    targets = ",".join(f"62812000001{i:02d}" for i in range(5))
    body = send(
        connected, "form", {"target": targets, "message": "m", "schedule": str(at), "delay": "2-4"}
    )
    assert body["detail"] == "success! message will be sent on scheduled time"
    times = [m.send_after for _, m in _rows(db)]
    assert abs(times[0].timestamp() - at) < 1
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(2 <= g <= 4 for g in gaps), gaps
    fixed = send(connected, "form", {"target": "6281200000201,6281200000202", "message": "m",
                                      "delay": "7"})  # fmt: skip
    t = [m.send_after for gm, m in _rows(db) if str(gm.id) in fixed["id"]]
    assert (t[1] - t[0]).total_seconds() == 7


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"message": "no target"}, "target invalid"),
        ({"target": "12,abc", "message": "x"}, "target invalid"),
        ({"target": "6281234567890"}, "input invalid"),  # nothing to send
        ({"target": "6281234567890", "message": "x" * 60_001}, "input invalid"),
        ({"target": "6281234567890", "url": "notaurl"}, "url invalid"),
        ({"target": "6281234567890", "url": "http://10.0.0.1/a.png"}, "url invalid"),
        ({"target": "6281234567890", "url": "http://no-such-host.invalid/a.png"},
         "url unreachable"),
        ({"target": "6281234567890", "location": "91,10"}, "input invalid"),
        ({"target": "6281234567890", "choices": "only one", "pollname": "P"}, "input invalid"),
        ({"target": "6281234567890", "choices": ",".join("abcdefghijklm"), "pollname": "P"},
         "input invalid"),
        ({"target": "6281234567890", "choices": "a,b", "pollname": "P", "select": "some"},
         "input invalid"),
        ({"target": "6281234567890", "message": "x", "delay": "5-1"}, "input invalid"),
        ({"target": "6281234567890", "message": "x", "schedule": "soon"}, "input invalid"),
        ({"data": "[{\"target\": "}, "JSON format invalid"),
        ({"data": "{}"}, "JSON format invalid"),
    ],
)  # fmt: skip
def test_send_refusals_write_nothing(
    fields: dict[str, str], reason: str, send: Send, connected: DeviceRef, db: Database
) -> None:
    assert send(connected, "form", fields) == {"reason": reason, "status": False}
    assert _rows(db) == []


def test_polls_location_and_media_reach_the_step(
    send: Send, connected: DeviceRef, db: Database
) -> None:
    poll = send(connected, "json", {"target": "6281234567890", "choices": "red, green,blue",
                                     "pollname": "Colour", "select": "multiple"})  # fmt: skip
    where = send(connected, "json", {"target": "6281234567890", "location": "-7.98, 112.62"})
    media = send(connected, "json", {"target": "6281234567890", "message": "see",
                                      "url": "http://127.0.0.1:9/a.pdf",
                                      "filename": "a.pdf"})  # fmt: skip
    steps = {str(gm.id): m.route[0] for gm, m in _rows(db)}
    assert steps[poll["id"][0]]["extra"]["choices"] == ["red", "green", "blue"]
    assert steps[poll["id"][0]]["extra"]["select"] == "multiple"
    assert steps[where["id"][0]]["extra"]["location"] == "-7.98,112.62"
    assert steps[media["id"][0]]["extra"]["url"] == "http://127.0.0.1:9/a.pdf"
    assert steps[media["id"][0]]["extra"]["filename"] == "a.pdf"


def test_files_are_checked_for_size_and_format(
    send: Send, connected: DeviceRef, db: Database, settings: Any, client: TestClient
) -> None:
    from pathlib import Path

    media = Path(settings.media_dir)

    def kept() -> list[str]:
        return sorted(p.name for p in media.glob("*")) if media.exists() else []

    fields = {"target": "6281234567890", "message": "file"}
    big = {"file": ("big.jpg", b"\xff" * (4 * 1024 * 1024 + 1), "image/jpeg")}
    assert send(connected, "multipart", fields, big) == {
        "reason": "file size must under 4MB",
        "status": False,
    }
    exe = {"file": ("tool.exe", b"MZ", "application/octet-stream")}
    assert send(connected, "multipart", fields, exe) == {
        "reason": "file format not supported",
        "status": False,
    }
    assert kept() == []  # a refused upload leaves nothing behind
    good = {"file": ("photo.jpg", b"\xff\xd8\xff", "image/jpeg")}
    bad_token = client.post(
        "/send", headers={"Authorization": "nope"}, data=fields, files=good
    ).json()
    assert bad_token == {"reason": "token invalid", "status": False}
    assert kept() == []  # nothing is written for a caller without a valid token
    assert send(connected, "multipart", fields, good)["status"] is True
    ((_, message),) = _rows(db)
    assert message.route[0]["extra"]["filename"] == "photo.jpg"
    (name,) = kept()
    assert name.endswith("-photo.jpg") and message.route[0]["extra"]["file"].endswith(name)


def test_data_batches_in_sequence(send: Send, connected: DeviceRef, db: Database) -> None:
    data = [
        {"target": "6281200000301", "message": "first", "delay": "0"},
        {"target": "6281200000302,6281200000303", "message": "second", "delay": "5"},
    ]
    body = send(connected, "form", {"data": json.dumps(data), "sequence": "true"})
    assert body["target"] == ["6281200000301", "6281200000302", "6281200000303"]
    times = [m.send_after for _, m in _rows(db)]
    assert times[0] <= times[1] and (times[2] - times[1]).total_seconds() == 5


def test_connect_only_and_a_held_message(
    send: Send,
    add_device: Callable[..., DeviceRef],
    db: Database,
    drain: Callable[[], int],
    advance: Callable[[float], None],
    gw: Callable[..., Any],
) -> None:
    device = add_device()  # never connected
    fields = {"target": "6281234567890", "message": "hello"}
    assert send(device, "form", fields) == {"reason": "disconnected device", "status": False}
    held = send(device, "form", {**fields, "connectOnly": "false"})
    assert held["status"] is True
    drain()
    advance(60)
    drain()
    ((_, message),) = _rows(db)
    assert message.status == "accepted"  # waits for its device, not lost, not failed
    from tests.gateway.test_devices import _scan

    gw("/qr", device.token)
    _scan(db, device)  # connecting wakes it: no waiting for its next look
    drain()
    ((_, message),) = _rows(db)
    assert message.status != "accepted"
    advance(5)  # the sandbox phone's report
    drain()
    ((_, message),) = _rows(db)
    assert message.status in ("delivered", "read")


def test_a_held_message_looks_for_its_device_less_often_as_it_ages(
    send: Send,
    add_device: Callable[..., DeviceRef],
    db: Database,
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    from omnirelay.db import utcnow
    from omnirelay.messaging.models import Message

    device = add_device()  # never connected
    send(device, "form", {"target": "6281234567890", "message": "hi", "connectOnly": "false"})

    def next_look() -> float:  # the held message is due again then (its own job, ADR 18)
        with db.transaction() as session:
            due = session.scalars(select(Message.due_at).where(Message.due_at.is_not(None))).one()
            return (due - utcnow()).total_seconds()

    drain()
    assert 0 < next_look() <= 15  # young: every 15 s
    with db.transaction() as session:  # a message held for a day
        for row in session.scalars(select(Message)):
            row.created_at = row.created_at - timedelta(days=1)
    advance(15)
    drain()
    assert 3000 < next_look() <= 3600  # old: at most hourly, connecting wakes it anyway


def test_quota_is_counted_and_insufficient_quota_writes_nothing(
    send: Send, connected: DeviceRef, db: Database, gw: Callable[..., Any]
) -> None:
    with db.transaction() as session:
        session.execute(update(Device).values(quota=3))
    assert send(connected, "form", {"target": "6281200000401,6281200000402", "message": "x"})[
        "status"
    ]
    profile = gw("/device", connected.token)
    assert (profile["quota"], profile["messages"]) == ("1", 2)
    body = send(connected, "form", {"target": "6281200000403,6281200000404", "message": "x"})
    assert body == {"reason": "insufficient quota", "status": False}
    assert len(_rows(db)) == 2
    assert gw("/device", connected.token)["quota"] == "1"


def test_get_send_with_a_token_list_and_redirect(
    client: TestClient,
    connected: DeviceRef,
    add_device: Callable[..., DeviceRef],
    account: Account,
    make_org: Any,
    db: Database,
) -> None:
    second = add_device("6281234567002", "Second")
    query = {"token": f"{connected.token},{second.token}", "target": "6281200000501",
             "message": "hi", "connectOnly": "false"}  # fmt: skip
    body = client.get("/send", params=query).json()
    assert body["status"] is True and body["target"] == ["6281200000501"]
    r = client.get(
        "/send", params={**query, "redirect": "https://example.com/done"}, follow_redirects=False
    )
    assert r.status_code == 302 and r.headers["location"] == "https://example.com/done"
    assert len(_rows(db)) == 2  # the redirected request was sent too
    from omnirelay.gateway import service

    other = make_org("Other", "admin@other.test")
    with db.transaction() as session:
        other_account = service.rotate_account_token(session, other.id)
    r2 = client.post(
        "/add-device",
        headers={"Authorization": other_account},
        data={"name": "Theirs", "device": "6281234567003"},
    )
    theirs = r2.json()["token"]
    mixed = client.get("/send", params={**query, "token": f"{connected.token},{theirs}"}).json()
    assert mixed == {"reason": "devices must belong to an account", "status": False}
    assert client.get("/send", params={**query, "token": "bad"}).json() == {
        "reason": "token invalid",
        "status": False,
    }


def test_status_delete_and_reset(
    send: Send, connected: DeviceRef, gw: Callable[..., Any], clock: Clock, db: Database
) -> None:
    later = int((clock.now + timedelta(hours=2)).timestamp())
    body = send(connected, "form", {"target": "6281200000601,6281200000602,6281200000603",
                                     "message": "x", "schedule": str(later)})  # fmt: skip
    first, _second, third = body["id"]
    assert gw("/status", connected.token, data={"id": first}) == {
        "status": True,
        "message_status": "pending",
    }
    assert gw("/delete-message", connected.token, data={"id": first}) == {
        "detail": "message deleted",
        "status": True,
    }
    assert gw("/status", connected.token, data={"id": first})["message_status"] == "deleted"
    assert gw("/delete-message", connected.token, data={"id": first}) == {
        "reason": "message already processed",
        "status": False,
    }
    assert gw("/status", connected.token, data={"id": "999999"}) == {
        "reason": "message not found",
        "status": False,
    }
    assert gw("/reset-message", connected.token) == {
        "detail": "2 pending messages deleted",
        "status": True,
    }
    assert gw("/status", connected.token, data={"id": third})["message_status"] == "deleted"


def test_ids_of_another_account_are_not_found(
    send: Send,
    connected: DeviceRef,
    gw: Callable[..., Any],
    make_org: Any,
    db: Database,
    client: TestClient,
) -> None:
    from omnirelay.gateway import service

    body = send(connected, "form", {"target": "6281200000701", "message": "x"})
    other = make_org("Other", "admin@other.test")
    with db.transaction() as session:
        token = service.rotate_account_token(session, other.id)
    theirs = client.post(
        "/add-device", headers={"Authorization": token}, data={"name": "T", "device": "62899"}
    ).json()
    assert theirs == {"reason": "input invalid", "status": False}
    theirs = client.post(
        "/add-device",
        headers={"Authorization": token},
        data={"name": "Theirs", "device": "6289912345678"},
    ).json()
    for method in ("/status", "/delete-message"):
        assert gw(method, theirs["token"], data={"id": body["id"][0]}) == {
            "reason": "message not found",
            "status": False,
        }


def test_validate_numbers(gw: Callable[..., Any], connected: DeviceRef) -> None:
    body = gw("/validate", connected.token, data={"target": "081234567890,6281200000009,x"})
    assert body == {
        "status": True,
        "registered": ["6281234567890"],
        "not_registered": ["6281200000009"],
    }
    assert gw("/validate", connected.token, data={"target": "x"}) == {
        "reason": "target invalid",
        "status": False,
    }


def test_status_and_incoming_webhooks(
    send: Send,
    connected: DeviceRef,
    gw: Callable[..., Any],
    receiver: Any,
    deliverer: Any,
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    gw(
        "/update-device",
        connected.token,
        data={"webhookstatus": receiver.url("/status"), "webhook": receiver.url("/incoming")},
    )
    # The sandbox delivers, the phone reads; a number ending 000005 also answers.
    body = send(connected, "form", {"target": "6281200000005", "message": "hello"})
    for _ in range(4):
        drain()
        advance(5)
    statuses = wait_for(
        lambda: len(receiver.received("/status")) >= 3 and receiver.received("/status")
    )
    seen = [json.loads(r.body) for r in statuses]
    assert [s["status"] for s in seen] == ["sent", "delivered", "read"]
    assert all(s["id"] == body["id"][0] and s["device"] == connected.number for s in seen)
    incoming = wait_for(lambda: receiver.received("/incoming"))
    got = json.loads(incoming[0].body)
    assert got["device"] == connected.number and got["sender"] == "6281200000005"
    assert got["message"].startswith("Reply to: hello") and isinstance(got["timestamp"], int)
