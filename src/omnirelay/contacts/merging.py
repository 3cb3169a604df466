"""Merging two contacts that turn out to be one person (a channel id they share).

The rule (docs/api/platform.md): the older contact is kept (created first; the smaller id
on a tie). It keeps its own channel ids, variable values and source objects, and takes
the other's wherever it has none; the other's history (deals) moves to it; the other is
deleted. ``contact_merged`` carries both as they were, the kept one as it now is."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.contacts import events
from omnirelay.contacts import repository as repo
from omnirelay.contacts.models import CHANNEL_IDS, Contact
from omnirelay.contacts.render import render_many
from omnirelay.db import utcnow
from omnirelay.deals import repository as deals


def _older_first(a: Contact, b: Contact) -> tuple[Contact, Contact]:
    return (a, b) if (a.created_at, a.id) <= (b.created_at, b.id) else (b, a)


def merge(session: Session, organization_id: str, keep: Contact, gone: Contact) -> None:
    """Move ``gone`` into ``keep`` and delete it (``keep`` is the one to keep)."""
    variables = repo.variables(session, organization_id)
    before = render_many(session, [gone], variables)[0]
    taken = {
        column: getattr(gone, column)
        for column in CHANNEL_IDS.values()
        if getattr(keep, column) is None and getattr(gone, column) is not None
    }
    repo.move_values(session, gone.id, keep.id)
    move_history(session, gone.id, keep.id)
    if gone.sources:
        keep.sources = {**gone.sources, **(keep.sources or {})}
    repo.redirect(session, organization_id, gone.id, keep.id, utcnow())
    session.delete(gone)
    session.flush()  # its unique ids are free before ``keep`` takes them
    for column, value in taken.items():
        setattr(keep, column, value)
    keep.updated_at = utcnow()
    session.flush()
    after = render_many(session, [keep], variables)[0]
    events.merged(session, organization_id, after, before)


def merge_on_id(
    session: Session,
    organization_id: str,
    contact: Contact,
    holder: Contact,
    column: str,
    value: str,
) -> Contact:
    """``contact`` is given ``value`` (of ``column``), which ``holder`` has: merge them."""
    keep, gone = _older_first(contact, holder)
    merge(session, organization_id, keep, gone)
    setattr(keep, column, value)
    session.flush()
    return keep


def assign_ids(session: Session, contact: Contact, columns: dict[str, str]) -> None:
    """The ids of a create request on the contact it matched: they are the newest word."""
    for column, value in columns.items():
        setattr(contact, column, value)
    session.flush()


def move_history(session: Session, from_id: str, to_id: str) -> None:
    """What else belongs to a contact follows it into the merge."""
    deals.move_to_contact(session, from_id, to_id)
