"""Deals and deal attributes: the rules. Takes a Session, never commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.deals import repository as repo
from omnirelay.deals.models import DealAttribute

DEFAULT_ATTRIBUTES = (
    ("Status", "SELECT", "deal", ["New", "In progress", "Completed", "Cancelled"]),
    ("Amount", "NUMBER", "deal", None),
    ("Name", "STRING", "product", None),
    ("Cost", "NUMBER", "product", None),
)


def create_defaults(session: Session, organization_id: str) -> None:
    """The four attributes every organization starts with (onboarding)."""
    for name, kind, entity, options in DEFAULT_ATTRIBUTES:
        repo.add_attribute(
            session,
            DealAttribute(
                organization_id=organization_id,
                name=name,
                type=kind,
                entity=entity,
                options=options,
                is_default=True,
            ),
        )
