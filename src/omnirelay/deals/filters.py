"""The filter of /user/deals/list: the contacts filter language (union/conditions, the
same operators and bounds) over deal fields and the deal-entity attributes. Attribute
values are JSON; each condition reads its attribute as its type."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, true

from omnirelay.contacts.filters import MAX_CONDITIONS, MAX_DEPTH, OPERATORS
from omnirelay.contacts.values import parse_number
from omnirelay.deals import values
from omnirelay.deals.models import Deal, DealAttribute
from omnirelay.errors import InvalidInput

Lookup = Callable[[str], DealAttribute | None]
NEGATIVE = {"neq": "eq", "ncontains": "contains", "nexists": "exists"}
ALLOWED = {
    "TEXT": {"eq", "neq", "contains", "ncontains", "exists", "nexists"},
    "NUMBER": {"eq", "neq", "lt", "gt", "lte", "gte", "exists", "nexists"},
    "TIME": {"eq", "neq", "before", "after", "exists", "nexists"},
    "BOOLEAN": {"eq", "neq", "exists", "nexists"},
    "SET": {"exists", "nexists"},
    "ID": {"eq", "neq"},
}
KIND = {
    "STRING": "TEXT",
    "URL": "TEXT",
    "SELECT": "TEXT",
    "NUMBER": "NUMBER",
    "DATE": "TIME",
    "DATETIME": "TIME",
    "BOOLEAN": "BOOLEAN",
    "MULTISELECT": "SET",
}


COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": operator.eq,
    "lt": operator.lt,
    "gt": operator.gt,
    "lte": operator.le,
    "gte": operator.ge,
    "before": operator.lt,
    "after": operator.gt,
}


def _bad(path: str, message: str) -> InvalidInput:
    return InvalidInput("invalid_filter", f"{path}: {message}", field=path)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class _Compiler:
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.count = 0

    def node(self, node: Any, path: str, depth: int) -> ColumnElement[bool]:
        if not isinstance(node, Mapping):
            raise _bad(path, "must be an object")
        if "conditions" not in node:
            return self.condition(node, path)
        if depth > MAX_DEPTH:
            raise _bad(path, f"nested deeper than {MAX_DEPTH} levels")
        union = node.get("union")
        if union not in ("and", "or", None):
            raise _bad(f"{path}.union", 'must be "and", "or" or null')
        items = node["conditions"]
        if not isinstance(items, list):
            raise _bad(f"{path}.conditions", "must be an array")
        parts = [self.node(c, f"{path}.conditions.{i}", depth + 1) for i, c in enumerate(items)]
        if not parts:
            return true()
        return or_(*parts) if union == "or" else and_(*parts)

    def condition(self, cond: Mapping[str, Any], path: str) -> ColumnElement[bool]:
        self.count += 1
        if self.count > MAX_CONDITIONS:
            raise _bad(path, f"more than {MAX_CONDITIONS} conditions")
        field, op, value = cond.get("field"), cond.get("op"), cond.get("value")
        if not isinstance(field, str) or not field:
            raise _bad(f"{path}.field", "must be a non-empty string")
        if op not in OPERATORS:
            raise _bad(f"{path}.op", f"unknown operator {op!r}; one of {', '.join(OPERATORS)}")
        kind, column, convert = self._field(field, path)
        if op not in ALLOWED[kind]:
            raise _bad(f"{path}.op", f"operator {op!r} does not apply to {field!r}")
        positive = NEGATIVE.get(op, op)
        where = f"{path}.value"
        if positive == "exists":
            test: ColumnElement[bool] = column.is_not(None)
        elif positive == "contains":
            test = column.ilike(_like(_text(value, where)), escape="\\")
        else:
            operand = convert(value, where)
            if operand is None:
                raise _bad(where, f"operator {op!r} needs a value")
            test = COMPARE[positive](column, operand)
        if op in NEGATIVE:  # a deal without the value matches the negative operators
            return or_(column.is_(None), not_(test)) if op != "nexists" else column.is_(None)
        return test

    def _field(self, field: str, path: str) -> tuple[str, Any, Callable[[Any, str], Any]]:
        if field == "id":
            return "ID", Deal.id, _text
        if field == "contactId":
            return "ID", Deal.contact_id, _text
        if field == "name":
            return "TEXT", Deal.name, _text
        if field in ("createdAt", "updatedAt"):
            column = Deal.created_at if field == "createdAt" else Deal.updated_at
            return "TIME", column, _moment
        attr = self.lookup(field)
        if attr is None or attr.entity != "deal":
            raise _bad(f"{path}.field", f"unknown field or deal attribute {field!r}")
        kind = KIND[attr.type]
        element = Deal.attribute_values[attr.id]
        if kind == "NUMBER":
            return kind, element.as_float(), lambda v, p: parse_number(v, p)
        if kind == "BOOLEAN":
            return kind, element.as_boolean(), lambda v, p: values.check(attr, v, p)
        # Dates and date-times are kept as ISO text: comparing the text compares the times.
        return kind, element.as_string(), lambda v, p: values.check(attr, v, p)


def _text(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad(path, "must be a string")
    return str(value)


def _moment(value: Any, path: str) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            pass
    raise InvalidInput("1054", f"Wrong DATE format: {path}", field=path)


def compile_filter(raw: Any, lookup: Lookup) -> ColumnElement[bool]:
    if raw is None:
        return true()
    if not isinstance(raw, Mapping):
        raise _bad("filter", "must be an object")
    if not raw:
        return true()
    return _Compiler(lookup).node(raw, "filter", 1)
