"""Tests for omnirelay.phones: parsing, lookup data and delivery-hour scheduling."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from phonenumbers import timezone as phone_tz

from omnirelay.phones import (
    InvalidPhone,
    Phone,
    next_daylight,
    parse_phone,
    phone_info,
    phone_timezone,
)

MOSCOW = ZoneInfo("Europe/Moscow")
NEW_YORK = ZoneInfo("America/New_York")
WINTER = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SUMMER = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
START, END = time(9, 0), time(21, 0)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


# --- parse_phone -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "79939819173",
        "+79939819173",
        "+7 (993) 981-91-73",
        "89939819173",
        "8 (993) 981-91-73",
        "9939819173",  # no trunk prefix: invalid as +993..., so the RU fallback applies
    ],
)
def test_russian_input_styles_give_the_same_number(raw: str) -> None:
    phone = parse_phone(raw)
    assert phone.e164 == "+79939819173"
    assert phone.digits == "79939819173"
    assert phone.region == "RU"
    assert isinstance(phone.number, phonenumbers.PhoneNumber)


def test_international_interpretation_wins_over_default_region() -> None:
    # 10 digits starting with 49 read as a German number, not a Russian one.
    assert parse_phone("4930123456").e164 == "+4930123456"
    assert parse_phone("4930123456").region == "DE"


def test_trunk_prefix_needs_a_default_region() -> None:
    with pytest.raises(InvalidPhone):
        parse_phone("89939819173", default_region=None)
    assert parse_phone("79939819173", default_region=None).e164 == "+79939819173"


def test_non_geographic_number_has_no_region() -> None:
    assert parse_phone("+800 1234 5678").region is None


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "abc", "123", "+7 993 981", "7" * 21, "+" + "1" * 25, "+3531234567"],
)
def test_invalid_input_raises(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        parse_phone(raw)


def test_invalid_phone_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_phone("")


def test_phone_is_frozen() -> None:
    phone = parse_phone("79939819173")
    with pytest.raises(AttributeError):
        phone.e164 = "+70000000000"  # type: ignore[misc]


# --- phone_info --------------------------------------------------------------------


def test_info_russian_mobile() -> None:
    info = phone_info("8 (993) 981-91-73", now=WINTER)
    assert info == {
        "phone_source": "89939819173",
        "phone_number": "+7 (993) 981-91-73",
        "status": "ok",
        "country": "Russia",
        # No carrier data for this range; phonenumbers has no region for mobile (DEF)
        # ranges, which span every zone: unknown, not the country again.
        "operator": "",
        "region_id": "",
        "region_name": "",
        "region_timezone": None,
        "timezone": "Europe/Moscow",  # what daylight delivery assumes
    }


@pytest.mark.parametrize(
    ("raw", "region_id", "region_name", "hours", "zone"),
    [
        ("+7 495 123-45-67", "495", "Moscow", 0, "Europe/Moscow"),
        ("+7 383 212-34-56", "383", "Novosibirsk", 4, "Asia/Novosibirsk"),
        ("+7 423 212-34-56", "423", "Primorie territory", 7, "Asia/Vladivostok"),
        ("+7 345 212-34-56", "345", "Tyumen", 2, "Asia/Yekaterinburg"),
    ],
)
def test_info_russian_landline_region(
    raw: str, region_id: str, region_name: str, hours: int, zone: str
) -> None:
    info = phone_info(raw, now=WINTER)
    assert info["country"] == "Russia"
    assert (info["region_id"], info["region_name"]) == (region_id, region_name)
    assert info["region_timezone"] == hours and info["timezone"] == zone


def test_info_russian_mobile_with_known_operator() -> None:
    info = phone_info("+7 903 123-45-67", now=WINTER)
    assert info["operator"] == "Beeline"
    assert phone_info("+7 924 123-45-67", now=WINTER)["operator"] == "MegaFon"
    assert info["phone_number"] == "+7 (903) 123-45-67"


@pytest.mark.parametrize(("now", "hours"), [(WINTER, -8), (SUMMER, -7)])
def test_info_new_york_depends_on_dst(now: datetime, hours: int) -> None:
    info = phone_info("+1 212 555 1234", now=now)
    assert info["status"] == "ok"
    assert info["phone_number"] == "+1 (212) 555-1234"
    assert info["country"] == "United States"
    assert info["region_id"] == "US"
    assert info["region_name"] == "New York, NY"
    assert info["timezone"] == "America/New_York"
    assert info["region_timezone"] == hours
    assert type(info["region_timezone"]) is int


@pytest.mark.parametrize(("now", "hours"), [(WINTER, -3), (SUMMER, -2)])
def test_info_london(now: datetime, hours: int) -> None:
    info = phone_info("+44 20 7946 0958", now=now)
    assert info["phone_number"] == "+44 (20) 7946 0958"
    assert info["country"] == "United Kingdom"
    assert info["region_id"] == "GB"
    assert info["region_name"] == "London"
    assert info["timezone"] == "Europe/London"
    assert info["region_timezone"] == hours


def test_info_german_mobile() -> None:
    info = phone_info("+49 1512 3456789", now=WINTER)
    assert info["phone_number"] == "+49 (1512) 3456789"
    assert info["country"] == "Germany"
    assert info["operator"] == "T-Mobile"
    assert info["region_id"] == "DE"
    assert info["timezone"] == "Europe/Berlin"
    assert info["region_timezone"] == -2


def test_info_fractional_offset_is_a_float() -> None:
    info = phone_info("+91 98765 43210", now=WINTER)  # India, UTC+5:30
    assert info["region_timezone"] == 2.5
    assert isinstance(info["region_timezone"], float)


def test_info_single_group_has_no_parentheses() -> None:
    info = phone_info("+591 71234567", now=WINTER)  # Bolivian mobile
    assert info["status"] == "ok"
    assert info["phone_number"] == "+591 71234567"


def test_info_naive_now_is_utc() -> None:
    naive = WINTER.replace(tzinfo=None)
    assert phone_info("+12125551234", now=naive) == phone_info("+12125551234", now=WINTER)


@pytest.mark.parametrize(("raw", "source"), [("+7 (993) 981", "7993981"), ("abc", ""), ("", "")])
def test_info_invalid(raw: str, source: str) -> None:
    assert phone_info(raw, now=WINTER) == {
        "phone_source": source,
        "phone_number": "",
        "status": "invalid",
        "country": "",
        "operator": "",
        "region_id": "",
        "region_name": "",
        "region_timezone": None,
        "timezone": "",
    }


# --- phone_timezone ----------------------------------------------------------------


def test_timezone_russian_mobile_uses_primary_zone() -> None:
    phone = parse_phone("79939819173")
    # phonenumbers lists every Russian zone (plus Almaty and Bucharest) for +7 9xx.
    assert len(phone_tz.time_zones_for_number(phone.number)) > 1
    assert phone_timezone(phone) == MOSCOW


def test_timezone_single_zone_is_used_directly() -> None:
    assert phone_timezone(parse_phone("+12125551234")) == NEW_YORK
    assert phone_timezone(parse_phone("+74951234567")) == MOSCOW  # Moscow landline


def test_timezone_kazakh_mobile() -> None:
    assert phone_timezone(parse_phone("+77012345678")).key == "Asia/Almaty"


def test_timezone_unknown_is_utc() -> None:
    phone = parse_phone("+800 1234 5678")
    assert phone_tz.time_zones_for_number(phone.number) == ("Etc/Unknown",)
    assert phone_timezone(phone) == ZoneInfo("UTC")


def test_timezone_accepts_hand_built_phone() -> None:
    number = phonenumbers.parse("+12125551234")
    phone = Phone(e164="+12125551234", digits="12125551234", region="US", number=number)
    assert phone_timezone(phone) == NEW_YORK


# --- next_daylight -----------------------------------------------------------------

# Window 09:00-21:00 local. Moscow is UTC+3 all year; New York in January is UTC-5.
EDGE_CASES = [
    # zone, at (UTC), expected (UTC)
    pytest.param(MOSCOW, utc(2026, 1, 15, 6), utc(2026, 1, 15, 6), id="msk-at-start"),
    pytest.param(MOSCOW, utc(2026, 1, 15, 5, 59, 59), utc(2026, 1, 15, 6), id="msk-second-before"),
    pytest.param(MOSCOW, utc(2026, 1, 15, 12), utc(2026, 1, 15, 12), id="msk-inside"),
    pytest.param(
        MOSCOW, utc(2026, 1, 15, 17, 59, 59), utc(2026, 1, 15, 17, 59, 59), id="msk-last-second"
    ),
    pytest.param(MOSCOW, utc(2026, 1, 15, 18), utc(2026, 1, 16, 6), id="msk-at-end"),
    pytest.param(MOSCOW, utc(2026, 1, 15, 20, 30), utc(2026, 1, 16, 6), id="msk-late-night"),
    # 02:00 MSK on the 16th is still the 15th in UTC; the answer is that local morning.
    pytest.param(MOSCOW, utc(2026, 1, 15, 23), utc(2026, 1, 16, 6), id="msk-after-midnight"),
    pytest.param(NEW_YORK, utc(2026, 1, 15, 14), utc(2026, 1, 15, 14), id="ny-at-start"),
    pytest.param(
        NEW_YORK, utc(2026, 1, 15, 13, 59, 59), utc(2026, 1, 15, 14), id="ny-second-before"
    ),
    pytest.param(NEW_YORK, utc(2026, 1, 15, 20), utc(2026, 1, 15, 20), id="ny-inside"),
    # 21:00 EST is 02:00 UTC the next day.
    pytest.param(NEW_YORK, utc(2026, 1, 16, 2), utc(2026, 1, 16, 14), id="ny-at-end"),
    pytest.param(NEW_YORK, utc(2026, 1, 16, 4, 30), utc(2026, 1, 16, 14), id="ny-late-night"),
]


@pytest.mark.parametrize(("tz", "at", "expected"), EDGE_CASES)
def test_next_daylight_edges(tz: ZoneInfo, at: datetime, expected: datetime) -> None:
    result = next_daylight(at, tz, START, END)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_next_daylight_returns_at_unchanged_when_inside() -> None:
    at = utc(2026, 1, 15, 12)
    assert next_daylight(at, MOSCOW, START, END) is at


def test_next_daylight_across_spring_forward() -> None:
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    late = utc(2026, 3, 8, 3)  # 22:00 EST on the 7th
    result = next_daylight(late, NEW_YORK, START, END)
    assert result == utc(2026, 3, 8, 13)  # 09:00 EDT, not 14:00 UTC as in winter
    assert result.astimezone(NEW_YORK).time() == START


@pytest.mark.parametrize("start", [time(2, 0), time(2, 30), time(2, 59, 59)])
def test_next_daylight_start_in_dst_gap_moves_to_gap_end(start: time) -> None:
    at = utc(2026, 3, 8, 5)  # 00:00 EST, before the gap
    result = next_daylight(at, NEW_YORK, start, time(20, 0))
    assert result == utc(2026, 3, 8, 7)  # 03:00 EDT, the first valid local moment
    assert result.astimezone(NEW_YORK).time() == time(3, 0)


def test_next_daylight_across_fall_back() -> None:
    # New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00 UTC).
    late = utc(2026, 11, 1, 2)  # 22:00 EDT on Oct 31
    assert next_daylight(late, NEW_YORK, START, END) == utc(2026, 11, 1, 14)  # 09:00 EST


def test_next_daylight_start_in_repeated_hour_takes_first_occurrence() -> None:
    at = utc(2026, 11, 1, 4)  # 00:00 EDT
    result = next_daylight(at, NEW_YORK, time(1, 30), time(20, 0))
    assert result == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, before the clocks go back


def test_next_daylight_accepts_non_utc_aware_input() -> None:
    at = datetime(2026, 1, 15, 23, 30, tzinfo=MOSCOW)
    assert next_daylight(at, MOSCOW, START, END) == utc(2026, 1, 16, 6)


@pytest.mark.parametrize(
    ("start", "end"), [(time(9), time(9)), (time(21), time(9))], ids=["empty", "overnight"]
)
def test_next_daylight_requires_start_before_end(start: time, end: time) -> None:
    with pytest.raises(ValueError, match="before"):
        next_daylight(utc(2026, 1, 15, 12), MOSCOW, start, end)


def test_next_daylight_rejects_naive_at() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_daylight(datetime(2026, 1, 15, 12), MOSCOW, START, END)
