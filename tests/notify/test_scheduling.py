"""delivery_date and daydelivery: the daylight window in the recipient's own time zone,
taken from the phone number, and the ttl counting from the moment it may be sent."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from omnirelay.messaging.models import Message
from tests.notify.conftest import DELIVERED, US_NUMBER

FMT = "%Y-%m-%d %H:%M:%S"
MOSCOW, NEW_YORK = ZoneInfo("Europe/Moscow"), ZoneInfo("America/New_York")
SILENT = "79160000002"


def sms(phone: str = DELIVERED, **kw: object) -> dict[str, object]:
    return {"sender": "SANDBOX", "phone": phone, "text": "x", **kw}


def local_tomorrow(tz: ZoneInfo, at: time) -> datetime:
    """Tomorrow at ``at`` on the wall clock of ``tz``, in UTC."""
    day = (datetime.now(UTC).astimezone(tz) + timedelta(days=1)).date()
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def dispatch_at(db, message_id: str) -> datetime:
    """When the message is due to be dispatched (it is its own job, ADR 18)."""
    with db.transaction() as session:
        row = session.get(Message, message_id)
        assert row is not None and row.due_at is not None
        return row.due_at


def test_delivery_date_schedules_the_dispatch(v3, message, db):
    when = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    mid = v3("message/sendSMS", sms(delivery_date=when.strftime(FMT))).json()["id"]
    assert message(mid).send_after == when
    assert dispatch_at(db, mid) == when


def test_delivery_date_limits_and_format(v3):
    too_far = datetime.now(UTC) + timedelta(hours=72, minutes=1)
    r = v3("message/sendSMS", sms(delivery_date=too_far.strftime(FMT)))
    assert r.status_code == 400 and r.json()["code"] == 1021
    assert "72 hours" in r.json()["desc"]
    for bad in ("2026-13-01 10:00:00", "tomorrow", "2026-01-01T10:00:00Z", 12345):
        r = v3("message/sendSMS", sms(delivery_date=bad))
        assert (r.status_code, r.json()["code"], r.json()["desc"]) == (
            400,
            1054,
            "Wrong DATE format",
        )
    almost = datetime.now(UTC) + timedelta(hours=71, minutes=59)
    assert v3("message/sendSMS", sms(delivery_date=almost.strftime(FMT))).status_code == 200


def test_a_past_delivery_date_sends_now(v3, message):
    past = datetime.now(UTC) - timedelta(hours=1)
    before = datetime.now(UTC)
    mid = v3("message/sendSMS", sms(delivery_date=past.strftime(FMT))).json()["id"]
    assert message(mid).send_after >= before - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("tz", "phone"), [(MOSCOW, DELIVERED), (NEW_YORK, US_NUMBER)], ids=["moscow", "new-york"]
)
@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        (time(8, 59, 59), "start"),  # one second before the window: wait for 09:00
        (time(9, 0, 0), "same"),  # at the start: go
        (time(19, 59, 59), "same"),  # the last second inside
        (time(20, 0, 0), "next"),  # at the end: tomorrow 09:00
        (time(3, 0, 0), "start"),  # night
    ],
)
def test_daydelivery_window_edges_in_the_recipients_zone(v3, message, tz, phone, wall, expected):
    at = local_tomorrow(tz, wall)
    mid = v3("message/sendSMS", sms(phone, daydelivery=True, delivery_date=at.strftime(FMT)))
    assert mid.status_code == 200, mid.text
    got = message(mid.json()["id"]).send_after
    local_day = at.astimezone(tz).date()
    if expected == "same":
        assert got == at
    elif expected == "start":
        assert got == datetime.combine(local_day, time(9), tzinfo=tz).astimezone(UTC)
    else:
        nxt = local_day + timedelta(days=1)
        assert got == datetime.combine(nxt, time(9), tzinfo=tz).astimezone(UTC)


def test_the_same_moment_is_day_in_one_zone_and_night_in_the_other(v3, message):
    # 12:00 in Moscow is 04:00 or 05:00 in New York.
    at = local_tomorrow(MOSCOW, time(12, 0))
    ru = v3("message/sendSMS", sms(DELIVERED, daydelivery=True, delivery_date=at.strftime(FMT)))
    us = v3("message/sendSMS", sms(US_NUMBER, daydelivery=True, delivery_date=at.strftime(FMT)))
    assert message(ru.json()["id"]).send_after == at
    us_at = message(us.json()["id"]).send_after
    assert us_at > at
    assert us_at.astimezone(NEW_YORK).time() == time(9, 0)


def test_the_window_is_configurable(client, org, v3, message):
    r = client.put(
        "/api/notifications/settings",
        json={"daylight_start": "10:30", "daylight_end": "11:00"},
        headers=org.headers(),
    )
    assert r.status_code == 200, r.text
    at = local_tomorrow(MOSCOW, time(11, 0))
    mid = v3("message/sendSMS", sms(daydelivery=True, delivery_date=at.strftime(FMT))).json()["id"]
    got = message(mid).send_after.astimezone(MOSCOW)
    assert (got.date() - at.astimezone(MOSCOW).date(), got.time()) == (
        timedelta(days=1),
        time(10, 30),
    )
    bad = client.put(
        "/api/notifications/settings",
        json={"daylight_start": "12:00", "daylight_end": "11:00"},
        headers=org.headers(),
    )
    assert bad.status_code == 400


def test_ttl_counts_from_the_moment_it_may_be_sent(v3, drain, advance, message):
    at = local_tomorrow(MOSCOW, time(3, 0))  # night: held until 09:00, six hours later
    mid = v3(
        "message/sendSMS", sms(SILENT, ttl=60, daydelivery=True, delivery_date=at.strftime(FMT))
    ).json()["id"]
    held = (message(mid).send_after - datetime.now(UTC)).total_seconds()
    assert held > 6 * 3600 - 5
    drain()
    assert message(mid).status == "accepted"  # not sent yet, and its ttl not running
    advance(held + 1)
    drain()
    assert message(mid).status == "sent"  # held for hours, yet not expired
    advance(61)
    drain()
    assert message(mid).status == "expired"
