"""Which approved template a notification's text matches on a channel.

The one place notifications ask templates anything: templates v2's rule
(templates/service.best_match: per-channel moderation, the most specific template wins),
on the organization's approved entries as the planning cache has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnirelay.notifications.cache import Snapshot
from omnirelay.templates import service as templates


@dataclass(frozen=True)
class TemplateMatch:
    id: int  # the /user id (template2/list)
    uuid: str  # the /v3 id
    text: str
    variables: dict[str, str]


def approved_template(snapshot: Snapshot, channel: str, text: str) -> TemplateMatch | None:
    """The organization's approved template entry for ``channel`` (a seed 004
    designation: ``sms``, ``vk``, ``whatsapp-business``, ...) whose text, placeholders
    filled in, is ``text``; None when there is none."""
    found = templates.best_match(snapshot.templates.get(channel, ()), text)
    if found is None:
        return None
    return TemplateMatch(found[1], found[2], found[3], found[4])
