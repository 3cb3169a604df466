"""The two plans of a contacts filter (ADR 19, ADR 29): the set of contact ids it matches
(set algebra over the value indexes: counting and sparse pages) and a test of one
contact row (pages of a filter matching many, walking the contacts in page order). The
language itself (operators, their types, the bounds) is ``filters``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    except_,
    intersect,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy import union as union_

from omnirelay.contacts.filters import (
    ALLOWED,
    MAX_DEPTH,
    NEGATIVE,
    ConditionCompiler,
    ValueTest,
    VariableLookup,
    as_sql,
    bad_filter,
)
from omnirelay.contacts.models import Contact, ContactValue

# --- the filter as a test of one contact row ----------------------------------------
#
# For a page of a filter that matches many contacts: walking the contacts in page order
# (an index) and testing each costs (offset + limit) x contacts / matches probes, where
# building the set of matching ids first costs one entry per match (ADR 29).


class _RowCompiler(ConditionCompiler):
    def node(self, node: Any, path: str, depth: int) -> ColumnElement[bool]:
        if not isinstance(node, Mapping):
            raise bad_filter(path, "must be an object")
        if "conditions" not in node:
            return as_sql(self.condition(node, path))
        if depth > MAX_DEPTH:
            raise bad_filter(path, f"nested deeper than {MAX_DEPTH} levels")
        items = node["conditions"]
        if not isinstance(items, list):
            raise bad_filter(f"{path}.conditions", "must be an array")
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


class _SetCompiler(ConditionCompiler):
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
            raise bad_filter(path, "must be an object")
        if "conditions" not in node:
            return self.leaf(node, path)
        if depth > MAX_DEPTH:
            raise bad_filter(path, f"nested deeper than {MAX_DEPTH} levels")
        union = node.get("union")
        if union not in ("and", "or", None):
            raise bad_filter(f"{path}.union", 'must be "and", "or" or null')
        items = node["conditions"]
        if not isinstance(items, list):
            raise bad_filter(f"{path}.conditions", "must be an array")
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
                elif isinstance(part, ValueTest):
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

    def condition(self, cond: Mapping[str, Any], path: str) -> ColumnElement[bool] | ValueTest:
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

    def _as_set(self, part: ColumnElement[bool] | ValueTest) -> Select[Any]:
        if part is _NEGATED:
            return self.negated_set
        if isinstance(part, ValueTest):
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
                raise bad_filter(
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
        raise bad_filter("filter", "must be an object")
    if not raw:
        return None
    return _SetCompiler(lookup, organization_id, join).ids(raw, "filter", 1)
