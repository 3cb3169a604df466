"""Notifications by contact profile: find (or create) the contact, plan its route, accept
it as a message of the one pipeline, and tell the callback server every status change.

A notification IS a message (``method = "notification"``): the accept core of /v3
(messaging/service.accept) writes it, the dispatch drain sends each step, failover,
the ttl sweep and provider reports work on it as on any message. What is its own: the
route comes from the contact's ids and the channel entries (planning.py), and its
statuses go to the callback server as ``notification_message_updated`` (a pipeline
reporter, which keeps the set-based paths) instead of a ``report`` URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.connections import designations
from omnirelay.connections import repository as connections_repo
from omnirelay.contacts import repository as contacts_repo
from omnirelay.contacts import service as contacts
from omnirelay.contacts.models import Contact
from omnirelay.errors import NotFound
from omnirelay.messaging import pipeline
from omnirelay.messaging import service as messaging
from omnirelay.messaging.pipeline import StatusReport
from omnirelay.messaging.validation import Draft
from omnirelay.notifications import cache
from omnirelay.notifications.planning import Planner
from omnirelay.notifications.schemas import Request
from omnirelay.webhooks import service as webhooks
from omnirelay.webhooks.models import WebhookSettings

METHOD = "notification"  # the pipeline's method of these messages
EVENT = "notification_message_updated"

# omnirelay's status of a message -> seed 004's status of a notification (docs/api/
# platform.md, "Statuses"). A failure whose code says the person blocked the sender is
# blocked_by_user; anything not in the table is unknown.
STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "expired": "expired",
    "rejected": "rejected",
    "error": "error",
    "deleted": "error",  # cancelled before any step was sent
}
BLOCKED_BY_USER = frozenset({1102, 1201})  # seed 001: blocked by the VK / Viber user
DESCRIPTIONS = {
    "sent": "Sent to the channel's provider",
    "delivered": "Delivered",
    "read": "Read",
}


def wire_status(status: str, code: int | None) -> str:
    if status in pipeline.FAILED and code in BLOCKED_BY_USER:
        return "blocked_by_user"
    return STATUSES.get(status, "unknown")


def _existing(session: Session, organization_id: str, request: Request) -> Contact | None:
    if request.contact_id is not None:
        found = contacts_repo.get(session, organization_id, request.contact_id)
        if found is None:  # another organization's id reads as unknown
            raise NotFound("contact_not_found", "Contact not found", field="contactId")
        return found
    return contacts.find_by_channel_id(session, organization_id, "phone", str(request.phone))


def _contact(session: Session, organization_id: str, request: Request) -> Contact:
    found = _existing(session, organization_id, request)
    if found is not None:
        return found
    contact, _ = contacts.find_or_create(session, organization_id, "phone", request.phone)
    return contact


def draft_for(session: Session, organization_id: str, request: Request) -> Draft | None:
    """Read only (no write lock): the notification's draft, ready for the accept batcher
    (the group commit of /v3's single sends), when its contact exists and a channel
    reaches it. None: :func:`send` must run in a write transaction instead (a contact to
    create, or an unsendable notification to record). Refusals raise as in ``send``."""
    snapshot = cache.CACHE.get(session, organization_id)  # first: before the session reads
    contact = _existing(session, organization_id, request)
    if contact is None:
        return None
    plan = Planner(session, organization_id, contact, snapshot).plan(request)
    return Draft(method=METHOD, steps=plan.steps) if plan.steps else None


def send(session: Session, organization_id: str, request: Request, now: datetime) -> str:
    """Accept one notification in the caller's transaction; its id. Errors raise and
    write nothing (the caller rolls back: a contact created for it is undone too). When
    no channel can reach the contact, the notification is still accepted, final with
    status ``error``, and the callback server is told why (the seed's example)."""
    contact = _contact(session, organization_id, request)
    # A write transaction reads the organization as it is (not cached): the rare path.
    snapshot = cache.read(session, organization_id)
    plan = Planner(session, organization_id, contact, snapshot).plan(request)
    if plan.steps:
        draft = Draft(method=METHOD, steps=plan.steps)
        return messaging.accept(session, organization_id, draft, now)
    first = plan.tried[0] if plan.tried else "sms"
    desc = plan.reason()
    message_id = messaging.record_unsendable(
        session,
        organization_id,
        method=METHOD,
        phone=(contact.phone or "").lstrip("+"),
        channel=first,
        error=desc,
        now=now,
    )
    emit(session, organization_id, message_id, "error", first, desc)
    return message_id


# --- the callback server ------------------------------------------------------------


def event_body(message_id: str, status: str, channel: str, desc: str | None) -> dict[str, Any]:
    return {"id": message_id, "status": status, "channel": channel, "statusDetails": {"desc": desc}}


def event(
    session: Session,
    organization_id: str,
    message_id: str,
    status: str,
    channel: str,
    desc: str | None,
) -> webhooks.NewEvent | None:
    """``{type, name, data, secret}`` for the callback server, if one is set (None
    otherwise); one notification's events arrive in order (its id is the ordering key).
    The callback is read once per transaction and organization (a session is one
    transaction: db.transaction); the ORM's get, even from its identity map, was most of
    the reporter's cost on the set-based paths (profile in docs/performance.md)."""
    known: dict[str, tuple[str, str | None] | None] = session.info.setdefault(
        "omnirelay_callbacks", {}
    )
    if organization_id not in known:
        row = session.get(WebhookSettings, organization_id)
        known[organization_id] = (
            (row.callback_url, row.callback_secret)
            if row is not None and row.callback_url
            else None
        )
    callback = known[organization_id]
    if callback is None:
        return None
    url, secret = callback
    # Seed 004 writes this event with ``type``; the other callback events carry ``name``:
    # both, as contacts/events.py does, so a receiver written for either finds it.
    body: dict[str, Any] = {
        "type": EVENT,
        "name": EVENT,
        "data": event_body(message_id, status, channel, desc),
    }
    if secret is not None:
        body["secret"] = secret
    return webhooks.NewEvent(organization_id, url, EVENT, body, ordering_key=message_id)


def emit(
    session: Session,
    organization_id: str,
    message_id: str,
    status: str,
    channel: str,
    desc: str | None,
) -> None:
    """Write the callback event of :func:`event` in the caller's transaction."""
    made = event(session, organization_id, message_id, status, channel, desc)
    if made is not None:
        webhooks.emit_many(session, [made])


def designation(session: Session, channel: str, connection_id: int) -> str:
    """The seed 004 designation of a step: its channel's, except that a WhatsApp
    connection is ``whatsapp-business`` or ``whatsapp`` by its provider."""
    if channel != "whatsapp":
        return channel  # sms, viber, vk, telegram: the designations' own names
    row = connections_repo.by_id_any(session, connection_id)
    return (designations.of(row) if row is not None else None) or channel


def on_status(session: Session, report: StatusReport) -> webhooks.NewEvent | None:
    """The pipeline's reporter of these messages (``sent`` of each step tried, then the
    final status), from its per-message and its set-based paths alike: the event to
    write, which the set-based paths write with their batch's in one INSERT."""
    wire = wire_status(report.status, report.code)
    if report.status in pipeline.FAILED:
        desc = report.error or f"The message is {report.status}"
    else:
        desc = DESCRIPTIONS.get(report.status, report.status)
    channel = designation(session, report.channel, report.connection_id)
    return event(session, report.organization_id, report.message_id, wire, channel, desc)


def install() -> None:
    """Wire the reporter into the pipeline (omnirelay/tasks.py imports notifications.tasks,
    which calls this)."""
    pipeline.REPORTERS[METHOD] = on_status
    cache.install()
