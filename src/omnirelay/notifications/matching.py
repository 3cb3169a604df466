"""Which approved template a notification's text matches on a channel.

The one place notifications ask templates anything. It reads the templates model
read-only (today's templates: one moderation status for the whole template, channels as
a list of names); templates v2 (per-channel moderation) brings a function in
``templates/service.py`` that answers the same question, and this function's body is
meant to become a call to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from omnirelay.notifications import repository as repo
from omnirelay.templates import service as templates
from omnirelay.templates.models import Template

_CACHE = "notifications.approved_templates"


@dataclass(frozen=True)
class TemplateMatch:
    id: str
    name: str
    text: str


def approved_template(
    session: Session, organization_id: str, channel: str, text: str
) -> TemplateMatch | None:
    """The organization's approved template for ``channel`` (a seed 004 designation:
    ``sms``, ``vk``, ``whatsapp-business``, ...) whose text, placeholders filled in any
    way, is ``text``; None when there is none. Oldest first, so the answer is stable."""
    # One read of the approved templates per session, however many channels ask.
    cache: dict[str, list[Template]] = session.info.setdefault(_CACHE, {})
    approved = cache.get(organization_id)
    if approved is None:
        approved = cache[organization_id] = repo.approved_templates(session, organization_id)
    for row in approved:
        if channel in (row.channels or []) and templates.pattern(row.text).fullmatch(text):
            return TemplateMatch(row.id, row.name, row.text)
    return None
