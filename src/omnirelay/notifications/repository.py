"""SQL of notifications: what they read of other domains' tables, read-only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnirelay.templates.models import Template


def approved_templates(session: Session, organization_id: str) -> list[Template]:
    """The organization's approved templates, oldest first (a stable match)."""
    query = (
        select(Template)
        .where(Template.organization_id == organization_id, Template.status == "approved")
        .order_by(Template.created_at, Template.id)
    )
    return list(session.scalars(query).all())
