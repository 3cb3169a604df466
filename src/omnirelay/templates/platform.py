"""The seed 004 methods on templates (/user/template2/*): list, create, update the text,
add and remove a channel, delete. Every channel entry put in `moderate` is handed to
moderation (``moderation.request``) in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression

from omnirelay.connections import designations
from omnirelay.connections import repository as connections_repo
from omnirelay.db import utcnow
from omnirelay.errors import Conflict, InvalidInput, NotFound
from omnirelay.templates import moderation
from omnirelay.templates import repository as repo
from omnirelay.templates.groups import template_not_found
from omnirelay.templates.models import Template, TemplateChannel, TemplateGroup
from omnirelay.templates.service import (
    MAX_NAME,
    delete_row,
    group_conflict,
    new_entry,
    remoderate,
    sync_status,
)

# Attachments a channel takes (seed 004: none on Notify and SMS, one image on Instagram
# and Viber business messages); the others up to MAX_ATTACHMENTS.
MAX_ATTACHMENTS = 10
ATTACHMENTS = {"sms": 0, "notify": 0, "instagram": 1, "viber": 1}
MAX_ORDER = 3
ORDER_FIELDS = {
    "id": Template.id,
    "createdAt": Template.created_at,
    "updatedAt": Template.updated_at,
    "displayName": Template.name,
    "name": Template.event,
}


@dataclass(frozen=True)
class ChannelSpec:
    """A channel entry as given: the designation and its content there."""

    channel: str
    components: Any = None
    keyboard: dict[str, Any] | None = None
    attachments: list[str] = field(default_factory=list)
    sender: str | None = None


@dataclass(frozen=True)
class Listing:
    templates: list[Template]
    total: int
    groups: dict[int, TemplateGroup]
    members: dict[int, list[Template]]  # group id -> its templates


def _text(value: str) -> str:
    if not value.strip():
        raise InvalidInput("invalid_field", "text: must not be blank", field="text")
    return value


def _check_spec(session: Session, organization_id: str, spec: ChannelSpec, where: str) -> None:
    designations.get(spec.channel)
    room = ATTACHMENTS.get(spec.channel, MAX_ATTACHMENTS)
    if len(spec.attachments) > room:
        raise InvalidInput(
            "attachments_not_allowed",
            f"{where}: channel {spec.channel!r} takes "
            + ("no attachments" if room == 0 else f"at most {room} attachment(s)"),
            field=f"{where}.attachments",
        )
    if spec.sender is not None:
        senders = {
            s
            for row in connections_repo.list_for(session, organization_id)
            if designations.of(row) == spec.channel
            for s in row.senders or []
        }
        if spec.sender not in senders:
            raise InvalidInput(
                "sender_not_found",
                f"{where}: {spec.sender!r} is not a sender of the organization's "
                f"{spec.channel} connections",
                field=f"{where}.sender",
            )


def _put(row: Template, spec: ChannelSpec) -> TemplateChannel:
    return new_entry(
        row,
        spec.channel,
        components=spec.components,
        keyboard=spec.keyboard,
        attachments=list(spec.attachments),
        sender=spec.sender,
    )


def _order(order: Sequence[Sequence[Any]]) -> list[UnaryExpression[Any]]:
    if len(order) > MAX_ORDER:
        raise InvalidInput("invalid_order", f"order: at most {MAX_ORDER} fields", field="order")
    out: list[UnaryExpression[Any]] = []
    for i, item in enumerate(order):
        where = f"order.{i}"
        if not (len(item) in (1, 2) and isinstance(item[0], str)):
            raise InvalidInput("invalid_order", f"{where}: [field, ASC|DESC]", field=where)
        direction = str(item[1]).upper() if len(item) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise InvalidInput("invalid_order", f"{where}: direction ASC or DESC", field=where)
        if item[0] not in ORDER_FIELDS:
            names = ", ".join(ORDER_FIELDS)
            raise InvalidInput(
                "invalid_order", f"{where}: unknown field {item[0]!r}; one of {names}", field=where
            )
        key = ORDER_FIELDS[item[0]]
        out.append(key.desc() if direction == "DESC" else key.asc())
    first_desc = bool(order) and len(order[0]) == 2 and str(order[0][1]).upper() == "DESC"
    return [*out, Template.id.desc() if first_desc else Template.id.asc()]  # a stable page


def list_page(
    session: Session,
    organization_id: str,
    offset: int = 0,
    limit: int | None = None,
    order: Sequence[Sequence[Any]] | None = None,
) -> Listing:
    keys = _order(order or [["createdAt", "DESC"]])
    rows = repo.page(session, organization_id, keys, offset, limit)
    group_ids = sorted({r.group_id for r in rows if r.group_id is not None})
    members: dict[int, list[Template]] = {}
    for member in repo.group_members(session, group_ids):
        assert member.group_id is not None
        members.setdefault(member.group_id, []).append(member)
    return Listing(
        rows, repo.count(session, organization_id), repo.groups(session, group_ids), members
    )


def create(
    session: Session,
    organization_id: str,
    *,
    text: str,
    display_name: str | None = None,
    event: str | None = None,
    channels: Sequence[ChannelSpec] = (),
) -> Template:
    """A template with its channels, each `moderate` and handed to moderation. Without a
    `displayName` it is named after its event, else after the start of its text."""
    _text(text)
    seen: set[str] = set()
    for i, spec in enumerate(channels):
        _check_spec(session, organization_id, spec, f"channels.{i}")
        if spec.channel in seen:
            raise InvalidInput(
                "duplicate_channel",
                f"channels.{i}: channel {spec.channel!r} is given twice",
                field=f"channels.{i}.channel",
            )
        seen.add(spec.channel)
    name = (display_name or "").strip() or (event or "").strip() or text.strip()
    row = Template(
        uuid=str(uuid.uuid4()),
        organization_id=organization_id,
        name=name[:MAX_NAME],
        event=event,
        text=text,
        status="new",
        entries=[],
    )
    for spec in channels:
        _put(row, spec)
    sync_status(row)
    repo.add(session, row)
    for entry in row.entries:
        moderation.request(session, entry)
    return row


def _template(session: Session, organization_id: str, template_id: int, field: str) -> Template:
    row = repo.by_id(session, organization_id, template_id, lock=True)
    if row is None:
        raise template_not_found(template_id, field)
    return row


def update_text(session: Session, organization_id: str, template_id: int, text: str) -> Template:
    """A new text: every channel goes back to moderation (a same text changes nothing)."""
    row = _template(session, organization_id, template_id, "id")
    if _text(text) == row.text:
        return row
    row.text = text
    row.updated_at = utcnow()
    for entry in row.entries:
        remoderate(entry)
    sync_status(row)
    session.flush()
    for entry in row.entries:
        moderation.request(session, entry)
    return row


def add_channel(
    session: Session, organization_id: str, template_id: int, spec: ChannelSpec
) -> TemplateChannel:
    row = _template(session, organization_id, template_id, "templateId")
    _check_spec(session, organization_id, spec, "channel")
    if spec.channel in row.designations:
        raise Conflict(
            "channel_exists",
            f"template {row.id} has channel {spec.channel!r} already: remove it first",
            field="channel.channel",
        )
    conflict = group_conflict(session, row, [spec.channel])
    if conflict is not None:
        raise Conflict(
            "group_channel_conflict",
            f"template {conflict.other} of the same group has channel {spec.channel!r}: "
            "templates that share a channel cannot be in one group",
            field="channel.channel",
        )
    entry = _put(row, spec)
    row.updated_at = utcnow()
    sync_status(row)
    session.flush()
    moderation.request(session, entry)
    return entry


def remove_channel(session: Session, organization_id: str, template_id: int, channel: str) -> None:
    row = _template(session, organization_id, template_id, "templateId")
    designations.get(channel)
    entry = next((e for e in row.entries if e.channel == channel), None)
    if entry is None:
        raise NotFound(
            "template_channel_not_found",
            f"template {row.id} has no channel {channel!r}",
            field="channel",
        )
    row.entries.remove(entry)
    row.updated_at = utcnow()
    sync_status(row)
    session.flush()


def delete(session: Session, organization_id: str, template_id: int) -> None:
    """The same as /v3's delete: the template is `deleted` (and leaves its group)."""
    delete_row(session, _template(session, organization_id, template_id, "templateId"))
