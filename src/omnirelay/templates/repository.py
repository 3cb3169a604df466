"""SQL of templates."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnirelay.templates.models import Template


def add(session: Session, row: Template) -> Template:
    session.add(row)
    session.flush()
    return row


def get(session: Session, organization_id: str, template_id: str) -> Template | None:
    row = session.get(Template, template_id)
    if row is None or row.organization_id != organization_id or row.status == "deleted":
        return None
    return row


def get_any_status(session: Session, organization_id: str, template_id: str) -> Template | None:
    """The organization's template, deleted ones too."""
    row = session.get(Template, template_id)
    return row if row is not None and row.organization_id == organization_id else None


def list_for(session: Session, organization_id: str) -> Sequence[Template]:
    return session.scalars(
        select(Template)
        .where(Template.organization_id == organization_id, Template.status != "deleted")
        .order_by(Template.created_at)
    ).all()


def approved_for(session: Session, organization_id: str, channel: str) -> list[Template]:
    rows = session.scalars(
        select(Template).where(
            Template.organization_id == organization_id, Template.status == "approved"
        )
    ).all()
    return [t for t in rows if channel in (t.channels or [])]
