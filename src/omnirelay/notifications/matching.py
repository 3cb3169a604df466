"""Which approved template a notification's text matches on a channel.

The one place notifications ask templates anything: templates v2's ``match``
(templates/service.py: per-channel moderation, the most specific template wins).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from omnirelay.templates import service as templates


@dataclass(frozen=True)
class TemplateMatch:
    id: int  # the /user id (template2/list)
    uuid: str  # the /v3 id
    text: str
    variables: dict[str, str]


def approved_template(
    session: Session, organization_id: str, channel: str, text: str
) -> TemplateMatch | None:
    """The organization's approved template entry for ``channel`` (a seed 004
    designation: ``sms``, ``vk``, ``whatsapp-business``, ...) whose text, placeholders
    filled in, is ``text``; None when there is none."""
    found = templates.match(session, organization_id, channel, text)
    if found is None:
        return None
    return TemplateMatch(found.template_id, found.template_uuid, found.text, found.variables)
