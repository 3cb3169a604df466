"""A notification's route: which of its channels can reach the contact, through which
connection, with which template; in order, each channel once.

A channel is a step when the contact has the id it needs (designations.contact_field),
the organization has an active connection serving it (one the entry names, or else its
first by id), the text fits, and, where only templates may be sent (WhatsApp Business, a
connection marked templates-only), an approved template matches the text. When no
template matches on any channel tried, SMS is added as the last step (if connected and
not already in the route): seed 004's "no template found: sent by SMS".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.connections import designations
from omnirelay.connections.designations import Designation
from omnirelay.contacts.models import CHANNEL_IDS, Contact
from omnirelay.messaging.validation import TEXT_LIMIT, StepDraft
from omnirelay.notifications import matching
from omnirelay.notifications.cache import Connection, Snapshot
from omnirelay.notifications.schemas import Entry, Request, allows, ttl_limits

TEMPLATES_ONLY = frozenset({"whatsapp-business"})  # takes nothing but approved templates
NO_DESTINATION = (
    "Unable to send to any channel because contact doesn't have destination params for "
    "specified channels"
)
# Where a designation's adapter finds a first attachment: Viber's image, WhatsApp's media.
IMAGE_STEP = frozenset({"viber"})
MEDIA_EXTRA = frozenset({"whatsapp", "whatsapp-business"})


@dataclass
class Plan:
    steps: list[StepDraft] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)  # designations looked at, in order
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (designation, why)

    def reason(self) -> str:
        """statusDetails.desc when no step could be made."""
        if self.skipped and all(why.startswith("the contact has no") for _, why in self.skipped):
            return NO_DESTINATION
        if not self.skipped:
            return "Unable to send to any channel: none is connected"
        details = "; ".join(f"{name}: {why}" for name, why in self.skipped)
        return f"Unable to send to any channel ({details})"


def recipient(contact: Contact, d: Designation) -> str | None:
    """The contact's id on ``d``'s channel (Web chat's ``id`` is the webchatId)."""
    wire = "webchatId" if d.contact_field == "id" else d.contact_field
    value = getattr(contact, CHANNEL_IDS[wire])
    return str(value) if value else None


def default_entries(snapshot: Snapshot) -> tuple[Entry, ...]:
    """The organization's default cascade: its default route (the admin API's notify
    settings, sendSimple's route) where it has one, else every designation it has an
    active connection for, in the seed's order of channels (messengers first, SMS last)."""
    names = list(snapshot.default_route) or [
        name for name, rows in snapshot.groups.items() if any(r.active for r in rows)
    ]
    return tuple(
        Entry((designations.BY_NAME[n],), (), None, f"default route {n}")
        for n in dict.fromkeys(names)
    )


class Planner:
    """Plans on a snapshot of the organization (notifications/cache.py); the session is
    read only for connections a request names by id."""

    def __init__(
        self, session: Session, organization_id: str, contact: Contact, snapshot: Snapshot
    ) -> None:
        self.session = session
        self.organization_id = organization_id
        self.contact = contact
        self.snapshot = snapshot

    def plan(self, request: Request) -> Plan:
        explicit = request.channels is not None
        entries = request.channels or default_entries(self.snapshot)
        plan = Plan()
        matched = False
        for e in entries:
            # Named ids are checked first, whatever the contact has: a wrong id is the
            # caller's error (connection_not_found, connection_channel_mismatch).
            pinned = (
                [
                    Connection.of(row)
                    for row in designations.resolve(
                        self.session, self.organization_id, e.designations, e.connections
                    )
                ]
                if e.connections
                else None
            )
            for d in e.designations:
                if d.name in plan.tried:
                    continue
                plan.tried.append(d.name)
                if not explicit:  # explicit channels were checked when parsed
                    why = allows(d, request.attachments)
                    if why is not None:
                        plan.skipped.append((d.name, why))
                        continue
                found = self._step(d, pinned, e.ttl, request)
                if isinstance(found, str):
                    plan.skipped.append((d.name, found))
                    continue
                step, template = found
                matched = matched or template
                plan.steps.append(step)
        sms = designations.BY_NAME["sms"]
        if not matched and sms.name not in plan.tried and not request.attachments:
            found = self._step(sms, None, None, request)
            if not isinstance(found, str):
                plan.tried.append(sms.name)
                plan.steps.append(found[0])
        return plan

    def _step(
        self,
        d: Designation,
        pinned: list[Connection] | None,
        ttl: int | None,
        request: Request,
    ) -> tuple[StepDraft, bool] | str:
        """The step of ``d`` and whether a template matched, or why there is none."""
        to = recipient(self.contact, d)
        if to is None:
            wire = "webchatId" if d.contact_field == "id" else d.contact_field
            return f"the contact has no {wire}"
        pool = pinned if pinned is not None else self.snapshot.groups.get(d.name, ())
        live = [c for c in pool if c.designation == d.name and c.active]
        if not live:
            return "no active connection"
        conn = live[0]
        limit = TEXT_LIMIT.get(conn.channel, 4096)
        if len(request.text) > limit:
            return f"the text is longer than {limit} characters"
        template = matching.approved_template(self.snapshot, d.name, request.text)
        if template is None and (d.name in TEMPLATES_ONLY or conn.templates_only):
            return "no approved template matches the text"
        extra: dict[str, Any] = {"designation": d.name, "to": {d.contact_field: to}}
        if template is not None:
            extra["template"] = {"id": template.id, "variables": template.variables}
        image = None
        if request.attachments:
            extra["attachments"] = [a.as_dict() for a in request.attachments]
            first = request.attachments[0]
            if d.name in IMAGE_STEP:
                image = first.url
            elif d.name in MEDIA_EXTRA:
                extra["url"] = first.url
                if first.name:
                    extra["filename"] = first.name
        phone = (self.contact.phone or "").lstrip("+")
        step = StepDraft(
            channel=conn.channel,
            phone=phone,
            text=request.text,
            sender=conn.senders[0] if conn.senders else None,
            image=image,
            ttl=ttl if ttl is not None else ttl_limits(d)[2],
            extra=extra,
            connection_id=conn.id,
        )
        return step, template is not None
