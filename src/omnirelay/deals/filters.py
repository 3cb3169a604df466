"""The filter of /user/deals/list: the contacts filter language (union/conditions, the
same operators and bounds) over deal fields, deal attributes and product attributes.
Attribute values are JSON; each condition reads its attribute as its type. A condition
on a product attribute matches a deal one of whose products matches it (a negative one:
none of whose products matches its positive twin). ``has``/``nhas`` test whether a
MULTISELECT value includes an option."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, exists, literal, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from omnirelay.contacts.filters import MAX_CONDITIONS, MAX_DEPTH, OPERATORS
from omnirelay.contacts.values import parse_number
from omnirelay.deals import values
from omnirelay.deals.models import Deal, DealAttribute, DealProduct
from omnirelay.errors import InvalidInput

Lookup = Callable[[str], DealAttribute | None]
NEGATIVE = {"neq": "eq", "ncontains": "contains", "nexists": "exists", "nhas": "has"}
ALLOWED = {
    "TEXT": {"eq", "neq", "contains", "ncontains", "exists", "nexists"},
    "NUMBER": {"eq", "neq", "lt", "gt", "lte", "gte", "exists", "nexists"},
    "TIME": {"eq", "neq", "before", "after", "exists", "nexists"},
    "BOOLEAN": {"eq", "neq", "exists", "nexists"},
    "SET": {"has", "nhas", "exists", "nexists"},
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


class _ArrayHas(FunctionElement[bool]):
    """(JSON object column, attribute id, option): the attribute's array holds the option.
    Arguments: the column, the SQLite path, the key, the option, the option as a JSON
    array (each engine renders the ones it needs)."""

    type = Boolean()
    inherit_cache = True
    name = "array_has"


@compiles(_ArrayHas, "sqlite")
def _has_sqlite(element: _ArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    column, path, _, option, _ = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXISTS (SELECT 1 FROM json_each({column}, {path}) WHERE value = {option})"


@compiles(_ArrayHas, "postgresql")
def _has_postgresql(element: _ArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    clauses = list(element.clauses)
    column, key, array = (compiler.process(clauses[i], **kw) for i in (0, 2, 4))
    return f"(CAST({column} AS jsonb) -> {key}) @> CAST({array} AS jsonb)"


def _array_has(column: Any, attr_id: str, option: Any) -> ColumnElement[bool]:
    return _ArrayHas(
        column,
        literal(f'$."{attr_id}"'),
        literal(attr_id),
        literal(option),
        literal(json.dumps([option])),
    )


def _bad(path: str, message: str) -> InvalidInput:
    return InvalidInput("invalid_filter", f"{path}: {message}", field=path)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class _Compiler:
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.count = 0
        self.stored: Any = Deal.attribute_values

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
        kind, column, convert, product = self._field(field, path)
        if op not in ALLOWED[kind]:
            raise _bad(f"{path}.op", f"operator {op!r} does not apply to {field!r}")
        positive = NEGATIVE.get(op, op)
        where = f"{path}.value"
        if positive == "exists":
            test: ColumnElement[bool] = column.is_not(None)
        elif positive == "contains":
            test = column.ilike(_like(_text(value, where)), escape="\\")
        elif positive == "has":
            test = _array_has(self.stored, field, convert(value, where))
        else:
            operand = convert(value, where)
            if operand is None:
                raise _bad(where, f"operator {op!r} needs a value")
            test = COMPARE[positive](column, operand)
        if product:  # one of the deal's products (none, for a negative operator)
            some = exists(select(DealProduct.id).where(DealProduct.deal_id == Deal.id, test))
            return not_(some) if op in NEGATIVE else some
        if op in NEGATIVE:  # a deal without the value matches the negative operators
            return or_(column.is_(None), not_(test)) if op != "nexists" else column.is_(None)
        return test

    def _field(self, field: str, path: str) -> tuple[str, Any, Callable[[Any, str], Any], bool]:
        """(kind, column, value check, whether the column is a product's)."""
        if field == "id":
            return "ID", Deal.id, _text, False
        if field == "contactId":
            return "ID", Deal.contact_id, _text, False
        if field == "name":
            return "TEXT", Deal.name, _text, False
        if field in ("createdAt", "updatedAt"):
            column = Deal.created_at if field == "createdAt" else Deal.updated_at
            return "TIME", column, _moment, False
        attr = self.lookup(field)
        if attr is None:
            raise _bad(f"{path}.field", f"unknown field or attribute {field!r}")
        product = attr.entity == "product"
        kind = KIND[attr.type]
        stored = DealProduct.attribute_values if product else Deal.attribute_values
        if kind == "SET":
            self.stored = stored  # ``has`` reads the array in the JSON object
            return kind, stored[attr.id].as_string(), lambda v, p: _option(attr, v, p), product
        element = stored[attr.id]
        if kind == "NUMBER":
            return kind, element.as_float(), lambda v, p: parse_number(v, p), product
        if kind == "BOOLEAN":
            return kind, element.as_boolean(), lambda v, p: values.check(attr, v, p), product
        # Dates and date-times are kept as ISO text: comparing the text compares the times.
        return kind, element.as_string(), lambda v, p: values.check(attr, v, p), product


def _option(attr: DealAttribute, value: Any, path: str) -> Any:
    """One of a MULTISELECT's options (``has``)."""
    if isinstance(value, bool) or value not in (attr.options or []):
        raise _bad(path, f"must be one of the options of {attr.name!r}")
    return value


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
