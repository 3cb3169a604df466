"""SQL of templates, their channel entries and groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import UnaryExpression

from omnirelay.connections.designations import DESIGNATIONS
from omnirelay.templates.models import Template, TemplateChannel, TemplateGroup

_LIVE = Template.status != "deleted"


def add(session: Session, row: Template) -> Template:
    session.add(row)
    session.flush()
    return row


def by_uuid(
    session: Session, organization_id: str, uuid: str, *, lock: bool = False
) -> Template | None:
    """The organization's template by its seed 001 id, deleted ones too."""
    stmt = select(Template).where(
        Template.uuid == uuid, Template.organization_id == organization_id
    )
    return session.scalars(stmt.with_for_update() if lock else stmt).first()


def by_id(
    session: Session, organization_id: str, template_id: int, *, lock: bool = False
) -> Template | None:
    """The organization's live template by its number (another's reads as unknown)."""
    stmt = select(Template).where(
        Template.id == template_id, Template.organization_id == organization_id, _LIVE
    )
    return session.scalars(stmt.with_for_update() if lock else stmt).first()


def live(
    session: Session, organization_id: str, ids: Sequence[int], *, lock: bool = False
) -> list[Template]:
    """The organization's live templates among ``ids``, locked in id order when asked."""
    stmt = (
        select(Template)
        .where(Template.id.in_(ids), Template.organization_id == organization_id, _LIVE)
        .order_by(Template.id)
        .options(selectinload(Template.entries))
    )
    return list(session.scalars(stmt.with_for_update() if lock else stmt))


def list_for(session: Session, organization_id: str) -> Sequence[Template]:
    return session.scalars(
        select(Template)
        .where(Template.organization_id == organization_id, _LIVE)
        .order_by(Template.created_at, Template.id)
        .options(selectinload(Template.entries))
    ).all()


def count(session: Session, organization_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Template)
        .where(Template.organization_id == organization_id, _LIVE)
    )
    return int(session.scalar(stmt) or 0)


def page(
    session: Session,
    organization_id: str,
    order: Sequence[UnaryExpression[Any]],
    offset: int,
    limit: int | None,
) -> list[Template]:
    stmt = (
        select(Template)
        .where(Template.organization_id == organization_id, _LIVE)
        .order_by(*order)
        .offset(offset)
        .limit(limit)
        .options(selectinload(Template.entries))
    )
    return list(session.scalars(stmt))


def group_members(session: Session, group_ids: Sequence[int]) -> list[Template]:
    """The live templates of these groups, by id, with their entries."""
    if not group_ids:
        return []
    stmt = (
        select(Template)
        .where(Template.group_id.in_(group_ids), _LIVE)
        .order_by(Template.id)
        .options(selectinload(Template.entries))
    )
    return list(session.scalars(stmt))


def groups(session: Session, group_ids: Sequence[int]) -> dict[int, TemplateGroup]:
    if not group_ids:
        return {}
    rows = session.scalars(select(TemplateGroup).where(TemplateGroup.id.in_(group_ids)))
    return {g.id: g for g in rows}


def group(
    session: Session, organization_id: str, group_id: int, *, lock: bool = False
) -> TemplateGroup | None:
    stmt = select(TemplateGroup).where(
        TemplateGroup.id == group_id, TemplateGroup.organization_id == organization_id
    )
    return session.scalars(stmt.with_for_update() if lock else stmt).first()


def group_size(session: Session, group_id: int) -> int:
    stmt = select(func.count()).select_from(Template).where(Template.group_id == group_id, _LIVE)
    return int(session.scalar(stmt) or 0)


def entry(session: Session, entry_id: int, *, lock: bool = False) -> TemplateChannel | None:
    stmt = select(TemplateChannel).where(TemplateChannel.id == entry_id)
    return session.scalars(stmt.with_for_update() if lock else stmt).first()


def approved_entries(
    session: Session, organization_id: str, channels: Sequence[str]
) -> list[tuple[int, int, str, str]]:
    """The organization's approved entries of these designations as (entry id, template
    id, uuid, text): one query on (organization_id, channel, status), no entities built."""
    where: list[ColumnElement[bool]] = [
        TemplateChannel.organization_id == organization_id,
        TemplateChannel.channel.in_(channels),
        TemplateChannel.status == "approved",
        _LIVE,
    ]
    stmt = (
        select(TemplateChannel.id, Template.id, Template.uuid, Template.text)
        .join(Template, Template.id == TemplateChannel.template_id)
        .where(*where)
        .order_by(Template.id, TemplateChannel.id)
    )
    return [(e, i, u, t) for e, i, u, t in session.execute(stmt)]


def approved_entries_of(
    session: Session, organization_id: str
) -> list[tuple[str, int, int, str, str]]:
    """Every approved entry of the organization as (designation, entry id, template id,
    uuid, text), in the order of ``approved_entries``: what notification planning caches
    (notifications/cache.py)."""
    stmt = (
        select(
            TemplateChannel.channel, TemplateChannel.id, Template.id, Template.uuid, Template.text
        )
        .join(Template, Template.id == TemplateChannel.template_id)
        .where(
            TemplateChannel.organization_id == organization_id,
            TemplateChannel.status == "approved",
            _LIVE,
        )
        .order_by(Template.id, TemplateChannel.id)
    )
    return [(c, e, i, u, t) for c, e, i, u, t in session.execute(stmt)]


def approved_for(session: Session, organization_id: str, channel: str) -> list[Template]:
    """Templates approved for an omnirelay connection channel (`sms`, `whatsapp`, ...):
    those with an approved entry of a designation that channel serves."""
    names = [d.name for d in DESIGNATIONS if d.channel == channel]
    if not names:
        return []
    ids = (
        select(TemplateChannel.template_id)
        .where(
            TemplateChannel.organization_id == organization_id,
            TemplateChannel.channel.in_(names),
            TemplateChannel.status == "approved",
        )
        .scalar_subquery()
    )
    stmt = select(Template).where(Template.id.in_(ids), _LIVE).order_by(Template.id)
    return list(session.scalars(stmt))
