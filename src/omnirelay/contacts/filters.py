"""The contacts filter language (seed 004), compiled to the set of contact ids it matches.

A node is ``{"union": "and"|"or"|null, "conditions": [node | condition, ...]}`` (null
means "and"); a condition is ``{"field", "op", "value"}``. Each operator is checked
against the field's type before any SQL is built, and the tree is bounded
(``MAX_DEPTH`` levels, ``MAX_CONDITIONS`` conditions), so a bad filter is refused whole.
A negative operator is its positive twin taken away from the organization's contacts, so
a contact without a value matches ``neq``, ``ncontains``, ``nexists`` and ``nhas``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    exists,
    or_,
    select,
    true,
)

from omnirelay.contacts import values
from omnirelay.contacts.models import CHANNEL_BITS, CHANNEL_IDS, Contact, ContactValue, Variable
from omnirelay.errors import InvalidInput
from omnirelay.phones import InvalidPhone, parse_phone

MAX_DEPTH = 8
MAX_CONDITIONS = 100
OPERATORS = [
    "eq",
    "neq",
    "contains",
    "ncontains",
    "exists",
    "nexists",
    "lt",
    "gt",
    "lte",
    "gte",
    "before",
    "after",
    "has",
    "nhas",
]
ALLOWED = {
    "STRING": {"eq", "neq", "contains", "ncontains", "exists", "nexists"},
    "NUMBER": {"eq", "neq", "lt", "gt", "lte", "gte", "exists", "nexists"},
    "DATE": {"eq", "neq", "before", "after", "exists", "nexists"},
    "ARRAY": {"has", "nhas", "exists", "nexists"},
    "TIMESTAMP": {"before", "after", "exists", "nexists"},
    "ID": {"eq", "neq"},
}
NEGATIVE = {"neq": "eq", "ncontains": "contains", "nexists": "exists", "nhas": "has"}
# Channel designation -> the channel id a contact needs to be reached on it.
CHANNELS: dict[str, str] = {
    "sms": "phone",
    "viber": "phone",
    "whatsapp-business": "phone",
    "whatsapp": "phone",
    "notify": "phone",
    "vk": "vk_id",
    "telegram": "telegram_id",
    "viber-bots": "viber_id",
    "fb": "fb_id",
    "instagram": "instagram_id",
    "webchat": "webchat_id",
}
TIMESTAMPS = {"createdAt": "created_at", "updatedAt": "updated_at"}

VariableLookup = Callable[[str], Variable | None]


@dataclass(frozen=True)
class ValueTest:
    """A test of one variable's value row (combined with others of that variable)."""

    variable_id: str
    predicate: ColumnElement[bool]


@dataclass(frozen=True)
class NotValue:
    """A negative operator on a variable: the contacts whose value fails ``positive``,
    and those without a value."""

    positive: ValueTest


@dataclass(frozen=True)
class ChannelTest:
    """Whether the contact has a channel id in ``columns`` (``negated``: none of them).
    A test of the contact row that each of its value rows carries too (their
    ``channels`` mask, ADR 39), so that next to a variable's condition it is read from
    the same index entry instead of a probe of the contact."""

    columns: tuple[str, ...]
    negated: bool = False

    def inverted(self) -> ChannelTest:
        return ChannelTest(self.columns, not self.negated)

    def on_contact(self) -> ColumnElement[bool]:
        if self.negated:
            return and_(*(getattr(Contact, c).is_(None) for c in self.columns))
        return or_(*(getattr(Contact, c).is_not(None) for c in self.columns))

    def on_values(self) -> ColumnElement[bool]:
        held = ContactValue.channels.op("&")(sum(CHANNEL_BITS[c] for c in self.columns))
        return held == 0 if self.negated else held != 0


# What a condition compiles to: a test of the contact row, or one of the above.
Part = ColumnElement[bool] | ValueTest | NotValue | ChannelTest
Builder = Callable[[str, Any, str], Part]


def _in_values(variable_id: str, predicate: ColumnElement[bool]) -> ColumnElement[bool]:
    """The contact row's own test of a value: one probe of the values' primary key
    (contact, variable), correlated, so a walk of the contacts in page order stops as
    soon as the page is full."""
    # OFFSET 0 keeps PostgreSQL from turning the probe into a hashed subplan: it hashed
    # the whole range (430,000 rows at a million contacts) to test the ~1,600 contacts a
    # page walks (EXPLAIN ANALYZE; ADR 29). SQLite probes either way.
    return exists(
        select(ContactValue.contact_id)
        .where(
            ContactValue.contact_id == Contact.id,
            ContactValue.variable_id == variable_id,
            predicate,
        )
        .offset(0)
    )


def as_sql(part: Part) -> ColumnElement[bool]:
    """A compiled condition as a test of one contact row (a value test as its probe)."""
    if isinstance(part, ValueTest):
        return _in_values(part.variable_id, part.predicate)
    if isinstance(part, NotValue):
        return ~_in_values(part.positive.variable_id, part.positive.predicate)
    if isinstance(part, ChannelTest):
        return part.on_contact()
    return part


def bad_filter(path: str, message: str) -> InvalidInput:
    """The error of a filter refused at ``path`` (``filter.conditions.0.op``)."""
    return InvalidInput("invalid_filter", f"{path}: {message}", field=path)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConditionCompiler:
    """Checks and compiles one condition (``condition``): a ``ValueTest`` for a variable,
    a test of the contact row for the others. The plans (``filter_plans``) subclass it
    with the walk of the tree; ``count`` bounds the conditions across it."""

    def __init__(self, lookup: VariableLookup) -> None:
        self.lookup = lookup
        self.count = 0

    def condition(self, cond: Mapping[str, Any], path: str) -> Part:
        self.count += 1
        if self.count > MAX_CONDITIONS:
            raise bad_filter(path, f"more than {MAX_CONDITIONS} conditions")
        field, op = cond.get("field"), cond.get("op")
        if not isinstance(field, str) or not field:
            raise bad_filter(f"{path}.field", "must be a non-empty string")
        if op not in OPERATORS:
            raise bad_filter(
                f"{path}.op", f"unknown operator {op!r}; one of {', '.join(OPERATORS)}"
            )
        value = cond.get("value")
        kind, build = self._field(field, path)
        if op not in ALLOWED[kind]:
            raise bad_filter(
                f"{path}.op", f"operator {op!r} does not apply to {field!r} ({kind.lower()})"
            )
        if op not in NEGATIVE:
            return build(op, value, f"{path}.value")
        # Every test of the contact row is exact under NOT (no NULL makes it unknown:
        # see _channel_id's eq), so only a variable's needs the "no value" case.
        positive = build(NEGATIVE[op], value, f"{path}.value")
        if isinstance(positive, ValueTest):
            return NotValue(positive)
        if isinstance(positive, ChannelTest):
            return positive.inverted()
        assert not isinstance(positive, NotValue)
        return ~positive

    def _field(self, field: str, path: str) -> tuple[str, Builder]:
        if field == "channels":
            return "ARRAY", _channels
        if field == "id":
            return "ID", lambda op, v, p: Contact.id == _text(v, p)
        if field in CHANNEL_IDS:
            return "STRING", lambda op, v, p: _channel_id(CHANNEL_IDS[field], op, v, p)
        if field in TIMESTAMPS:
            return "TIMESTAMP", lambda op, v, p: _timestamp(TIMESTAMPS[field], op, v, p)
        variable = self.lookup(field)
        if variable is None:
            raise bad_filter(f"{path}.field", f"unknown field or variable {field!r}")
        return variable.validate_as, lambda op, v, p: _variable(variable, op, v, p)


def _text(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad_filter(path, "must be a string")
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else values.format_number(value)


def _channels(op: str, value: Any, path: str) -> ChannelTest:
    if op == "exists":
        return ChannelTest(tuple(dict.fromkeys(CHANNELS.values())))
    if not isinstance(value, str) or value not in CHANNELS:
        raise bad_filter(path, f"must be a channel: {', '.join(CHANNELS)}")
    return ChannelTest((CHANNELS[value],))


def _channel_id(column: str, op: str, value: Any, path: str) -> Part:
    col = getattr(Contact, column)
    if op == "exists":
        return ChannelTest((column,))
    text = _text(value, path)
    if column == "phone":
        if op == "eq":
            with contextlib.suppress(InvalidPhone):
                text = parse_phone(text).e164
        else:
            text = "".join(ch for ch in text if ch.isdigit()) or text
    # With the IS NOT NULL, NOT of the test matches the contacts without the id (neq).
    if op == "eq":
        return and_(col.is_not(None), col == text)
    return and_(col.is_not(None), col.ilike(_like(text), escape="\\"))


def _timestamp(column: str, op: str, value: Any, path: str) -> ColumnElement[bool]:
    if op == "exists":
        return true()
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = datetime.combine(values.parse_date(value, path), time(), UTC)
    else:
        raise InvalidInput(values.WRONG_DATE, f"Wrong DATE format: {path}", field=path)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    col = getattr(Contact, column)
    return (col < moment) if op == "before" else (col > moment)  # type: ignore[no-any-return]


def _variable(variable: Variable, op: str, value: Any, path: str) -> ValueTest:
    kind = variable.validate_as
    column = {
        "NUMBER": ContactValue.value_num,
        "DATE": ContactValue.value_date,
        "STRING": ContactValue.value_text,
    }[kind]
    if op == "exists":
        predicate: ColumnElement[bool] = column.is_not(None)
    elif kind == "STRING":
        text = _text(value, path)
        predicate = column == text if op == "eq" else column.ilike(_like(text), escape="\\")
    elif kind == "NUMBER":
        number = values.parse_number(value, path)
        predicate = {
            "eq": column == number,
            "lt": column < number,
            "gt": column > number,
            "lte": column <= number,
            "gte": column >= number,
        }[op]
    else:
        day = values.parse_date(value, path)
        predicate = {"eq": column == day, "before": column < day, "after": column > day}[op]
    return ValueTest(variable.id, predicate)


# The two plans of a checked tree (the set of ids, the test of one contact row) are in
# ``filter_plans``.

__all__ = [
    "ALLOWED",
    "CHANNELS",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "NEGATIVE",
    "OPERATORS",
    "ChannelTest",
    "ConditionCompiler",
    "NotValue",
    "Part",
    "ValueTest",
    "VariableLookup",
    "as_sql",
    "bad_filter",
]
