"""Seed 002's device methods: token kinds and their answers, limits, pairing, the
delete-device OTP with its timers (on the test's clock), and the connection webhook."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from omnirelay.db import Database
from omnirelay.gateway.models import Device
from omnirelay.surfaces.gateway.routes import TOKEN_ANSWERS
from tests.gateway.conftest import Account, Clock, DeviceRef

ACCOUNT_METHODS = ("get-devices", "add-device")


@pytest.mark.one_engine
@pytest.mark.parametrize("method", sorted(TOKEN_ANSWERS))
def test_every_method_answers_a_missing_or_wrong_token_in_the_seeds_words(
    method: str, gw: Callable[..., Any], account: Account, add_device: Callable[..., DeviceRef]
) -> None:
    device = add_device()
    reason, key = TOKEN_ANSWERS[method]
    # The other kind of token is as wrong as none at all.
    wrong_kind = device.token if method in ACCOUNT_METHODS else account.token
    for token in (None, "nope", wrong_kind):
        body = gw(f"/{method}", token, data={"target": "6281200000001", "message": "x"})
        assert body == {key: reason, "status": False}


def test_add_device_answers_the_device_and_its_token_once(
    gw: Callable[..., Any], account: Account, db: Database
) -> None:
    body = gw("/add-device", account.token, data={"name": "Shop", "device": "08123456789"})
    assert body["status"] is True and body["device"] == "08123456789"
    assert body["autoread"] == "off" and body["personal"] == "off" and body["group"] == "off"
    token = body["token"]
    with db.transaction() as session:
        row = session.scalars(select(Device)).one()
        assert token not in (row.token_hash, row.token_hint)  # stored hashed
    listing = gw("/get-devices", account.token)
    assert listing["devices"] == 1 and listing["connected"] == 0 and listing["type"] == "device"
    (entry,) = listing["data"]
    assert entry["device"] == "08123456789" and entry["package"] == "Free"
    assert entry["status"] == "disconnect" and token not in entry["token"]
    profile = gw("/device", token)
    assert profile["device"] == "08123456789" and profile["device_status"] == "disconnect"
    assert profile["quota"] == "1000" and profile["messages"] == 0 and profile["status"] is True


@pytest.mark.one_engine
@pytest.mark.parametrize(
    "fields",
    [
        {"name": "A", "device": "08123456789"},  # name too short
        {"name": "x" * 31, "device": "08123456789"},  # name too long
        {"name": "Shop", "device": "0812345"},  # 7 digits
        {"name": "Shop", "device": "0812345678901234"},  # 16 digits
        {"name": "Shop", "device": "08123abc789"},
        {"name": "Shop"},
    ],
)
def test_add_device_refuses_bad_input(
    fields: dict[str, str], gw: Callable[..., Any], account: Account
) -> None:
    assert gw("/add-device", account.token, data=fields) == {
        "reason": "input invalid",
        "status": False,
    }


def test_a_number_exists_once_on_the_whole_server(
    gw: Callable[..., Any], account: Account, make_org: Any, db: Database
) -> None:
    from omnirelay.gateway import service

    assert gw("/add-device", account.token, data={"name": "A1", "device": "08123456789"})["status"]
    other = make_org("Other", "admin@other.test")
    with db.transaction() as session:
        other_token = service.rotate_account_token(session, other.id)
    for token in (account.token, other_token):
        body = gw("/add-device", token, data={"name": "A2", "device": "08123456789"})
        assert body == {"reason": "device already exist", "status": False}


def test_ten_free_devices_and_one_connected_at_a_time(
    gw: Callable[..., Any], account: Account, add_device: Callable[..., DeviceRef], db: Database
) -> None:
    devices = [add_device(f"62812000000{i:02d}") for i in range(10)]
    body = gw("/add-device", account.token, data={"name": "11th", "device": "6281200000099"})
    assert body == {"reason": "too much free device", "status": False}
    assert gw("/qr", devices[0].token, data={"type": "code"})["status"] is True
    # Connect the first (the admin's scan), then the second may not connect.
    _scan(db, devices[0])
    assert gw("/qr", devices[1].token) == {"reason": "too much free device", "status": False}
    assert gw("/get-devices", account.token)["connected"] == 1


def _scan(db: Database, device: DeviceRef) -> None:
    from omnirelay.db import utcnow
    from omnirelay.gateway import service

    with db.transaction() as session:
        row = service.device_by_token(session, device.token)
        assert row is not None and service.scanned(session, row.id, utcnow())


def test_qr_is_a_png_and_the_sandbox_phone_scans_it(
    gw: Callable[..., Any],
    add_device: Callable[..., DeviceRef],
    advance: Callable[[float], None],
    drain: Callable[[], int],
) -> None:
    device = add_device()
    body = gw("/qr", device.token, data={"type": "qr"})
    assert body["status"] is True
    assert base64.b64decode(body["url"]).startswith(b"\x89PNG\r\n\x1a\n")
    code = gw("/qr", device.token, data={"type": "code"})["code"]
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", code)
    assert gw("/qr", device.token, data={"type": "fax"}) == {
        "reason": "input invalid",
        "status": False,
    }
    drain()
    assert gw("/device", device.token)["device_status"] == "disconnect"  # not scanned yet
    advance(10)  # the sandbox phone scans after scan_delay (5 s)
    drain()
    assert gw("/device", device.token)["device_status"] == "connect"
    assert gw("/qr", device.token) == {"reason": "device already connect", "status": False}


def test_disconnect_and_the_connection_webhook(
    gw: Callable[..., Any],
    connected: DeviceRef,
    receiver: Any,
    deliverer: Any,
) -> None:
    from tests.notify.conftest import wait_for

    hook = receiver.url("/connect")
    assert gw("/update-device", connected.token, data={"webhookconnect": hook}) == {
        "detail": "device updated!",
        "status": True,
    }
    assert gw("/disconnect", connected.token) == {"detail": "device disconnected", "status": True}
    assert gw("/disconnect", connected.token) == {
        "detail": "device already disconnected",
        "status": False,
    }
    got = wait_for(lambda: receiver.received("/connect"))
    body = json.loads(got[0].body)
    assert body["device"] == connected.number and body["status"] == "disconnect"
    assert body["reason"] == "disconnected by api" and isinstance(body["timestamp"], int)
    assert "webhook-signature" in got[0].headers  # through the one webhook engine


def test_update_device_resolves_webhook_hosts_with_no_transaction_open(
    gw: Callable[..., Any],
    add_device: Callable[..., DeviceRef],
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SSRF guard asks the resolver about a webhook's host. Meanwhile another request
    can write (on SQLite an open transaction is the only write lock, held for as long as
    a slow resolver takes)."""
    import socket

    from sqlalchemy import text

    device = add_device()
    wrote: list[str] = []
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "hooks.example.test":
            return real(host, port, *args, **kwargs)
        try:
            with db.transaction() as session:
                session.execute(text("UPDATE gateway_devices SET name = name"))
            wrote.append("committed")
        except Exception as exc:  # the write lock held by /update-device
            wrote.append(repr(exc))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    hook = "http://hooks.example.test/in"
    answer = gw("/update-device", device.token, data={"webhook": hook})
    assert answer == {"detail": "device updated!", "status": True}
    assert wrote == ["committed"]
    with db.transaction() as session:
        assert session.scalars(select(Device.webhook)).one() == hook
    wrong = gw("/update-device", "no-such-token", data={"webhook": "http://10.1.2.3/in"})
    assert wrong == {"reason": "device not found", "status": False}  # the token's answer first
    wrong = gw("/update-device", "no-such-token", data={"webhook": hook})
    assert wrong == {"reason": "device not found", "status": False}
    assert wrote == ["committed"]  # a caller without a device's token makes no DNS lookup


def test_update_device_checks_webhook_urls_and_fields(
    gw: Callable[..., Any], add_device: Callable[..., DeviceRef], db: Database
) -> None:
    device = add_device()
    bad = gw("/update-device", device.token, data={"webhook": "http://10.1.2.3/hook"})
    assert bad["status"] is False and bad["reason"].startswith("webhook url")
    bad = gw("/update-device", device.token, data={"webhookstatus": "ftp://example.com/x"})
    assert bad["status"] is False and bad["reason"].startswith("webhook url")
    ok = gw(
        "/update-device",
        device.token,
        data={"name": "Renamed", "autoread": "true", "countryCode": "1", "target": "6281299"},
    )
    assert ok == {"reason": "input invalid", "status": False}  # target too short: nothing kept
    ok = gw(
        "/update-device",
        device.token,
        data={"name": "Renamed", "autoread": "true", "countryCode": "1"},
    )
    assert ok["status"] is True
    with db.transaction() as session:
        row = session.scalars(select(Device)).one()
        assert (row.name, row.autoread, row.country_code, row.webhook) == (
            "Renamed",
            True,
            "1",
            None,
        )


# --- delete with OTP ------------------------------------------------------------------------


def _code(db: Database) -> str:
    from omnirelay.messaging.models import Message

    with db.transaction() as session:
        texts = session.scalars(
            select(Message.route)
            .where(Message.method == "gateway.otp")
            .order_by(Message.created_at)  # the newest code last (a test clock tells them apart)
        ).all()
    match = re.search(r"is (\d{6})\.", texts[-1][0]["text"])
    assert match
    return match.group(1)


def test_delete_device_with_otp_and_its_timers(
    gw: Callable[..., Any],
    add_device: Callable[..., DeviceRef],
    clock: Clock,
    db: Database,
) -> None:
    device = add_device()
    assert gw("/delete-device", device.token, data={"otp": "123456"}) == {
        "reason": "otp haven't requested",
        "status": False,
    }
    asked = gw("/delete-device", device.token, data={"otp": ""})
    assert asked["status"] is True
    code = _code(db)
    clock.tick(60)
    again = gw("/delete-device", device.token, data={"otp": ""})
    assert again == {"reason": "please wait 541 seconds before requesting new otp", "status": False}
    wrong = "000000" if code != "000000" else "111111"
    assert gw("/delete-device", device.token, data={"otp": wrong}) == {
        "reason": "incorrect OTP",
        "status": False,
    }
    assert gw("/delete-device", device.token, data={"otp": wrong})["reason"] == "incorrect OTP"
    locked = gw("/delete-device", device.token, data={"otp": wrong})
    assert locked == {"reason": "delete failed. try again in 300 seconds", "status": False}
    clock.tick(100)  # even the right code waits for the lock
    assert gw("/delete-device", device.token, data={"otp": code}) == {
        "reason": "delete failed. try again in 201 seconds",
        "status": False,
    }
    clock.tick(201)
    done = gw("/delete-device", device.token, data={"otp": code})
    assert done == {"detail": f"device {device.number} successfully deleted", "status": True}
    assert gw("/device", device.token) == {"reason": "token invalid", "status": False}


def test_an_otp_expires(
    gw: Callable[..., Any], add_device: Callable[..., DeviceRef], clock: Clock, db: Database
) -> None:
    device = add_device()
    gw("/delete-device", device.token, data={"otp": ""})
    code = _code(db)
    clock.tick(601)
    assert gw("/delete-device", device.token, data={"otp": code}) == {
        "reason": "otp haven't requested",
        "status": False,
    }
    # After the wait a new code may be asked for; the old one is worth nothing.
    assert gw("/delete-device", device.token, data={"otp": ""})["status"] is True
    new = _code(db)
    if new != code:
        assert gw("/delete-device", device.token, data={"otp": code})["reason"] == "incorrect OTP"
    assert gw("/delete-device", device.token, data={"otp": new})["status"] is True


def test_the_otp_goes_to_the_accounts_number_through_omnirelays_sending(
    gw: Callable[..., Any],
    connected: DeviceRef,
    db: Database,
    account: Account,
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    from omnirelay.gateway import service
    from omnirelay.messaging.models import Message

    with db.transaction() as session:
        service.set_otp_number(session, account.org.id, "6281211112222")
    gw("/delete-device", connected.token, data={"otp": ""})
    drain()
    advance(5)
    drain()
    with db.transaction() as session:
        otp = session.scalars(select(Message).where(Message.method == "gateway.otp")).one()
        assert otp.phone == "6281211112222" and otp.status in ("delivered", "read")
        assert otp.route[0]["sender"] == connected.number


def test_the_otp_of_a_disconnected_device_goes_when_it_connects(
    gw: Callable[..., Any],
    add_device: Callable[..., DeviceRef],
    db: Database,
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    from omnirelay.messaging.models import Message

    def otp_status() -> str:
        with db.transaction() as session:
            return str(
                session.scalars(select(Message.status).where(Message.method == "gateway.otp")).one()
            )

    device = add_device()  # never connected: the device itself sends the code
    assert gw("/delete-device", device.token, data={"otp": ""})["status"] is True
    drain()
    advance(10)  # less than the hold's first look (15 s)
    drain()
    assert otp_status() == "accepted"  # held for its device
    gw("/qr", device.token)
    _scan(db, device)  # connecting wakes the code too, not only /send's messages
    drain()
    assert otp_status() != "accepted"
