"""Phone numbers for the notifications API: parsing, lookup data and delivery hours.

Clients of the API send numbers in Russian habits ("79939819173", "+7 (993) 981-91-73",
"89939819173"), so parsing tries the digits as an international number first and falls
back to a default region. Time-zone answers are relative to Moscow because that is how
the API reports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import carrier, geocoder
from phonenumbers import timezone as phone_tz

__all__ = [
    "InvalidPhone",
    "Phone",
    "next_daylight",
    "parse_phone",
    "phone_info",
    "phone_timezone",
]

MAX_DIGITS = 20
MOSCOW = "Europe/Moscow"
_LANG = "en"

# Mobile ranges (e.g. all of +7 9xx) map to every zone of the country, in alphabetical
# order, so "first listed" would be an arbitrary edge of the country; use where most
# people live instead.
_PRIMARY_ZONES: dict[str, str] = {
    "RU": MOSCOW,
    "US": "America/New_York",
    "CA": "America/Toronto",
    "BR": "America/Sao_Paulo",
    "AU": "Australia/Sydney",
    "MX": "America/Mexico_City",
    "ID": "Asia/Jakarta",
    "KZ": "Asia/Almaty",
    "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago",
    "CD": "Africa/Kinshasa",
    "PT": "Europe/Lisbon",
    "ES": "Europe/Madrid",
    "UA": "Europe/Kyiv",
}

# Older tzdata only knows the former spelling; phonenumbers already uses the new one.
_ZONE_ALIASES: dict[str, str] = {"Europe/Kyiv": "Europe/Kiev"}

_UNKNOWN_ZONE = "Etc/Unknown"
# "+7 993 981-91-73" -> country code, first group, rest; groups are separated by a space,
# a hyphen ("+1 212-555-1234") or a dot ("+687 20.12.34").
_INTL_GROUPS = re.compile(r"^(\+\d+) (\d+)[ .-](.+)$")


class InvalidPhone(ValueError):
    """The input is not a valid phone number."""


@dataclass(frozen=True)
class Phone:
    e164: str  # "+79939819173"
    digits: str  # "79939819173"
    region: str | None  # "RU"; None for non-geographic numbers such as +800
    number: phonenumbers.PhoneNumber


def _try_parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def parse_phone(raw: str, default_region: str | None = "RU") -> Phone:
    """Parse ``raw`` into a valid :class:`Phone` or raise :class:`InvalidPhone`.

    Caveat of trying international first: a 10-digit domestic number such as
    "4951234567" (Moscow without the trunk 7/8) is a valid German +49 number.
    """
    digits = "".join(ch for ch in raw if ch.isdigit() and ch.isascii())
    if not digits:
        raise InvalidPhone("empty phone number")
    if len(digits) > MAX_DIGITS:
        raise InvalidPhone("phone number too long")

    number = _try_parse("+" + digits, None)
    if number is None and default_region is not None:
        # The raw text keeps the trunk prefix ("8 993 ...") for the region's rules.
        number = _try_parse(raw, default_region)
    if number is None:
        raise InvalidPhone("invalid phone number")

    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    # "001" marks non-geographic numbers and "ZZ" unknown ones; neither is ISO 3166.
    if region in ("001", "ZZ"):
        region = None
    return Phone(e164=e164, digits=e164.lstrip("+"), region=region, number=number)


@cache
def _load_zone(name: str) -> ZoneInfo | None:
    for candidate in (name, _ZONE_ALIASES.get(name)):
        if candidate is None:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return None


def phone_timezone(phone: Phone) -> ZoneInfo:
    """The most likely IANA zone of ``phone``; UTC when phonenumbers does not know."""
    names = phone_tz.time_zones_for_number(phone.number)
    known = [n for n in names if n != _UNKNOWN_ZONE]
    if not known:
        return ZoneInfo("UTC")
    if len(known) > 1 and phone.region in _PRIMARY_ZONES:
        known.insert(0, _PRIMARY_ZONES[phone.region])
    for name in known:
        zone = _load_zone(name)
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


def _display_format(number: phonenumbers.PhoneNumber) -> str:
    intl = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    match = _INTL_GROUPS.match(intl)
    if match is None:
        return intl  # a single group after the country code: nothing to bracket
    country, first, rest = match.groups()
    return f"{country} ({first}) {rest}"


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta:
    # ZoneInfo always yields an offset; "or" only narrows the Optional for mypy.
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def _hours_from_moscow(zone: ZoneInfo, now: datetime) -> int | float:
    hours = (_offset(now, zone) - _offset(now, ZoneInfo(MOSCOW))).total_seconds() / 3600
    return int(hours) if hours.is_integer() else hours


def phone_info(
    raw: str, default_region: str | None = "RU", *, now: datetime | None = None
) -> dict[str, object]:
    """Describe ``raw`` the way the notifications API reports numbers.

    ``now`` picks the moment for the Moscow offset (DST); naive values are taken as UTC.
    """
    source = "".join(ch for ch in raw if ch.isdigit() and ch.isascii())
    try:
        phone = parse_phone(raw, default_region)
    except InvalidPhone:
        return {
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

    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    zone = phone_timezone(phone)
    country = geocoder.country_name_for_number(phone.number, _LANG)
    info: dict[str, object] = {
        "phone_source": source,
        "phone_number": _display_format(phone.number),
        "status": "ok",
        "country": country,
        "operator": carrier.name_for_number(phone.number, _LANG),
        "region_id": phone.region or "",
        "region_name": geocoder.description_for_number(phone.number, _LANG),
        "region_timezone": _hours_from_moscow(zone, now),
        "timezone": zone.key,  # the zone daylight delivery uses for this number
    }
    if phone.region == "RU":
        info.update(_russian_region(phone, country, now))
    return info


def _russian_region(phone: Phone, country: str, now: datetime) -> dict[str, object]:
    """Seed 001's region fields of a Russian number, from phonenumbers' data only.

    The geocoder knows the region of geographic (ABC) ranges, not of mobile (DEF) ones;
    then the region is unknown (""), not the country again. ``region_id`` is the
    numbering plan's area code of a geographic number ("383": Novosibirsk).
    ``region_timezone`` is the offset from Moscow where the data puts the number in one
    zone; a mobile range spans the country's eleven zones: null."""
    name = geocoder.description_for_number(phone.number, _LANG)
    national = phonenumbers.national_significant_number(phone.number)
    area = phonenumbers.length_of_geographical_area_code(phone.number)
    zones = [z for z in phone_tz.time_zones_for_number(phone.number) if z != _UNKNOWN_ZONE]
    zone = _load_zone(zones[0]) if len(zones) == 1 else None
    return {
        "region_name": "" if name == country else name,
        "region_id": national[:area] if area and name != country else "",
        "region_timezone": _hours_from_moscow(zone, now) if zone is not None else None,
    }


def _first_valid_utc(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant whose local time in ``tz`` is ``wall`` on ``day``, or the end of
    the DST gap that swallows ``wall`` (zoneinfo would otherwise shift it by the gap)."""
    local = datetime.combine(day, wall, tzinfo=tz)
    early = local.astimezone(UTC)  # fold=0: the first occurrence in a repeated hour
    if early.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return early
    # In a gap fold=1 reads the wall with the post-transition offset, landing before the
    # transition, while fold=0 lands after it; bisect on whole seconds for the switch.
    lo = local.replace(fold=1).astimezone(UTC).replace(microsecond=0)
    target = _offset(early, tz)
    low, high = 0, int((early - lo).total_seconds()) + 1
    while low < high:
        mid = (low + high) // 2
        if _offset(lo + timedelta(seconds=mid), tz) == target:
            high = mid
        else:
            low = mid + 1
    return lo + timedelta(seconds=low)


def next_daylight(at: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """``at`` if its local time in ``tz`` is within [start, end), else the next local
    ``start`` as an aware UTC datetime (for holding messages until waking hours)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be an aware datetime")
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("start and end are local wall times and must be naive")
    if not start < end:
        raise ValueError("start must be before end")

    local = at.astimezone(tz)
    wall = local.time()  # naive wall-clock time
    if start <= wall < end:
        return at
    day = local.date() if wall < start else local.date() + timedelta(days=1)
    return _first_valid_utc(day, start, tz)
