"""Moderation of a template's channel entries (seed 004): an entry starts `moderate` and
ends `approved` or `rejected`, decided by the provider of the channel's connection.

Asking is a job (``templates.moderate``) written with the change, so nothing is asked for
a change that did not commit. The job finds who moderates: the sandbox (no connection of
the channel, or only sandbox ones) decides at once by the rule below; a real provider
(e.g. `whatsapp_cloud`) decides by its answer: its hook (``register``) submits the
template, with no transaction open, and the answer comes back through ``record``. Until
then the entry stays `moderate`. See docs/api/platform.md ("Moderation") and ADR 27.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from omnirelay.connections import designations
from omnirelay.connections import repository as connections_repo
from omnirelay.db import utcnow
from omnirelay.errors import InvalidInput, NotFound
from omnirelay.queue import enqueue
from omnirelay.templates import repository as repo
from omnirelay.templates import text as texts
from omnirelay.templates.models import Template, TemplateChannel
from omnirelay.templates.service import sync_status

MODERATE = "templates.moderate"
SANDBOX = "sandbox"
SANDBOX_PROVIDERS = frozenset({"sandbox", "wa_sandbox"})
REJECT_WORD = re.compile(r"\bREJECT\b")
_ADJACENT = re.compile(f"(?:{texts.PLACEHOLDER.pattern}){{2}}")


@dataclass(frozen=True)
class Decision:
    status: str  # approved or rejected
    comment: str | None = None


# A real provider's moderation: submit (template, entry) for review. It is called from the
# moderation job; it must not do I/O in that transaction, so it queues its own work (the
# provider's drain or job) and later calls ``record`` with the answer.
Submit = Callable[[Session, Template, TemplateChannel], None]
_PROVIDERS: dict[str, Submit] = {}


def register(provider: str, submit: Submit) -> None:
    """The hook of a real provider's template moderation (none is registered yet)."""
    _PROVIDERS[provider] = submit


def sandbox_rule(text: str) -> Decision:
    """The sandbox's moderator, by content: it rejects a text with no fixed part (it
    would match anything), two placeholders side by side (no way to tell where one
    variable ends), or the word REJECT in capitals (to try the rejected path); it
    approves everything else."""
    if not texts.PLACEHOLDER.sub("", text).strip():
        return Decision("rejected", "the text has no fixed part besides its variables")
    if _ADJACENT.search(text):
        return Decision("rejected", "two variables side by side")
    if REJECT_WORD.search(text):
        return Decision("rejected", "the text contains REJECT")
    return Decision("approved")


def moderator(session: Session, organization_id: str, channel: str) -> str:
    """Who moderates the organization's templates of ``channel``: the provider of its
    first active real connection of that designation, else the sandbox."""
    for row in connections_repo.list_for(session, organization_id):
        real = row.active and row.provider not in SANDBOX_PROVIDERS
        if real and designations.of(row) == channel:
            return row.provider
    return SANDBOX


def request(session: Session, entry: TemplateChannel) -> None:
    """Ask for the entry's moderation, in the caller's transaction."""
    session.flush()  # the entry's id
    enqueue(
        session,
        MODERATE,
        {"entry_id": entry.id, "revision": entry.revision},
        organization_id=entry.organization_id,
    )


def apply(session: Session, entry: TemplateChannel, decision: Decision) -> None:
    entry.status = decision.status
    entry.comment = decision.comment
    entry.updated_at = utcnow()
    template = session.get(Template, entry.template_id)
    if template is not None:
        sync_status(template)
        template.updated_at = entry.updated_at
    session.flush()


def run(session: Session, entry_id: int, revision: int) -> None:
    """The moderation job: the entry's moderator decides, or is asked."""
    entry = repo.entry(session, entry_id, lock=True)
    if entry is None or entry.status != "moderate" or entry.revision != revision:
        return  # removed, decided, or asked again since (the text changed)
    template = session.get(Template, entry.template_id)
    if template is None or template.status == "deleted":
        return
    who = moderator(session, entry.organization_id, entry.channel)
    if who == SANDBOX:
        apply(session, entry, sandbox_rule(template.text))
        return
    submit = _PROVIDERS.get(who)
    if submit is not None:
        submit(session, template, entry)
    else:
        entry.comment = f"waiting for the answer of {who}"
        session.flush()


def record(
    session: Session, organization_id: str, entry_id: int, revision: int, decision: Decision
) -> bool:
    """A provider's answer about an entry it was asked to moderate (the other half of the
    hook). False when the answer is stale: the entry was decided or asked again since."""
    if decision.status not in ("approved", "rejected"):
        raise InvalidInput("invalid_status", "status must be approved or rejected", field="status")
    entry = repo.entry(session, entry_id, lock=True)
    if entry is None or entry.organization_id != organization_id:
        raise NotFound("template_channel_not_found", f"no template channel {entry_id}")
    if entry.status != "moderate" or entry.revision != revision:
        return False
    apply(session, entry, decision)
    return True
