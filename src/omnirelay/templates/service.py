"""Templates: create, change, delete, moderate, and match a text against approved ones.

Placeholders are ``#VAR#`` (seed 001) or ``{var}`` (seeds 002/004); in a match each one
stands for any non-empty text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.connections.models import CHANNELS
from omnirelay.db import utcnow
from omnirelay.errors import DomainError, InvalidInput
from omnirelay.templates import repository as repo
from omnirelay.templates.models import STATUSES, Template

PLACEHOLDER = re.compile(r"#([A-Za-z0-9_]+)#|\{([A-Za-z0-9_]+)\}")


class TemplateError(DomainError):
    """Errors with the seed's numeric code."""

    def __init__(self, number: int, desc: str, *, status: int = 400) -> None:
        super().__init__(str(number), desc)
        self.number = number
        self.status = status


def fields(text: str) -> list[str]:
    out: list[str] = []
    for m in PLACEHOLDER.finditer(text):
        name = m.group(1) or m.group(2)
        if name not in out:
            out.append(name)
    return out


def pattern(text: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    for m in PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[last : m.start()]))
        parts.append(r"[\s\S]+?")
        last = m.end()
    parts.append(re.escape(text[last:]))
    return re.compile("".join(parts))


def matches(session: Session, organization_id: str, channel: str, text: str) -> bool:
    return any(
        pattern(t.text).fullmatch(text)
        for t in repo.approved_for(session, organization_id, channel)
    )


def _channels(channels: Sequence[str] | None) -> list[str]:
    out = list(dict.fromkeys(channels or []))
    for c in out:
        if c not in CHANNELS:
            raise InvalidInput("1021", f"Unknown channel {c!r}", field="channels")
    return out


def create(
    session: Session,
    organization_id: str,
    *,
    name: str | None,
    text: str | None,
    channels: Sequence[str] | None,
    group_url: str | None,
    comment: str | None,
) -> Template:
    if not text or not text.strip():
        raise TemplateError(1043, "Missed template text")
    if name is not None and not name.strip():
        raise TemplateError(1042, "Missed title for the template")
    return repo.add(
        session,
        Template(
            id=str(uuid.uuid4()),
            organization_id=organization_id,
            name=(name or text[:50]).strip(),
            text=text,
            channels=_channels(channels),
            group_url=group_url,
            comment=comment,
            status="new",
        ),
    )


def get(session: Session, organization_id: str, template_id: str) -> Template:
    row = repo.get(session, organization_id, template_id)
    if row is None:
        raise TemplateError(1050, "Template does not exist", status=404)
    return row


def change(
    session: Session, organization_id: str, template_id: str, options: dict[str, Any]
) -> dict[str, Any]:
    row = get(session, organization_id, template_id)
    changed: dict[str, Any] = {}
    if "name" in options:
        if not isinstance(options["name"], str) or not options["name"].strip():
            raise TemplateError(1042, "Missed title for the template")
        row.name = changed["name"] = options["name"].strip()
    if "text" in options:
        if not isinstance(options["text"], str) or not options["text"].strip():
            raise TemplateError(1043, "Missed template text")
        if options["text"] != row.text:
            # A changed text has to pass moderation again.
            row.text = changed["text"] = options["text"]
            row.status = changed["status"] = "new"
    if "channels" in options:
        if not isinstance(options["channels"], list):
            raise TemplateError(1056, "Wrong value for this field type")
        channels = _channels(options["channels"])
        if set(channels) - set(row.channels or []) and row.status != "new":
            # Approval is per channel: a channel added needs moderation too.
            row.status = changed["status"] = "new"
        row.channels = changed["channels"] = channels
    for key in ("group_url", "comment"):
        if key in options:
            if options[key] is not None and not isinstance(options[key], str):
                raise TemplateError(1056, "Wrong value for this field type")
            setattr(row, key, options[key])
            changed[key] = options[key]
    unknown = set(options) - {"name", "text", "channels", "group_url", "comment"}
    if unknown:
        raise TemplateError(1021, f"Invalid argument: {sorted(unknown)[0]}")
    row.updated_at = utcnow()
    session.flush()
    return changed


def delete(session: Session, organization_id: str, template_id: str) -> None:
    row = get(session, organization_id, template_id)
    row.status = "deleted"
    row.updated_at = utcnow()
    session.flush()


def list_templates(session: Session, organization_id: str) -> Sequence[Template]:
    return repo.list_for(session, organization_id)


def moderate(
    session: Session, organization_id: str, template_id: str, status: str, comment: str | None
) -> Template:
    if status not in STATUSES or status == "deleted":
        raise InvalidInput("invalid_status", f"status must be one of {STATUSES}", field="status")
    row = get(session, organization_id, template_id)
    row.status = status
    row.moderation_comment = comment
    row.updated_at = utcnow()
    session.flush()
    return row
