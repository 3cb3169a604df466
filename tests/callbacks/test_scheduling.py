"""Scheduled call-backs: start dates inside and outside the profile's windows, in the
profile's own time zone (across the date line of UTC), how far ahead, the start when due,
and the slots offered by the option schedule."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from omnirelay.callbacks.models import Call
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from tests.callbacks.conftest import ANSWERS, Account

Api = Callable[..., Any]
FMT = "%Y-%m-%d %H:%M:%S"
WEEKDAYS = [0, 1, 2, 3, 4]
OUTSIDE = "fc_start_date is outside the profile's scheduling windows."


def configure(admin: Api, account: Account, **values: Any) -> None:
    r = admin("PATCH", f"/profiles/{account.profile}", json=values)
    assert r.status_code == 200, r.text


def window(days: list[int], start: str, end: str) -> list[dict[str, Any]]:
    return [{"status": "active", "day_of_week": days, "start_time": [start], "end_time": [end]}]


def schedule(api: Api, account: Account, when: str, **fields: Any) -> Any:
    return api(
        "POST",
        "/callback",
        data={"fc_number": ANSWERS, "fc_option": account.option, "fc_start_date": when, **fields},
    )


def accepted(r: Any) -> str:
    assert r.status_code == 200, r.text
    assert r.json()["head"] == {"status": 200, "message": "Call-back scheduled successfully."}
    return r.json()["data"]["sid"]


def refused(r: Any, message: str) -> None:
    assert r.status_code == 500, r.text
    assert r.json() == {"head": {"status": 500, "message": message}, "data": None}


def next_weekday(zone: str, weekday: int, at_least: int = 1) -> date:
    """The first date with that weekday at least ``at_least`` days after today (local)."""
    day = datetime.now(ZoneInfo(zone)).date() + timedelta(days=at_least)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


def calls(db: Database) -> list[Call]:
    with db.transaction() as session:
        rows = list(session.scalars(select(Call)).all())
        session.expunge_all()
        return rows


def listed(api: Api, path: str) -> list[str]:
    r = api("GET", path)
    assert r.status_code == 200, r.text
    return [c["sid"] for c in r.json()["data"]["calls"]]


# --- validation of fc_start_date --------------------------------------------------------


def test_inside_in_local_time_while_utc_is_already_the_next_day(
    api: Api, admin: Api, account: Account, call_row: Callable[[str], Call]
) -> None:
    """Honolulu (UTC-10, no daylight saving), Monday to Friday 09:00-17:00: Friday 16:00
    there is Saturday 02:00 UTC, inside the window because the window is local."""
    zone = "Pacific/Honolulu"
    configure(admin, account, timezone=zone, entries=window(WEEKDAYS, "09:00", "17:00"))
    friday = next_weekday(zone, 4)
    sid = accepted(schedule(api, account, f"{friday} 16:00:00"))
    row = call_row(sid)
    assert row.status == "scheduled"
    assert row.start_date == datetime(
        friday.year, friday.month, friday.day, 16, tzinfo=ZoneInfo(zone)
    )
    utc = row.start_date.astimezone(UTC)
    assert (utc.date(), utc.weekday(), utc.hour) == (friday + timedelta(days=1), 5, 2)
    r = api("GET", f"/callback/{sid}/status")
    assert r.json()["data"]["start_date"] == f"{friday} 16:00:00"
    assert r.json()["data"]["status"] == "scheduled"

    accepted(schedule(api, account, f"{friday} 16:59:59"))
    accepted(schedule(api, account, f"{friday} 09:00"))
    refused(schedule(api, account, f"{friday} 17:00:00"), OUTSIDE)  # the end is excluded
    refused(schedule(api, account, f"{friday} 08:59:59"), OUTSIDE)
    saturday = friday + timedelta(days=1)
    refused(schedule(api, account, f"{saturday} 12:00:00"), OUTSIDE)


def test_outside_in_local_time_while_utc_is_still_the_day_before(
    api: Api, admin: Api, account: Account, call_row: Callable[[str], Call]
) -> None:
    """Tokyo (UTC+9, no daylight saving), Monday to Friday 07:00-10:00: Monday 08:00 there
    is Sunday 23:00 UTC (inside); Saturday 08:00 is Friday 23:00 UTC (outside)."""
    zone = "Asia/Tokyo"
    configure(admin, account, timezone=zone, entries=window(WEEKDAYS, "07:00", "10:00"))
    monday = next_weekday(zone, 0)
    sid = accepted(schedule(api, account, f"{monday} 08:00:00"))
    utc = call_row(sid).start_date.astimezone(UTC)
    assert (utc.weekday(), utc.hour) == (6, 23)
    saturday = next_weekday(zone, 5)
    refused(schedule(api, account, f"{saturday} 08:00:00"), OUTSIDE)
    refused(schedule(api, account, f"{monday} 10:00:00"), OUTSIDE)
    refused(schedule(api, account, f"{monday} 06:59:00"), OUTSIDE)


def test_los_angeles_business_hours(
    api: Api, admin: Api, account: Account, db: Database, call_row: Callable[[str], Call]
) -> None:
    zone = "America/Los_Angeles"
    configure(admin, account, timezone=zone, entries=window(WEEKDAYS, "09:00", "17:00"))
    tuesday = next_weekday(zone, 1)
    before = len(calls(db))
    refused(schedule(api, account, f"{tuesday} 08:59:00"), OUTSIDE)
    refused(schedule(api, account, f"{next_weekday(zone, 6)} 12:00:00"), OUTSIDE)  # Sunday
    assert len(calls(db)) == before  # a refusal writes nothing
    sid = accepted(schedule(api, account, f"{tuesday} 09:00:00"))
    local = call_row(sid).start_date.astimezone(ZoneInfo(zone))
    assert (local.date(), local.hour, local.minute) == (tuesday, 9, 0)
    sid = accepted(schedule(api, account, f"{tuesday} 16:30:00"))
    utc = call_row(sid).start_date.astimezone(UTC)
    # 16:30 in Los Angeles is 23:30 UTC (daylight saving) or 00:30 UTC the next day.
    assert (utc.date(), utc.hour, utc.minute) in (
        (tuesday, 23, 30),
        (tuesday + timedelta(days=1), 0, 30),
    )


def test_refused_start_dates(api: Api, admin: Api, account: Account, db: Database) -> None:
    zone = ZoneInfo("Europe/Moscow")  # the account's profile: every day, max 7 days ahead
    now = datetime.now(zone)
    yesterday = (now - timedelta(days=1)).strftime("%Y-%m-%d 12:00:00")
    refused(schedule(api, account, yesterday), "fc_start_date is in the past.")
    a_minute_ago = (now - timedelta(minutes=1)).strftime(FMT)
    refused(schedule(api, account, a_minute_ago), "fc_start_date is in the past.")
    in_eight_days = (now + timedelta(days=8)).strftime("%Y-%m-%d 12:00:00")
    refused(schedule(api, account, in_eight_days), "fc_start_date is more than 7 days ahead.")
    for bad in ("tomorrow", "2030-13-01 10:00:00", "12:00 2030-01-01"):
        refused(
            schedule(api, account, bad),
            "Invalid fc_start_date: use YYYY-MM-DD HH:MM:SS in the profile's time zone.",
        )
    assert calls(db) == []
    in_six_days = (now + timedelta(days=6)).strftime("%Y-%m-%d 12:00:00")
    accepted(schedule(api, account, in_six_days))

    configure(admin, account, max_scheduled=2)
    in_three_days = (now + timedelta(days=3)).strftime("%Y-%m-%d 12:00:00")
    refused(schedule(api, account, in_three_days), "fc_start_date is more than 2 days ahead.")

    configure(admin, account, scheduling=False)
    tomorrow = (now + timedelta(days=1)).strftime("%Y-%m-%d 12:00:00")
    refused(
        schedule(api, account, tomorrow),
        "Scheduled call-backs are not enabled for this profile.",
    )
    assert len(calls(db)) == 1
    r = api("GET", f"/profile/{account.profile}")
    assert r.json()["data"]["scheduled_callbacks"] is False


# --- a scheduled call-back starts when due ----------------------------------------------


def test_a_scheduled_call_back_is_queued_when_its_start_is_due(
    api: Api,
    admin: Api,
    account: Account,
    db: Database,
    drain: Callable[[], int],
    advance: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    zone = ZoneInfo("Europe/Moscow")
    when = (datetime.now(zone) + timedelta(days=1)).strftime("%Y-%m-%d 12:00:00")
    sid = accepted(schedule(api, account, when, fc_sms="1"))
    drain()
    assert listed(api, "/scheduled") == [sid]
    assert listed(api, "/pending") == []
    r = api("GET", "/scheduled.json")
    [row] = r.json()["data"]["calls"]
    assert row["start_date"] == when and row["status"] == "scheduled"
    assert row["option_sid"] == account.option and row["sms"] is True
    r = api("GET", "/realtime")
    [opt] = r.json()["data"]["options"]
    assert (opt["scheduled"], opt["queued"]) == (1, 0)
    with db.transaction() as session:
        assert session.scalars(select(Message)).all() == []  # no SMS until it starts

    start_at = call_row(sid).start_date
    assert start_at is not None
    due_in = (start_at - datetime.now(UTC)).total_seconds()
    assert 0 < due_in <= 2 * 86400
    # 60 s short of the start: a margin for the real clock under a slow CI run.
    advance(due_in - 60)
    drain()
    assert call_row(sid).status == "scheduled"
    advance(60)
    drain()
    row_now = call_row(sid)
    assert row_now.status == "queued" and row_now.queued_at is not None
    assert listed(api, "/scheduled") == []
    assert listed(api, "/pending") == [sid]
    r = api("GET", f"/callback/{sid}/status")
    assert r.json()["data"]["status"] == "queued"
    assert r.json()["data"]["start_date"] == when
    with db.transaction() as session:
        [sms] = session.scalars(select(Message)).all()
        assert sms.phone == ANSWERS and "in the queue" in sms.route[0]["text"]

    r = admin("POST", f"/options/{account.option}/agents", json={"name": "Ann"})
    assert r.status_code == 201, r.text
    drain()
    assert call_row(sid).status == "calling"


# --- the option schedule: slots ---------------------------------------------------------


def zone_at(hour: int) -> ZoneInfo:
    """A fixed-offset zone where it is now ``hour`` o'clock: the slots of a test do not
    depend on the time it runs (no midnight, no daylight saving)."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        if (now + timedelta(hours=offset)).hour == hour:
            return ZoneInfo("Etc/GMT" + (f"{-offset:+d}" if offset else ""))
    raise AssertionError("every hour has a zone")


@pytest.fixture
def around_now(admin: Api, account: Account) -> Any:
    """Sets a profile in a zone where it is about 06:00, with a window every day from 10
    minutes ago to 1 h 50 min from now; returns the window's start (local)."""

    def set_up(**values: Any) -> datetime:
        zone = zone_at(6)
        begin = datetime.now(zone).replace(second=0, microsecond=0) - timedelta(minutes=10)
        end = begin + timedelta(hours=2)
        days = values.pop("days", [0, 1, 2, 3, 4, 5, 6])
        configure(
            admin,
            account,
            timezone=zone.key,
            entries=window(days, begin.strftime("%H:%M"), end.strftime("%H:%M")),
            **values,
        )
        return begin

    return set_up


def slots(api: Api, account: Account) -> list[str]:
    r = api("GET", f"/profile/{account.profile}/option/{account.option}/schedule")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["option_sid"], data["profile_sid"]) == (account.option, account.profile)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:00", s) for s in data["slots"])
    return data["slots"]


def every(begin: datetime, minutes: int, first: int, count: int) -> list[str]:
    return [(begin + timedelta(minutes=minutes * k)).strftime(FMT) for k in range(first, count)]


def test_slots_of_today_only_without_daily_overflow(
    api: Api, account: Account, around_now: Callable[..., datetime]
) -> None:
    begin = around_now(offer_interval=15, max_options=50, max_scheduled=7, daily_overflow=False)
    # Every 15 min from the window's start, after now, before its end: 7 of today's 8.
    assert slots(api, account) == every(begin, 15, 1, 8)
    begin = around_now(offer_interval=30, max_options=50, daily_overflow=False)
    assert slots(api, account) == every(begin, 30, 1, 4)
    begin = around_now(offer_interval=15, max_options=3, daily_overflow=False)
    assert slots(api, account) == every(begin, 15, 1, 4)
    r = api("GET", f"/profile/{account.profile}/scheduling")
    data = r.json()["data"]
    assert (data["offer_interval"], data["max_options"], data["daily_overflow"]) == (
        15,
        3,
        False,
    )


def test_slots_of_later_days_with_daily_overflow(
    api: Api, account: Account, around_now: Callable[..., datetime]
) -> None:
    begin = around_now(offer_interval=15, max_options=12, max_scheduled=7, daily_overflow=True)
    tomorrow = begin + timedelta(days=1)
    assert slots(api, account) == every(begin, 15, 1, 8) + every(tomorrow, 15, 0, 5)
    begin = around_now(offer_interval=60, max_options=50, max_scheduled=3, daily_overflow=True)
    # 60 min steps: today's second slot only (the first passed); then two a day, 3 days.
    expected = every(begin, 60, 1, 2)
    for day in (1, 2, 3):
        expected += every(begin + timedelta(days=day), 60, 0, 2)
    assert slots(api, account) == expected
    around_now(offer_interval=15, max_options=50, max_scheduled=0, daily_overflow=True)
    assert len(slots(api, account)) == 7  # max_scheduled 0: today only


def test_slots_follow_the_days_of_the_week(
    api: Api, account: Account, around_now: Callable[..., datetime]
) -> None:
    tomorrow = datetime.now(zone_at(6)).date() + timedelta(days=1)
    begin = around_now(
        days=[tomorrow.weekday()],
        offer_interval=15,
        max_options=50,
        max_scheduled=7,
        daily_overflow=False,
    )
    assert slots(api, account) == []  # no window today
    begin = around_now(
        days=[tomorrow.weekday()],
        offer_interval=15,
        max_options=50,
        max_scheduled=7,
        daily_overflow=True,
    )
    assert slots(api, account) == every(begin + timedelta(days=1), 15, 0, 8)


def test_no_slots_without_scheduling_or_for_an_inactive_option(
    api: Api, admin: Api, account: Account, around_now: Callable[..., datetime]
) -> None:
    around_now(offer_interval=15, max_options=50, daily_overflow=False)
    assert len(slots(api, account)) == 7
    r = admin("PATCH", f"/options/{account.option}", json={"status": "closed"})
    assert r.status_code == 200, r.text
    assert slots(api, account) == []
    r = admin("PATCH", f"/options/{account.option}", json={"status": "active"})
    assert r.status_code == 200, r.text
    configure(admin, account, scheduling=False)
    assert slots(api, account) == []


def test_every_offered_slot_can_be_booked(
    api: Api, account: Account, around_now: Callable[..., datetime]
) -> None:
    around_now(offer_interval=15, max_options=50, max_scheduled=7, daily_overflow=False)
    for slot in slots(api, account):
        accepted(schedule(api, account, slot))


def test_every_offered_slot_of_later_days_can_be_booked(
    api: Api, account: Account, around_now: Callable[..., datetime]
) -> None:
    """With daily overflow the schedule offers the windows of the next ``max_scheduled``
    days; a caller who picks one of them must not be refused."""
    around_now(offer_interval=15, max_options=50, max_scheduled=1, daily_overflow=True)
    offered = slots(api, account)
    assert len(offered) == 15  # 7 today, 8 tomorrow
    refusals = {}
    for slot in offered:
        r = schedule(api, account, slot)
        if r.status_code != 200:
            refusals[slot] = r.json()["head"]["message"]
    assert refusals == {}
