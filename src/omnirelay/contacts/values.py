"""Variable values: checked against the variable's type, stored in its typed column,
rendered back. Error codes are the seed's where one fits (seed 001's table, 1052-1056)."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any, NamedTuple

from omnirelay.errors import InvalidInput

MAX_TEXT = 10_000
# Seed 001 codes, as strings: the /user surface's ``code`` is always a string.
WRONG_FIELDS = "1052"  # There was an error verifying fields values
MISSING_VALUE = "1053"  # Missed value that is obligatory
WRONG_DATE = "1054"  # Wrong DATE format
WRONG_TYPE = "1056"  # Wrong value for this field type

_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")  # "1.1.2001", as VK sends it


class Typed(NamedTuple):
    """A value in the column of its type (a named tuple: a bulk import makes millions,
    and a frozen dataclass costs several times as much to build)."""

    text: str | None = None
    num: float | None = None
    day: date | None = None


def parse_date(value: Any, what: str) -> date:
    """ISO dates ("2001-01-31"), ISO date-times (their date) and "31.01.2001"."""
    if isinstance(value, str):
        text = value.strip()
        match = _DOTTED.match(text)
        try:
            if match:
                d, m, y = (int(g) for g in match.groups())
                return date(y, m, d)
            if len(text) == 10:
                return date.fromisoformat(text)
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    raise InvalidInput(WRONG_DATE, f"Wrong DATE format: {what}", field=what)


def parse_number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise InvalidInput(WRONG_TYPE, f"Wrong value for this field type: {what}", field=what)
    if isinstance(value, int | float | str):
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (ValueError, OverflowError):  # float(10**400) overflows
            raise InvalidInput(
                WRONG_TYPE, f"Wrong value for this field type: {what}", field=what
            ) from None
    else:
        raise InvalidInput(WRONG_TYPE, f"Wrong value for this field type: {what}", field=what)
    if not math.isfinite(number):
        raise InvalidInput(WRONG_TYPE, f"Wrong value for this field type: {what}", field=what)
    return number


def parse_text(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(WRONG_TYPE, f"Wrong value for this field type: {what}", field=what)
    text = value if isinstance(value, str) else _number_text(value)
    if len(text) > MAX_TEXT:
        raise InvalidInput(WRONG_FIELDS, f"{what}: longer than {MAX_TEXT} characters", field=what)
    return text


def typed(validate_as: str, value: Any, what: str) -> Typed:
    """The value in its column; ``what`` names it in errors."""
    if validate_as == "NUMBER":
        return Typed(None, parse_number(value, what))
    if validate_as == "DATE":
        return Typed(None, None, parse_date(value, what))
    return Typed(parse_text(value, what))


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else format_number(value)


def format_number(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def render(validate_as: str, text: str | None, num: float | None, day: date | None) -> Any:
    if validate_as == "NUMBER":
        if num is None:
            return None
        return int(num) if num.is_integer() and abs(num) < 2**53 else num
    if validate_as == "DATE":
        return day.isoformat() if day is not None else None
    return text
