"""Contacts and variables: the rules. Takes a Session, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression

from omnirelay.contacts import events, merging, values
from omnirelay.contacts import repository as repo
from omnirelay.contacts.filter_plans import compile_ids, compile_rows
from omnirelay.contacts.models import CHANNEL_IDS, VALIDATE_AS, Contact, ContactImport, Variable
from omnirelay.contacts.phones_fast import e164
from omnirelay.contacts.render import render_many
from omnirelay.contacts.schemas import NewContact, Query, VariableValue
from omnirelay.db import utcnow
from omnirelay.errors import Conflict, InvalidInput, NotFound
from omnirelay.phones import InvalidPhone

DEFAULT_VARIABLES = (
    ("First Name", "STRING"),
    ("Last Name", "STRING"),
    ("Birthday", "DATE"),
    ("City", "STRING"),
    ("Country", "STRING"),
    ("Gender", "STRING"),
)
MAX_BATCH = 1000  # contacts per create request
MAX_ORDER = 5
MAX_ID_LENGTH = 64
TEL_ERROR = "1010"  # seed 001: Tel.number error
# Designations of the channels whose public data a contact may carry as a source object.
SOURCE_KEYS = ("vk", "telegram", "viber-bots", "fb", "instagram", "whatsapp", "webchat")
ORDER_FIELDS = {"id": "id", "createdAt": "created_at", "updatedAt": "updated_at"} | CHANNEL_IDS


def _not_found(what: str = "contact") -> NotFound:
    return NotFound(f"{what}_not_found", f"{what.capitalize()} not found")


# --- variables ----------------------------------------------------------------------


def create_defaults(session: Session, organization_id: str) -> None:
    """The six variables every organization starts with (onboarding)."""
    for name, kind in DEFAULT_VARIABLES:
        repo.add_variable(
            session,
            Variable(organization_id=organization_id, name=name, validate_as=kind, is_default=True),
        )


def list_variables(session: Session, organization_id: str) -> list[Variable]:
    return repo.variables(session, organization_id)


def create_variable(session: Session, organization_id: str, name: str, kind: str) -> Variable:
    name = name.strip()
    if not name:
        raise InvalidInput("invalid_field", "name: must not be empty", field="name")
    if kind not in VALIDATE_AS:
        raise InvalidInput(
            "invalid_field", "validateAs: one of STRING, NUMBER, DATE", field="validateAs"
        )
    existing = repo.variable(session, organization_id, name)
    if existing is not None and existing.name == name:
        raise Conflict("variable_exists", f"A variable named {name!r} exists", field="name")
    row = Variable(organization_id=organization_id, name=name, validate_as=kind)
    return repo.add_variable(session, row)


def delete_variable(session: Session, organization_id: str, variable_id: str) -> None:
    row = repo.variable(session, organization_id, variable_id)
    if row is None or row.id != variable_id:
        raise _not_found("variable")
    if row.is_default:
        raise InvalidInput("1058", "User can't make that action: a default variable", field="id")
    repo.delete_variable(session, row)


def _resolve(
    session: Session, organization_id: str, items: Sequence[VariableValue], path: str
) -> list[tuple[Variable, values.Typed | None]]:
    """Each (variable, typed value or None to clear), checked; the last of a repeated
    variable wins."""
    chosen: dict[str, tuple[Variable, values.Typed | None]] = {}
    for i, item in enumerate(items):
        where = f"{path}.{i}"
        var = repo.variable(session, organization_id, item.key)
        if var is None:
            raise NotFound(
                "variable_not_found", f"{where}: unknown variable {item.key!r}", field=where
            )
        if item.value is None or item.value == "":
            chosen[var.id] = (var, None)
        else:
            chosen[var.id] = (var, values.typed(var.validate_as, item.value, f"{where}.value"))
    return list(chosen.values())


def _value_row(contact_id: str, variable_id: str, typed: values.Typed) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "variable_id": variable_id,
        "value_text": typed.text,
        "value_num": typed.num,
        "value_date": typed.day,
    }


def _apply_values(
    session: Session, contact_id: str, resolved: Sequence[tuple[Variable, values.Typed | None]]
) -> None:
    repo.upsert_values(
        session, [_value_row(contact_id, v.id, t) for v, t in resolved if t is not None]
    )
    repo.clear_values(session, contact_id, [v.id for v, t in resolved if t is None])


# --- channel ids --------------------------------------------------------------------


def normalise_id(wire: str, value: Any, where: str) -> str:
    """A channel id as stored: phones in E.164 (phonenumbers), the others as text."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput("invalid_field", f"{where}: must be a string or a number", field=where)
    text = str(value).strip()
    if wire == "phone":
        try:
            return e164(text)
        except InvalidPhone:
            raise InvalidInput(TEL_ERROR, f"Tel.number error: {where}", field=where) from None
    if not text or len(text) > MAX_ID_LENGTH:
        raise InvalidInput(
            "invalid_field", f"{where}: 1 to {MAX_ID_LENGTH} characters", field=where
        )
    return text


def _columns(ids: dict[str, Any], where: str) -> dict[str, str]:
    out = {}
    for wire, value in ids.items():
        if value is None:
            continue
        out[CHANNEL_IDS[wire]] = normalise_id(wire, value, f"{where}.{wire}")
    return out


# --- contacts -----------------------------------------------------------------------


def get(session: Session, organization_id: str, contact_id: str) -> dict[str, Any]:
    contact = repo.get(session, organization_id, contact_id)
    if contact is None:
        raise _not_found()
    return render(session, organization_id, [contact])[0]


def render(
    session: Session, organization_id: str, contacts: Sequence[Contact]
) -> list[dict[str, Any]]:
    return render_many(session, contacts, repo.variables(session, organization_id))


def find_by_channel_id(
    session: Session, organization_id: str, wire: str, value: str
) -> Contact | None:
    """The contact reached at ``value`` on channel id ``wire`` (phone, vkId, ...): one
    probe of a unique index. For inbound messages and sends by phone."""
    column = CHANNEL_IDS[wire]
    return repo.find_by_channel_id(
        session, organization_id, column, normalise_id(wire, value, wire)
    )


def find_or_create(
    session: Session, organization_id: str, wire: str, value: Any
) -> tuple[Contact, bool]:
    """The contact reached at ``value`` on ``wire``, created (``contact_created`` sent)
    if there is none; True when created. For inbound messages and sends by phone: one
    index probe when it exists. Run it in ``contacts.unit.run`` (a concurrent creation of
    the same id makes the transaction run again, and then find it)."""
    found = find_by_channel_id(session, organization_id, wire, value)
    if found is not None:
        return found, False
    made = create(session, organization_id, [NewContact(ids={wire: value})])[0]
    contact = repo.get(session, organization_id, made["id"])
    assert contact is not None
    return contact, True


def create(
    session: Session, organization_id: str, items: Sequence[NewContact]
) -> list[dict[str, Any]]:
    """Create contacts; one whose channel id a contact already has goes into that contact
    (its ids fill in, its variables are set), and one matching several is merged first.
    Returns the contacts in the order given."""
    if len(items) > MAX_BATCH:
        raise InvalidInput("batch_too_large", f"At most {MAX_BATCH} contacts per request")
    prepared = []
    for i, item in enumerate(items):
        cols = _columns(item.ids, str(i))
        if not cols:
            raise InvalidInput(
                "missing_field", f'No field "phone" (or another channel id) in {i}', field=str(i)
            )
        prepared.append(
            (cols, _resolve(session, organization_id, item.variables, f"{i}.variables"))
        )
    now = utcnow()
    result: list[Contact | None] = [None] * len(items)
    created: list[Contact] = []
    changed: list[Contact] = []
    # Rows are locked (matched, inserted) in the order of their ids, the same in every
    # transaction, so that two batches of the same contacts queue instead of deadlocking.
    for index in sorted(range(len(items)), key=lambda i: sorted(prepared[i][0].items())):
        (cols, resolved), item = prepared[index], items[index]
        matches = repo.find_by_channel_ids(session, organization_id, cols, lock=True)
        if not matches:
            contact = repo.add(
                session,
                Contact(
                    organization_id=organization_id,
                    sources=dict(item.sources) or None,
                    created_at=now,
                    updated_at=now,
                    **cols,
                ),
            )
            created.append(contact)
        else:
            contact = matches[0]
            for other in matches[1:]:
                merging.merge(session, organization_id, contact, other)
            merging.assign_ids(session, contact, cols)
            if item.sources:
                contact.sources = {**(contact.sources or {}), **item.sources}
            contact.updated_at = now
            if contact not in changed and contact not in created:
                changed.append(contact)
        _apply_values(session, contact.id, resolved)
        result[index] = contact
    session.flush()
    done = [c for c in result if c is not None]
    rendered = {c.id: r for c, r in zip(done, render(session, organization_id, done), strict=True)}
    events.created(session, organization_id, [rendered[c.id] for c in created])
    for contact in changed:
        events.updated(session, organization_id, rendered[contact.id])
    return [rendered[c.id] for c in done]


def update_channel_id(
    session: Session, organization_id: str, contact_id: str, wire: str, value: Any
) -> None:
    """Give the contact a new id on one channel; if another contact has that id, the
    two are merged (``merging.merge``: the older one is kept)."""
    column = CHANNEL_IDS[wire]
    normalised = normalise_id(wire, value, wire)
    contact = repo.get_for_update(session, organization_id, contact_id)
    if contact is None:
        raise _not_found()
    if getattr(contact, column) == normalised:
        return
    holder = repo.find_by_channel_ids(session, organization_id, {column: normalised}, lock=True)
    if holder:
        merging.merge_on_id(session, organization_id, contact, holder[0], column, normalised)
        return
    setattr(contact, column, normalised)
    contact.updated_at = utcnow()
    session.flush()
    events.updated(session, organization_id, render(session, organization_id, [contact])[0])


def set_variables(
    session: Session, organization_id: str, contact_id: str, items: Sequence[VariableValue]
) -> None:
    contact = repo.get_for_update(session, organization_id, contact_id)
    if contact is None:
        raise _not_found()
    _apply_values(session, contact.id, _resolve(session, organization_id, items, "variables"))
    contact.updated_at = utcnow()
    session.flush()
    events.updated(session, organization_id, render(session, organization_id, [contact])[0])


def _order(
    session: Session, organization_id: str, order: list[list[Any]]
) -> list[UnaryExpression[Any]]:
    if len(order) > MAX_ORDER:
        raise InvalidInput("invalid_order", f"order: at most {MAX_ORDER} fields", field="order")
    out: list[UnaryExpression[Any]] = []
    for i, item in enumerate(order):
        where = f"order.{i}"
        if not (isinstance(item, list) and len(item) in (1, 2) and isinstance(item[0], str)):
            raise InvalidInput("invalid_order", f"{where}: [field, ASC|DESC]", field=where)
        direction = item[1] if len(item) == 2 else "ASC"
        if not isinstance(direction, str) or direction.upper() not in ("ASC", "DESC"):
            raise InvalidInput("invalid_order", f"{where}: direction ASC or DESC", field=where)
        key: Any
        nullable = item[0] not in ("id", "createdAt", "updatedAt")
        if item[0] in ORDER_FIELDS:
            key = getattr(Contact, ORDER_FIELDS[item[0]])
        else:
            var = repo.variable(session, organization_id, item[0])
            if var is None:
                raise InvalidInput(
                    "invalid_order", f"{where}: unknown field {item[0]!r}", field=where
                )
            key = repo.value_sort_key(var)
        key = key.desc() if direction.upper() == "DESC" else key.asc()
        # NULLS LAST only where there are NULLs: it keeps SQLite from walking an index.
        out.append(key.nulls_last() if nullable else key)
    # A stable page order; the id follows the first key's direction, so that the default
    # order is one walk of the (organization, createdAt, id) index, backwards.
    first_desc = isinstance(order[0], list) and str(order[0][-1]).upper() == "DESC"
    return [*out, Contact.id.desc() if first_desc else Contact.id.asc()]


def list_contacts(
    session: Session, organization_id: str, query: Query
) -> tuple[list[dict[str, Any]], int]:
    page, total = plan_page(session, organization_id, query)
    return render(session, organization_id, list(session.scalars(page))), total


def plan_page(session: Session, organization_id: str, query: Query) -> tuple[Select[Any], int]:
    """The page's statement (its plan chosen by the count) and ``total``."""
    if query.offset < 0:
        raise InvalidInput("invalid_field", "offset: must be >= 0", field="offset")
    if query.limit is not None and query.limit < 0:
        raise InvalidInput("invalid_field", "limit: must be >= 0", field="limit")
    variables: dict[str, Variable | None] = {}

    def lookup(key: str) -> Variable | None:  # each variable read once per request
        if key not in variables:
            variables[key] = repo.variable(session, organization_id, key)
        return variables[key]

    postgresql = session.get_bind().dialect.name == "postgresql"
    ids = compile_ids(query.filter, lookup, organization_id, join=postgresql)
    order_by = query.order or [["createdAt", "DESC"]]
    order = _order(session, organization_id, order_by)
    if ids is None:
        condition: ColumnElement[bool] = true()
        total = repo.count(session, organization_id, condition)
    else:
        total = repo.count_ids(session, ids)
        reach = query.offset + (total if query.limit is None else query.limit)
        if _walk(order_by) and total and reach * repo.contacts_bound(session) < total * total:
            # Many matches: walk the contacts in page order, testing each (ADR 29).
            condition = compile_rows(query.filter, lambda key: variables.get(key))
        else:
            condition = Contact.id.in_(ids)
    return repo.listing(organization_id, condition, order, query.offset, query.limit), total


def _walk(order: list[list[Any]]) -> bool:
    """Whether the page order is an index of the contacts (createdAt or id)."""
    first = order[0]
    return len(order) == 1 and isinstance(first, list) and first[0] in ("createdAt", "id")


def get_import(session: Session, organization_id: str, import_id: str) -> ContactImport:
    run = session.get(ContactImport, import_id)
    if run is None or run.organization_id != organization_id:
        raise _not_found("import")
    return run
