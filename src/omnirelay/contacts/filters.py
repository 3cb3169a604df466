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
    Select,
    and_,
    except_,
    exists,
    intersect,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy import union as union_

from omnirelay.contacts import values
from omnirelay.contacts.models import CHANNEL_IDS, Contact, ContactValue, Variable
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
class _ValueTest:
    """A test of one variable's value row (combined with others of that variable)."""

    variable_id: str
    predicate: ColumnElement[bool]


Builder = Callable[[str, Any, str], "ColumnElement[bool] | _ValueTest"]


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


def _sql(part: ColumnElement[bool] | _ValueTest) -> ColumnElement[bool]:
    if isinstance(part, _ValueTest):
        return _in_values(part.variable_id, part.predicate)
    return part


def _bad(path: str, message: str) -> InvalidInput:
    return InvalidInput("invalid_filter", f"{path}: {message}", field=path)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Compiler:
    def __init__(self, lookup: VariableLookup) -> None:
        self.lookup = lookup
        self.count = 0

    def condition(self, cond: Mapping[str, Any], path: str) -> ColumnElement[bool] | _ValueTest:
        self.count += 1
        if self.count > MAX_CONDITIONS:
            raise _bad(path, f"more than {MAX_CONDITIONS} conditions")
        field, op = cond.get("field"), cond.get("op")
        if not isinstance(field, str) or not field:
            raise _bad(f"{path}.field", "must be a non-empty string")
        if op not in OPERATORS:
            raise _bad(f"{path}.op", f"unknown operator {op!r}; one of {', '.join(OPERATORS)}")
        value = cond.get("value")
        kind, build = self._field(field, path)
        if op not in ALLOWED[kind]:
            raise _bad(
                f"{path}.op", f"operator {op!r} does not apply to {field!r} ({kind.lower()})"
            )
        if op in NEGATIVE:
            return ~_sql(build(NEGATIVE[op], value, f"{path}.value"))
        return build(op, value, f"{path}.value")

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
            raise _bad(f"{path}.field", f"unknown field or variable {field!r}")
        return variable.validate_as, lambda op, v, p: _variable(variable, op, v, p)


def _text(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad(path, "must be a string")
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else values.format_number(value)


def _channels(op: str, value: Any, path: str) -> ColumnElement[bool]:
    if op == "exists":
        return or_(*(getattr(Contact, c).is_not(None) for c in set(CHANNELS.values())))
    if not isinstance(value, str) or value not in CHANNELS:
        raise _bad(path, f"must be a channel: {', '.join(CHANNELS)}")
    return getattr(Contact, CHANNELS[value]).is_not(None)  # type: ignore[no-any-return]


def _channel_id(column: str, op: str, value: Any, path: str) -> ColumnElement[bool]:
    col = getattr(Contact, column)
    if op == "exists":
        return col.is_not(None)  # type: ignore[no-any-return]
    text = _text(value, path)
    if column == "phone":
        if op == "eq":
            with contextlib.suppress(InvalidPhone):
                text = parse_phone(text).e164
        else:
            text = "".join(ch for ch in text if ch.isdigit()) or text
    if op == "eq":
        return col == text  # type: ignore[no-any-return]
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


def _variable(variable: Variable, op: str, value: Any, path: str) -> _ValueTest:
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
    return _ValueTest(variable.id, predicate)


# --- the filter as a test of one contact row ----------------------------------------
#
# For a page of a filter that matches many contacts: walking the contacts in page order
# (an index) and testing each costs (offset + limit) x contacts / matches probes, where
# building the set of matching ids first costs one entry per match (ADR 29).


class _RowCompiler(_Compiler):
    def node(self, node: Any, path: str, depth: int) -> ColumnElement[bool]:
        if not isinstance(node, Mapping):
            raise _bad(path, "must be an object")
        if "conditions" not in node:
            return _sql(self.condition(node, path))
        if depth > MAX_DEPTH:
            raise _bad(path, f"nested deeper than {MAX_DEPTH} levels")
        items = node["conditions"]
        if not isinstance(items, list):
            raise _bad(f"{path}.conditions", "must be an array")
        parts = [self.node(c, f"{path}.conditions.{i}", depth + 1) for i, c in enumerate(items)]
        if not parts:
            return true()
        return or_(*parts) if node.get("union") == "or" else and_(*parts)


def compile_rows(raw: Mapping[str, Any], lookup: VariableLookup) -> ColumnElement[bool]:
    """The filter as a condition on a contact row (after ``compile_ids`` checked it)."""
    return _RowCompiler(lookup).node(raw, "filter", 1)


# --- the filter as a set of contact ids ----------------------------------------------
#
# The tree is compiled to set algebra over contact ids: a variable test is its index
# range, "and" INTERSECT, "or" UNION, a negative operator EXCEPT from all of the
# organization's contacts. The count then reads only the indexes the conditions name,
# and the page probes the contacts by primary key (ADR 19).


class _SetCompiler(_Compiler):
    def __init__(self, lookup: VariableLookup, organization_id: str, join: bool) -> None:
        super().__init__(lookup)
        self.org = organization_id
        self.join = join

    def everyone(self) -> Select[Any]:
        return select(Contact.id.label("cid")).where(Contact.organization_id == self.org)

    def where_contact(self, condition: ColumnElement[bool]) -> Select[Any]:
        return self.everyone().where(condition)

    def ids(self, node: Any, path: str, depth: int) -> Select[Any]:
        if not isinstance(node, Mapping):
            raise _bad(path, "must be an object")
        if "conditions" not in node:
            return self.leaf(node, path)
        if depth > MAX_DEPTH:
            raise _bad(path, f"nested deeper than {MAX_DEPTH} levels")
        union = node.get("union")
        if union not in ("and", "or", None):
            raise _bad(f"{path}.union", 'must be "and", "or" or null')
        items = node["conditions"]
        if not isinstance(items, list):
            raise _bad(f"{path}.conditions", "must be an array")
        combine = or_ if union == "or" else and_
        sets: list[Select[Any]] = []
        by_variable: dict[str, list[ColumnElement[bool]]] = {}
        on_contact: list[ColumnElement[bool]] = []  # tests of the contact row itself
        for i, item in enumerate(items):
            where = f"{path}.conditions.{i}"
            if isinstance(item, Mapping) and "conditions" not in item:
                part = self.condition(item, where)
                if self.negated:
                    sets.append(self.negated_set)
                elif isinstance(part, _ValueTest):
                    by_variable.setdefault(part.variable_id, []).append(part.predicate)
                else:
                    on_contact.append(part)
            else:
                sets.append(self.ids(item, where, depth + 1))
        for variable_id, predicates in by_variable.items():
            if union == "or" and len(predicates) > 1:
                sets.append(_values_any(variable_id, predicates))
            else:
                sets.append(_values_set(variable_id, combine(*predicates)))
        if union == "or":
            if on_contact:  # one pass over the contacts for all of them
                sets.append(self.where_contact(or_(*on_contact)))
            return self._combine(sets, union_) if sets else self.everyone()
        if not sets:
            return self.where_contact(and_(*on_contact)) if on_contact else self.everyone()
        matching = self._combine(sets, intersect)
        if not on_contact:
            return matching
        # Tested on the contacts of the (smaller) set, by primary key, instead of
        # intersecting with every contact that passes them.
        if self.join:
            # Every set here is distinct, so a join is the same set. PostgreSQL planned
            # the IN as a semi-join behind a HashAggregate it estimated at 200 rows and
            # probed the contacts 500,000 times (EXPLAIN ANALYZE, ADR 29); a join lets it
            # hash one side.
            inner = matching.subquery()
            return (
                select(Contact.id.label("cid"))
                .join(inner, Contact.id == inner.c.cid)
                .where(*on_contact)
            )
        return select(Contact.id.label("cid")).where(Contact.id.in_(matching), *on_contact)

    @staticmethod
    def _combine(sets: list[Select[Any]], how: Any) -> Select[Any]:
        if len(sets) == 1:
            return sets[0]
        inner = how(*sets).subquery()
        return select(inner.c.cid)

    def leaf(self, node: Mapping[str, Any], path: str) -> Select[Any]:
        return self._as_set(self.condition(node, path))

    def condition(self, cond: Mapping[str, Any], path: str) -> ColumnElement[bool] | _ValueTest:
        op = cond.get("op")
        self.negated = isinstance(op, str) and op in NEGATIVE
        if not self.negated:
            return super().condition(cond, path)
        # The positive twin as a set, taken away from everyone.
        positive = dict(cond)
        positive["op"] = NEGATIVE[str(op)] if op in NEGATIVE else op
        self.check_operator(cond, path)
        part = super().condition(positive, path)
        matching = self._as_set(part)
        inner = except_(self.everyone(), matching).subquery()
        self.negated_set = select(inner.c.cid)
        return _NEGATED

    def _as_set(self, part: ColumnElement[bool] | _ValueTest) -> Select[Any]:
        if part is _NEGATED:
            return self.negated_set
        if isinstance(part, _ValueTest):
            return _values_set(part.variable_id, part.predicate)
        return self.where_contact(part)

    negated = False
    negated_set: Select[Any]

    def check_operator(self, cond: Mapping[str, Any], path: str) -> None:
        """The negative operator itself must fit the field (``nhas`` on a number is not
        ``has`` on a number)."""
        field = cond.get("field")
        if isinstance(field, str) and field:
            kind, _ = self._field(field, path)
            if cond.get("op") not in ALLOWED[kind]:
                raise _bad(
                    f"{path}.op",
                    f"operator {cond.get('op')!r} does not apply to {field!r} ({kind.lower()})",
                )


_NEGATED: ColumnElement[bool] = true()  # a marker: the condition's set is in ``negated_set``


def _values_set(variable_id: str, predicate: ColumnElement[bool]) -> Select[Any]:
    return select(ContactValue.contact_id.label("cid")).where(
        ContactValue.variable_id == variable_id, predicate
    )


def _values_any(variable_id: str, predicates: list[ColumnElement[bool]]) -> Select[Any]:
    """Contacts whose value of one variable passes any of ``predicates``, as UNION ALL of
    one index range each, every range without the values an earlier one took: a contact
    has one value row per variable, so the arms are disjoint and need no deduplication.
    (An OR of the ranges made SQLite build a temporary b-tree of every matching row to
    deduplicate them, 8.7 s for 500,000 at a million contacts against 0.3 s; PostgreSQL
    a bitmap heap scan instead of index-only scans: ADR 29.)"""
    arms = [
        _values_set(variable_id, and_(p, *(~q for q in predicates[:i])))
        for i, p in enumerate(predicates)
    ]
    inner = union_all(*arms).subquery()
    return select(inner.c.cid)


def compile_ids(
    raw: Any, lookup: VariableLookup, organization_id: str, *, join: bool = False
) -> Select[Any] | None:
    """The ids of the contacts ``raw`` matches; None when it matches everyone. ``join``:
    contact-row tests join the set instead of ``IN`` (PostgreSQL's plan; SQLite's is the
    same either way but for materialising the set once more)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _bad("filter", "must be an object")
    if not raw:
        return None
    return _SetCompiler(lookup, organization_id, join).ids(raw, "filter", 1)


__all__ = [
    "CHANNELS",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "OPERATORS",
    "compile_ids",
    "compile_rows",
]
