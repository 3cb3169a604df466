"""Template groups (seed 004): templates sent as alternatives of one another. A template
is in at most one group (a column), and no two templates of a group share a channel.

Locks: a template before its group, everywhere (v3 changes and channel additions check
the group too), so that two changes of one group take turns without a deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.errors import Conflict, InvalidInput, NotFound
from omnirelay.templates import repository as repo
from omnirelay.templates.models import Template, TemplateGroup
from omnirelay.templates.service import group_conflict, leave_group

MAX_TEMPLATES = 100


def template_not_found(template_id: int, field: str) -> NotFound:
    return NotFound("template_not_found", f"no template {template_id}", field=field)


def _shared(templates: Sequence[Template]) -> tuple[Template, Template, str] | None:
    seen: dict[str, Template] = {}
    for row in templates:
        for channel in row.designations:
            if channel in seen:
                return seen[channel], row, channel
            seen[channel] = row
    return None


def _conflict(first: int, second: int, channel: str) -> Conflict:
    return Conflict(
        "group_channel_conflict",
        f"templates {first} and {second} both have channel {channel!r}: templates that "
        "share a channel cannot be in one group",
        field="templates",
    )


def create(
    session: Session, organization_id: str, name: str, template_ids: Sequence[int]
) -> TemplateGroup:
    ids = list(dict.fromkeys(template_ids))
    if not ids:
        raise InvalidInput("invalid_field", "templates: at least one template", field="templates")
    if len(ids) > MAX_TEMPLATES:
        raise InvalidInput(
            "invalid_field", f"templates: at most {MAX_TEMPLATES}", field="templates"
        )
    rows = {r.id: r for r in repo.live(session, organization_id, ids, lock=True)}
    for template_id in ids:
        if template_id not in rows:
            raise template_not_found(template_id, "templates")
    members = [rows[i] for i in ids]
    for row in members:
        if row.group_id is not None:
            raise Conflict(
                "template_in_group",
                f"template {row.id} is already in group {row.group_id}: a template is in "
                "one group at most",
                field="templates",
            )
    shared = _shared(members)
    if shared is not None:
        raise _conflict(shared[0].id, shared[1].id, shared[2])
    group = TemplateGroup(organization_id=organization_id, name=name)
    session.add(group)
    session.flush()
    for row in members:
        row.group_id = group.id
        row.updated_at = group.created_at
    session.flush()
    return group


def add(session: Session, organization_id: str, template_id: int, group_id: int) -> None:
    row = repo.by_id(session, organization_id, template_id, lock=True)
    if row is None:
        raise template_not_found(template_id, "templateId")
    group = repo.group(session, organization_id, group_id, lock=True)
    if group is None:
        raise NotFound("group_not_found", f"no template group {group_id}", field="templateGroupId")
    if row.group_id == group.id:
        return  # already there
    if row.group_id is not None:
        raise Conflict(
            "template_in_group",
            f"template {row.id} is already in group {row.group_id}: remove it from that "
            "group first",
            field="templateId",
        )
    conflict = group_conflict(session, row, row.designations, group.id)
    if conflict is not None:
        raise _conflict(conflict.other, row.id, conflict.channel)
    row.group_id = group.id
    row.updated_at = group.updated_at = utcnow()
    session.flush()


def remove(session: Session, organization_id: str, template_id: int) -> None:
    row = repo.by_id(session, organization_id, template_id, lock=True)
    if row is None:
        raise template_not_found(template_id, "templateId")
    if row.group_id is None:
        raise Conflict(
            "template_not_in_group", f"template {row.id} is in no group", field="templateId"
        )
    leave_group(session, row)
    row.updated_at = utcnow()
    session.flush()
