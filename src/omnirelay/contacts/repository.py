"""All SQL of contacts, variables and values. Every query names the organization."""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, case, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression

from omnirelay.contacts.filter_plans import count_statements
from omnirelay.contacts.models import (
    CHANNEL_BITS,
    CHANNEL_IDS,
    Contact,
    ContactMerge,
    ContactValue,
    Variable,
)


def _table(model: type[Contact] | type[ContactValue]) -> Table:
    return cast(Table, model.__table__)


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


# --- contacts -----------------------------------------------------------------------


def get(session: Session, organization_id: str, contact_id: str) -> Contact | None:
    """The contact; for a merged-away contact's id, the contact it was merged into."""
    found = session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.organization_id == organization_id)
    )
    if found is not None:
        return found
    kept = merged_into(session, organization_id, contact_id)
    return None if kept is None else get(session, organization_id, kept)


def get_for_update(session: Session, organization_id: str, contact_id: str) -> Contact | None:
    found = session.scalar(
        select(Contact)
        .where(Contact.id == contact_id, Contact.organization_id == organization_id)
        .with_for_update()
    )
    if found is not None:
        return found
    kept = merged_into(session, organization_id, contact_id)
    return None if kept is None else get_for_update(session, organization_id, kept)


def merged_into(session: Session, organization_id: str, contact_id: str) -> str | None:
    return session.scalar(
        select(ContactMerge.preserved_id).where(
            ContactMerge.deleted_id == contact_id, ContactMerge.organization_id == organization_id
        )
    )


def redirect(session: Session, organization_id: str, gone: str, kept: str, when: Any) -> None:
    """Calls naming ``gone`` go to ``kept`` from now on, and so do those that named
    ``gone`` already; before ``gone`` is deleted (its redirects would cascade away)."""
    session.execute(
        update(ContactMerge)
        .where(ContactMerge.preserved_id == gone, ContactMerge.organization_id == organization_id)
        .values(preserved_id=kept)
    )
    session.add(
        ContactMerge(
            deleted_id=gone, organization_id=organization_id, preserved_id=kept, merged_at=when
        )
    )
    session.flush()


def find_by_channel_ids(
    session: Session, organization_id: str, ids: Mapping[str, str], *, lock: bool = False
) -> list[Contact]:
    """Contacts holding any of ``ids`` (column -> value): one query, each term a probe of
    that column's unique index."""
    if not ids:
        return []
    stmt = select(Contact).where(
        Contact.organization_id == organization_id,
        or_(*(getattr(Contact, col) == value for col, value in ids.items())),
    )
    if lock:
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt.order_by(Contact.created_at, Contact.id)))


def find_by_channel_id(
    session: Session, organization_id: str, column: str, value: str
) -> Contact | None:
    return session.scalar(
        select(Contact).where(
            Contact.organization_id == organization_id, getattr(Contact, column) == value
        )
    )


def add(session: Session, contact: Contact) -> Contact:
    session.add(contact)
    session.flush()
    return contact


def ids_by_channel_values(
    session: Session, organization_id: str, column: str, keys: Iterable[str]
) -> dict[str, str]:
    col = getattr(Contact, column)
    stmt = select(col, Contact.id).where(
        Contact.organization_id == organization_id, col.in_(list(keys))
    )
    return {k: i for k, i in session.execute(stmt).all()}


def delete_contact(session: Session, contact: Contact) -> None:
    session.execute(delete(Contact).where(Contact.id == contact.id))


def touch(session: Session, contact_ids: Sequence[str], when: Any) -> None:
    if contact_ids:
        session.execute(update(Contact).where(Contact.id.in_(contact_ids)).values(updated_at=when))


def listing(
    organization_id: str,
    where: ColumnElement[bool],
    order: Sequence[UnaryExpression[Any]],
    offset: int,
    limit: int | None,
) -> Select[Contact]:
    stmt = (
        select(Contact)
        .where(Contact.organization_id == organization_id, where)
        .order_by(*order)
        .offset(offset)
    )
    return stmt.limit(limit) if limit is not None else stmt


def count(session: Session, organization_id: str, where: ColumnElement[bool]) -> int:
    stmt = (
        select(func.count())
        .select_from(Contact)
        .where(Contact.organization_id == organization_id, where)
    )
    return int(session.scalar(stmt) or 0)


def count_ids(session: Session, ids: Select[Any]) -> int:
    """The size of a set of contact ids (a compiled filter): only the indexes it names."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        # A count over half a million index entries is costed above jit_above_cost, and
        # compiling it took PostgreSQL 200 ms of the query's time (EXPLAIN ANALYZE,
        # ADR 39): more than JIT can win back on a scan this simple.
        session.execute(text("SET LOCAL jit = off"))
    counts = count_statements(ids, split=not postgresql)
    return sum(int(session.scalar(stmt) or 0) for stmt in counts)


def contacts_bound(session: Session) -> int:
    """About the number of contacts of all organizations (so at least one's), read in
    O(1): SQLite's largest rowid (rows are appended), PostgreSQL's statistics (as fresh
    as autovacuum keeps them; never analysed: unknown, taken as huge). The caller only
    compares orders of magnitude."""
    if session.get_bind().dialect.name == "postgresql":
        estimate = session.scalar(
            text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'contacts'::regclass")
        )
        return int(estimate) if estimate is not None and estimate >= 0 else 2**62
    return int(session.scalar(text("SELECT max(rowid) FROM contacts")) or 0)


def value_sort_key(variable: Variable) -> Any:
    column = {
        "NUMBER": ContactValue.value_num,
        "DATE": ContactValue.value_date,
        "STRING": ContactValue.value_text,
    }[variable.validate_as]
    return (
        select(column)
        .where(ContactValue.contact_id == Contact.id, ContactValue.variable_id == variable.id)
        .scalar_subquery()
    )


# --- variables ----------------------------------------------------------------------


def variables(session: Session, organization_id: str) -> list[Variable]:
    return list(
        session.scalars(
            select(Variable)
            .where(Variable.organization_id == organization_id)
            .order_by(Variable.created_at, Variable.id)
        )
    )


def variable(session: Session, organization_id: str, key: str) -> Variable | None:
    """By id, else by name (names are unique in an organization)."""
    found = session.scalar(
        select(Variable).where(Variable.organization_id == organization_id, Variable.id == key)
    )
    if found is not None:
        return found
    return session.scalar(
        select(Variable).where(Variable.organization_id == organization_id, Variable.name == key)
    )


def add_variable(session: Session, row: Variable) -> Variable:
    session.add(row)
    session.flush()
    return row


def delete_variable(session: Session, row: Variable) -> None:
    session.execute(delete(ContactValue).where(ContactValue.variable_id == row.id))
    session.execute(delete(Variable).where(Variable.id == row.id))


# --- values -------------------------------------------------------------------------


def values_of(session: Session, contact_ids: Sequence[str]) -> list[ContactValue]:
    if not contact_ids:
        return []
    return list(
        session.scalars(select(ContactValue).where(ContactValue.contact_id.in_(contact_ids)))
    )


def _mask_of(contact_id: str) -> Any:
    """The contact's channels mask (``models.CHANNEL_BITS``), read in the statement."""
    held = [case((getattr(Contact, c).is_(None), 0), else_=bit) for c, bit in CHANNEL_BITS.items()]
    return select(functools.reduce(operator.add, held)).where(Contact.id == contact_id)


def upsert_values(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Set (contact, variable) values: one statement; a value already there is replaced
    (and keeps its channels mask: it is the same contact's)."""
    if not rows:
        return
    rows = [{**r, "channels": _mask_of(r["contact_id"]).scalar_subquery()} for r in rows]
    stmt = _insert(session, ContactValue).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["contact_id", "variable_id"],
        set_={
            "value_text": stmt.excluded.value_text,
            "value_num": stmt.excluded.value_num,
            "value_date": stmt.excluded.value_date,
        },
    )
    session.execute(stmt)


def clear_values(session: Session, contact_id: str, variable_ids: Sequence[str]) -> None:
    if variable_ids:
        session.execute(
            delete(ContactValue).where(
                ContactValue.contact_id == contact_id, ContactValue.variable_id.in_(variable_ids)
            )
        )


def move_values(session: Session, from_id: str, to_id: str) -> None:
    """The values of ``from_id`` the contact ``to_id`` has none of go to ``to_id``."""
    has = select(ContactValue.variable_id).where(ContactValue.contact_id == to_id)
    session.execute(
        update(ContactValue)
        .where(ContactValue.contact_id == from_id, ContactValue.variable_id.not_in(has))
        .values(contact_id=to_id)
    )


# --- the bulk import's writes ----------------------------------------------------------
#
# New contacts and their values go straight to the driver, as tuples: COPY on PostgreSQL,
# one executemany on SQLite. Through SQLAlchemy (even Core) each row's dict went through
# the statement's bind processors in Python: a third of the writer's time (profiled).

CONTACT_COLUMNS = (
    "id",
    "organization_id",
    *CHANNEL_IDS.values(),
    "sources",
    "created_at",
    "updated_at",
)
VALUE_COLUMNS = ("contact_id", "variable_id", "value_text", "value_num", "value_date", "channels")


def _bulk(
    session: Session, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    raw: Any = session.connection().connection.driver_connection
    names = ", ".join(columns)
    if session.get_bind().dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    cur = raw.cursor()
    try:
        cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
    finally:
        cur.close()


BULK_CACHE_KIB = 64 * 1024


@contextlib.contextmanager
def bulk_cache(session: Session) -> Iterator[None]:
    """SQLite: a 64 MB page cache on this connection while a batch is written, the
    connection's own after. At a million contacts a batch dirties a few thousand pages
    all over the value indexes (a date's index entries land anywhere); in SQLite's 2 MB
    default they were read back and spilled again within the batch: 50,000 contacts
    written onto a million took 98 us of CPU a contact with it, 68 with 64 MB (ADR 39)."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    raw: Any = session.connection().connection.driver_connection
    before = raw.execute("PRAGMA cache_size").fetchone()[0]
    raw.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size = {int(before)}")


def bulk_formats(session: Session) -> tuple[Any, Any]:
    """(datetime -> stored form, date -> stored form) for the rows of ``insert_contacts``
    and ``insert_values``: SQLite's are SQLAlchemy's own text forms, PostgreSQL's COPY
    takes the Python objects."""
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        return (lambda v: v), (lambda v: v)
    moment = _table(Contact).c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    day = _table(ContactValue).c.value_date.type.dialect_impl(dialect).bind_processor(dialect)
    return moment, day


def insert_contacts(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """New contacts, columns in ``CONTACT_COLUMNS`` order, ``sources`` as JSON text."""
    _bulk(session, "contacts", CONTACT_COLUMNS, rows)


def insert_values(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Values of contacts just created, columns in ``VALUE_COLUMNS`` order; ``channels``
    the contact's mask (``models.mask_of``)."""
    _bulk(session, "contact_values", VALUE_COLUMNS, rows)


def by_ids(session: Session, organization_id: str, ids: Sequence[str]) -> list[Contact]:
    found = {
        c.id: c
        for c in session.scalars(
            select(Contact).where(Contact.organization_id == organization_id, Contact.id.in_(ids))
        )
    }
    return [found[i] for i in ids if i in found]
