"""Attribute values of deals: checked against the attribute's type and kept as JSON
(numbers, booleans, ISO dates and date-times, option lists). Codes as in contacts."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from omnirelay.contacts.values import MAX_TEXT, WRONG_DATE, WRONG_TYPE, parse_date, parse_number
from omnirelay.deals.models import DealAttribute
from omnirelay.errors import InvalidInput


def _wrong(what: str, why: str = "") -> InvalidInput:
    return InvalidInput(WRONG_TYPE, f"Wrong value for this field type: {what}{why}", field=what)


def check(attr: DealAttribute, value: Any, what: str) -> Any:
    """The value as stored; None stays None (the attribute is linked with no value)."""
    if value is None:
        return None
    kind = attr.type
    if kind == "NUMBER":
        number = parse_number(value, what)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "DATE":
        return parse_date(value, what).isoformat()
    if kind == "DATETIME":
        return _datetime(value, what)
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _wrong(what)
    if kind == "SELECT":
        if isinstance(value, bool) or value not in (attr.options or []):
            raise _wrong(what, ": not one of the options")
        return value
    if kind == "MULTISELECT":
        items = value if isinstance(value, list) else [value]
        options = attr.options or []
        if any(isinstance(v, bool) or v not in options for v in items):
            raise _wrong(what, ": not among the options")
        return list(dict.fromkeys(items))
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _wrong(what)
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TEXT:
        raise _wrong(what, f": longer than {MAX_TEXT} characters")
    if kind == "URL":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _wrong(what, ": not an http(s) URL")
    return text


def _datetime(value: Any, what: str) -> str:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            moment = moment.astimezone(UTC)
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        raise InvalidInput(WRONG_DATE, f"Wrong DATE format: {what} (ISO 8601)", field=what)
    raise InvalidInput(WRONG_DATE, f"Wrong DATE format: {what}", field=what)
