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

    def __init__(
        self, number: int, desc: str, *, status: int = 400, field: str | None = None
    ) -> None:
        super().__init__(str(number), desc, field=field)
        self.number = number
        self.status = status


MAX_NAME = 200  # the column's length
# The seed's codes for template fields (docs/api/notifications.md, "Templates").
NO_TITLE = (1042, "Missed title for the template")
NO_TEXT = (1043, "Missed template text")
NO_ACCESS = (1051, "You don't have access to the template")
BAD_VALUE = (1052, "There was an error verifying fields values")
MISSING = (1053, "Missed value that is obligatory")
WRONG_TYPE = (1056, "Wrong value for this field type")


def error(which: tuple[int, str], field: str | None = None, status: int = 400) -> TemplateError:
    return TemplateError(which[0], which[1], field=field, status=status)


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
            raise TemplateError(
                BAD_VALUE[0], f"{BAD_VALUE[1]}: unknown channel {c!r}", field="channels"
            )
    return out


def _name(value: object) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise error(NO_TITLE, "name")
    if not isinstance(value, str):
        raise error(WRONG_TYPE, "name")
    if len(value.strip()) > MAX_NAME:
        raise TemplateError(
            BAD_VALUE[0], f"{BAD_VALUE[1]}: name is longer than {MAX_NAME}", field="name"
        )
    return value.strip()


def _group_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise error(WRONG_TYPE, "group_url")
    if value and not value.lower().startswith(("http://", "https://")):
        raise TemplateError(
            BAD_VALUE[0], f"{BAD_VALUE[1]}: group_url must be an http(s) URL", field="group_url"
        )
    return value


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
    title = _name(name)
    if not text or not text.strip():
        raise error(NO_TEXT, "text")
    return repo.add(
        session,
        Template(
            id=str(uuid.uuid4()),
            organization_id=organization_id,
            name=title,
            text=text,
            channels=_channels(channels),
            group_url=_group_url(group_url),
            comment=comment,
            status="new",
        ),
    )


def get(session: Session, organization_id: str, template_id: str) -> Template:
    row = repo.get(session, organization_id, template_id)
    if row is None:
        raise TemplateError(1050, "Template does not exist", status=404)
    return row


def _changeable(session: Session, organization_id: str, template_id: str) -> Template:
    """The organization's template to change or delete. One it deleted is 1051 (it is its
    own, but no longer open to it); another organization's is unknown (1050)."""
    row = repo.get_any_status(session, organization_id, template_id)
    if row is None:
        raise TemplateError(1050, "Template does not exist", status=404, field="id")
    if row.status == "deleted":
        raise error(NO_ACCESS, "id", status=403)
    return row


def change(
    session: Session, organization_id: str, template_id: str, options: dict[str, Any]
) -> dict[str, Any]:
    unknown = set(options) - {"name", "text", "channels", "group_url", "comment"}
    if unknown:
        first = sorted(unknown)[0]
        raise TemplateError(
            BAD_VALUE[0], f"{BAD_VALUE[1]}: unknown option {first!r}", field=f"options.{first}"
        )
    if not options:
        raise error(MISSING, "options")
    row = _changeable(session, organization_id, template_id)
    changed: dict[str, Any] = {}
    if "name" in options:
        row.name = changed["name"] = _name(options["name"])
    if "text" in options:
        if options["text"] is not None and not isinstance(options["text"], str):
            raise error(WRONG_TYPE, "text")
        if not options["text"] or not options["text"].strip():
            raise error(NO_TEXT, "text")
        if options["text"] != row.text:
            # A changed text has to pass moderation again.
            row.text = changed["text"] = options["text"]
            row.status = changed["status"] = "new"
    if "channels" in options:
        if not isinstance(options["channels"], list) or not all(
            isinstance(c, str) for c in options["channels"]
        ):
            raise error(WRONG_TYPE, "channels")
        channels = _channels(options["channels"])
        if set(channels) - set(row.channels or []) and row.status != "new":
            # Approval is per channel: a channel added needs moderation too.
            row.status = changed["status"] = "new"
        row.channels = changed["channels"] = channels
    if "group_url" in options:
        row.group_url = changed["group_url"] = _group_url(options["group_url"])
    if "comment" in options:
        if options["comment"] is not None and not isinstance(options["comment"], str):
            raise error(WRONG_TYPE, "comment")
        row.comment = changed["comment"] = options["comment"]
    row.updated_at = utcnow()
    session.flush()
    return changed


def delete(session: Session, organization_id: str, template_id: str) -> None:
    row = _changeable(session, organization_id, template_id)
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
