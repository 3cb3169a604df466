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
    func,
    intersect,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy import union as union_

from omnirelay.contacts.filters import (
    MAX_DEPTH,
    ChannelTest,
    ConditionCompiler,
    NotValue,
    Part,
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
        combine = or_ if node.get("union") == "or" else and_
        parts: list[ColumnElement[bool]] = []
        # A contact has one value row per variable, so the tests of one variable in a
        # node are one probe of that row, not one each (the 1 % filter's walk: 2
        # probes a contact instead of 3).
        by_variable: dict[str, list[ColumnElement[bool]]] = {}
        for i, item in enumerate(items):
            where = f"{path}.conditions.{i}"
            if isinstance(item, Mapping) and "conditions" not in item:
                part = self.condition(item, where)
                if isinstance(part, ValueTest):
                    by_variable.setdefault(part.variable_id, []).append(part.predicate)
                    continue
                parts.append(as_sql(part))
            else:
                parts.append(self.node(item, where, depth + 1))
        parts += [as_sql(ValueTest(v, combine(*ps))) for v, ps in by_variable.items()]
        if not parts:
            return true()
        return combine(*parts)


def compile_rows(raw: Mapping[str, Any], lookup: VariableLookup) -> ColumnElement[bool]:
    """The filter as a condition on a contact row (after ``compile_ids`` checked it)."""
    return _RowCompiler(lookup).node(raw, "filter", 1)


# --- the filter as a set of contact ids ----------------------------------------------
#
# The tree is compiled to set algebra over contact ids: a variable test is its index
# range, "and" INTERSECT, "or" UNION, a negative operator EXCEPT from all of the
# organization's contacts. The count then reads only the indexes the conditions name,
# and the page probes the contacts by primary key (ADR 19). Channel tests ("has sms") in
# an "and" go down into its sets, where each value range tests them in its own index
# entries (ADR 39): a dense filter with one is counted without touching the contacts.


UNION_ALL_ARMS = "omnirelay_union_all_arms"  # an execution option: see _values_any
Carried = tuple[ChannelTest, ...]  # channel tests a set must apply (pushed down an "and")


class _SetCompiler(ConditionCompiler):
    def __init__(self, lookup: VariableLookup, organization_id: str, join: bool) -> None:
        super().__init__(lookup)
        self.org = organization_id
        self.join = join

    def everyone(self, carried: Carried = ()) -> Select[Any]:
        return select(Contact.id.label("cid")).where(
            Contact.organization_id == self.org, *(c.on_contact() for c in carried)
        )

    def ids(self, node: Any, path: str, depth: int, carried: Carried = ()) -> Select[Any]:
        """The ids ``node`` matches that also pass ``carried``."""
        if not isinstance(node, Mapping):
            raise bad_filter(path, "must be an object")
        if "conditions" not in node:
            return self._as_set(self.condition(node, path), carried)
        if depth > MAX_DEPTH:
            raise bad_filter(path, f"nested deeper than {MAX_DEPTH} levels")
        union = node.get("union")
        if union not in ("and", "or", None):
            raise bad_filter(f"{path}.union", 'must be "and", "or" or null')
        items = node["conditions"]
        if not isinstance(items, list):
            raise bad_filter(f"{path}.conditions", "must be an array")
        by_variable: dict[str, list[ColumnElement[bool]]] = {}
        negated: list[NotValue] = []
        channel: list[ChannelTest] = []
        on_contact: list[ColumnElement[bool]] = []  # other tests of the contact row
        nested: list[tuple[Any, str]] = []
        for i, item in enumerate(items):
            where = f"{path}.conditions.{i}"
            if not (isinstance(item, Mapping) and "conditions" not in item):
                nested.append((item, where))  # compiled below, with what this node carries
                continue
            part = self.condition(item, where)
            if isinstance(part, ValueTest):
                by_variable.setdefault(part.variable_id, []).append(part.predicate)
            elif isinstance(part, NotValue):
                negated.append(part)
            elif isinstance(part, ChannelTest):
                channel.append(part)
            else:
                on_contact.append(part)
        if union == "or":
            return self._any(by_variable, negated, channel, on_contact, nested, depth, carried)
        if not (by_variable or negated or nested):  # only tests of the contact row
            tests = [*(c.on_contact() for c in channel), *on_contact]
            return self.everyone(carried).where(*tests)
        # The channel tests go down into every set of the intersection: each applies
        # them in its own index (value rows carry the contact's channels), no probe.
        down: Carried = (*carried, *channel)
        sets = [_values_set(v, and_(*ps), down) for v, ps in by_variable.items()]
        sets += [self._as_set(n, down) for n in negated]
        sets += [self.ids(item, where, depth + 1, down) for item, where in nested]
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

    def _any(
        self,
        by_variable: dict[str, list[ColumnElement[bool]]],
        negated: list[NotValue],
        channel: list[ChannelTest],
        on_contact: list[ColumnElement[bool]],
        nested: list[tuple[Any, str]],
        depth: int,
        carried: Carried,
    ) -> Select[Any]:
        """An "or": the union of its arms, each applying ``carried`` itself."""
        sets = [
            _values_any(v, ps, carried) if len(ps) > 1 else _values_set(v, ps[0], carried)
            for v, ps in by_variable.items()
        ]
        sets += [self._as_set(n, carried) for n in negated]
        sets += [self.ids(item, where, depth + 1, carried) for item, where in nested]
        tests = [*(c.on_contact() for c in channel), *on_contact]
        if tests:  # one pass over the contacts for all of them
            sets.append(self.everyone(carried).where(or_(*tests)))
        return self._combine(sets, union_) if sets else self.everyone(carried)

    @staticmethod
    def _combine(sets: list[Select[Any]], how: Any) -> Select[Any]:
        if len(sets) == 1:
            return sets[0]
        inner = how(*sets).subquery()
        return select(inner.c.cid)

    def _as_set(self, part: Part, carried: Carried) -> Select[Any]:
        if isinstance(part, ValueTest):
            return _values_set(part.variable_id, part.predicate, carried)
        if isinstance(part, NotValue):
            # The positive twin as a set, taken away from everyone.
            matching = _values_set(part.positive.variable_id, part.positive.predicate, ())
            inner = except_(self.everyone(carried), matching).subquery()
            return select(inner.c.cid)
        return self.everyone(carried).where(as_sql(part))


def _values_set(variable_id: str, predicate: ColumnElement[bool], carried: Carried) -> Select[Any]:
    return select(ContactValue.contact_id.label("cid")).where(
        ContactValue.variable_id == variable_id, predicate, *(c.on_values() for c in carried)
    )


def _values_any(
    variable_id: str, predicates: list[ColumnElement[bool]], carried: Carried
) -> Select[Any]:
    """Contacts whose value of one variable passes any of ``predicates``, as UNION ALL of
    one index range each, every range without the values an earlier one took: a contact
    has one value row per variable, so the arms are disjoint and need no deduplication.
    (An OR of the ranges made SQLite build a temporary b-tree of every matching row to
    deduplicate them, 8.7 s for 500,000 at a million contacts against 0.3 s; PostgreSQL
    a bitmap heap scan instead of index-only scans: ADR 29.)"""
    arms = [
        _values_set(variable_id, and_(p, *(~q for q in predicates[:i])), carried)
        for i, p in enumerate(predicates)
    ]
    inner = union_all(*arms).subquery()
    # The arms ride along for the count: the sum of one count per arm reads each index
    # range in a loop of its own (no union node passing every row up).
    return select(inner.c.cid).execution_options(**{UNION_ALL_ARMS: tuple(arms)})


def count_statements(ids: Select[Any], *, split: bool) -> list[Select[Any]]:
    """The statements whose counts add up to the size of a compiled set. ``split``: one
    per arm of a disjoint UNION ALL, each an aggregate straight over its index range
    (SQLite: 55 ms of CPU for the 50 % filter against ~70 ms through the union; ADR 39).
    PostgreSQL keeps one statement: it gives the union a Parallel Append over both
    ranges (130 ms of CPU in three processes), where the arms' counts ran one after
    another in one (80-100 ms, more wall time on two cores)."""
    arms = ids.get_execution_options().get(UNION_ALL_ARMS)
    if not (split and arms):
        return [select(func.count()).select_from(ids.subquery())]
    return [select(func.count()).select_from(a.subquery()) for a in arms]


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
