"""All SQL of deals. Every query names the organization."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from omnirelay.deals.models import Deal, DealAttribute


def move_to_contact(session: Session, from_contact: str, to_contact: str) -> None:
    """A merged contact's deals go to the contact that was kept."""
    session.execute(
        update(Deal).where(Deal.contact_id == from_contact).values(contact_id=to_contact)
    )


def add_attribute(session: Session, row: DealAttribute) -> DealAttribute:
    session.add(row)
    session.flush()
    return row
