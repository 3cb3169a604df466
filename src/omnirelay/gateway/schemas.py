"""Parsing a seed-002 send request (multipart, urlencoded or JSON: all arrive as a flat
dict of fields) into one item per target, with the seed's failure words."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_MESSAGE = 60_000
MAX_FILE = 4 * 1024 * 1024
MAX_TARGETS = 1000
MAX_DATA = 100  # requests in one ``data`` batch
# Times as Unix seconds: past these a date overflows (year 9999), which is a refusal.
MAX_EPOCH = 253_402_300_799
MAX_FOLLOWUP = 10 * 365 * 86400
MAX_FILENAME = 255  # characters of a file's name (the disk name is ours: see the surface)
FILE_TYPES = {
    "jpg", "jpeg", "png", "gif", "webp",  # images
    "mp4", "3gp", "mov",  # video
    "mp3", "ogg", "opus", "aac", "m4a", "wav", "amr",  # audio
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv", "zip", "rar",  # documents
}  # fmt: skip
_DELAY = re.compile(r"^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$")
_VAR = re.compile(r"\{(name|var\d{1,2})\}")


class SendInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file, already saved by the surface."""

    path: str
    filename: str
    size: int


@dataclass
class SendItem:
    target: str  # digits (a group: its id without ``@g.us``)
    display: str  # as answered in ``target[]``
    text: str | None
    at: datetime  # when to send
    extra: dict[str, Any] = field(default_factory=dict)
    # A `schedule` (or `followup`) put it later; a `delay` only spaces targets out, and
    # such a send answers "in queue" like any unscheduled one.
    scheduled: bool = False


@dataclass
class SendRequest:
    items: list[SendItem]
    connect_only: bool = True


def _bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "on", "yes")


def _str(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if not isinstance(value, str):
        raise SendInvalid("input invalid")
    return value


def normalize_target(raw: str, country_code: str) -> tuple[str, str] | None:
    """(digits or group id, display) of one target, or None when it is not a number."""
    raw = raw.strip()
    if raw.endswith("@g.us"):
        group = raw[: -len("@g.us")]
        shaped = re.fullmatch(r"\d{8,20}", group) or re.fullmatch(r"\d{8,15}-\d{6,12}", group)
        return (group, raw) if shaped and len(group) <= 20 else None
    digits = re.sub(r"[\s\-().]", "", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("0") and country_code != "0":
        digits = country_code + digits[1:]
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        return None
    return digits, digits


def _fill(text: str, values: Sequence[str]) -> str:
    """``{name}``, ``{var1}``, ... from ``number|name|var1|...``; unknown ones stay."""
    names = {"name": values[0] if values else ""}
    for i, value in enumerate(values[1:], start=1):
        names[f"var{i}"] = value

    def sub(m: re.Match[str]) -> str:
        return names.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def _delays(spec: str, rng: random.Random) -> Callable[[], float]:
    if not spec.strip():
        return lambda: 0.0
    m = _DELAY.match(spec)
    if not m:
        raise SendInvalid("input invalid")
    low = int(m.group(1))
    high = int(m.group(2)) if m.group(2) else low
    if high < low:
        raise SendInvalid("input invalid")
    return lambda: float(rng.randint(low, high))


def _location(value: str) -> str | None:
    if not value.strip():
        return None
    try:
        lat_s, lon_s = value.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise SendInvalid("input invalid") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise SendInvalid("input invalid")
    return f"{lat},{lon}"


def _url(value: str, check: Callable[[str], None]) -> str | None:
    value = value.strip()
    if not value:
        return None
    if not re.match(r"^https?://[^\s/]+", value, re.IGNORECASE):
        raise SendInvalid("url invalid")
    try:
        check(value)
    except Exception as exc:
        # The guard resolves the host: a name that does not resolve is unreachable.
        reason = "url unreachable" if "resolve" in str(exc).lower() else "url invalid"
        raise SendInvalid(reason) from exc
    return value


def _poll(fields: dict[str, Any]) -> dict[str, Any] | None:
    choices_raw = _str(fields, "choices")
    if not choices_raw.strip():
        return None
    choices = [c.strip() for c in choices_raw.split(",") if c.strip()]
    if not 2 <= len(choices) <= 12 or len(set(choices)) != len(choices):
        raise SendInvalid("input invalid")
    select = _str(fields, "select").strip().lower() or "single"
    if select not in ("single", "multiple"):
        raise SendInvalid("input invalid")
    name = _str(fields, "pollname").strip()
    if not name:
        raise SendInvalid("input invalid")
    return {"choices": choices, "select": select, "pollname": name}


def parse_send(
    fields: dict[str, Any],
    *,
    file: StoredFile | None,
    default_country: str,
    now: datetime,
    check_url: Callable[[str], None],
    rng: random.Random | None = None,
) -> SendRequest:
    """One request, or a ``data`` batch of requests, into items in sending order."""
    rng = rng or random.Random()
    data = fields.get("data")
    if data not in (None, ""):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise SendInvalid("JSON format invalid") from None
        if not isinstance(data, list) or not data or len(data) > MAX_DATA:
            raise SendInvalid("JSON format invalid")
        items: list[SendItem] = []
        start = now
        sequence = _bool(fields.get("sequence"), False)
        for sub in data:
            if not isinstance(sub, dict):
                raise SendInvalid("JSON format invalid")
            one = _one({**sub}, None, default_country, start, check_url, rng)
            items.extend(one)
            if sequence and one:
                # In sequence: the next request starts after this one's last target.
                start = max(start, max(i.at for i in one))
        return SendRequest(items, _bool(fields.get("connectOnly"), True))
    return SendRequest(
        _one(fields, file, default_country, now, check_url, rng),
        _bool(fields.get("connectOnly"), True),
    )


def _one(
    fields: dict[str, Any],
    file: StoredFile | None,
    default_country: str,
    now: datetime,
    check_url: Callable[[str], None],
    rng: random.Random,
) -> list[SendItem]:
    country = _str(fields, "countryCode").strip() or default_country
    if not country.isdigit() or len(country) > 4:
        raise SendInvalid("input invalid")
    message = _str(fields, "message")
    if len(message) > MAX_MESSAGE:
        raise SendInvalid("input invalid")
    url = _url(_str(fields, "url"), check_url)
    filename = _str(fields, "filename").strip() or None
    if len(filename or "") > MAX_FILENAME or (
        file is not None and len(file.filename) > MAX_FILENAME
    ):
        raise SendInvalid("input invalid")
    if file is not None:
        ext = file.filename.rsplit(".", 1)[-1].lower() if "." in file.filename else ""
        if ext not in FILE_TYPES:
            raise SendInvalid("file format not supported")
        if file.size > MAX_FILE:
            raise SendInvalid("file size must under 4MB")
    location = _location(_str(fields, "location"))
    poll = _poll(fields)
    if not (message or url or file or location or poll):
        raise SendInvalid("input invalid")
    schedule_raw = _str(fields, "schedule").strip()
    at = now
    if schedule_raw and schedule_raw != "0":
        at = max(now, datetime.fromtimestamp(_seconds(schedule_raw, MAX_EPOCH), UTC))
    followup = _str(fields, "followup").strip()
    if followup and followup != "0":
        at += timedelta(seconds=_seconds(followup, MAX_FOLLOWUP))
        if at.timestamp() > MAX_EPOCH:
            raise SendInvalid("input invalid")
    duration = _str(fields, "duration").strip()
    if duration:
        _seconds(duration, 2**31 - 1)  # an integer column
    delay = _delays(_str(fields, "delay"), rng)
    extra: dict[str, Any] = {
        "url": url,
        "filename": filename or (file.filename if file else None),
        "file": file.path if file else None,
        "location": location,
        "typing": _bool(fields.get("typing"), False),
        "duration": int(duration) if duration else None,
        "preview": _bool(fields.get("preview"), True) if url or message else None,
        "inboxid": _str(fields, "inboxid").strip() or None,
        **(poll or {}),
    }
    raw_targets = [t for t in _str(fields, "target").split(",") if t.strip()]
    if not raw_targets or len(raw_targets) > MAX_TARGETS:
        raise SendInvalid("target invalid")
    items: list[SendItem] = []
    seen: set[str] = set()
    offset = 0.0
    for raw in raw_targets:
        number, *values = raw.split("|")
        found = normalize_target(number, country)
        if found is None or found[0] in seen:
            continue
        seen.add(found[0])
        text = _fill(message, [v.strip() for v in values]) if message else None
        if items:
            offset += delay()  # the delay is between targets
        group = {"group": True} if found[1].endswith("@g.us") else {}
        items.append(
            SendItem(
                found[0],
                found[1],
                text,
                at + timedelta(seconds=offset),
                {**extra, **group},
                scheduled=at > now,
            )
        )
    if not items:
        raise SendInvalid("target invalid")
    return items


def _seconds(raw: str, most: int) -> int:
    """A count of seconds given as ASCII digits, at most ``most``."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or int(raw) > most:
        raise SendInvalid("input invalid")
    return int(raw)
