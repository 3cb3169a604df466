"""Web chat rules: the widget key's connection, signed visitor ids, a visitor's message
in (a contact with ``webchatId``, stored through sessions.inbound), the sends waiting for
a visitor, the statuses a widget reports. Takes a Session, never commits, no network."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.channels.base import ProviderEvent
from omnirelay.contacts import repository as contacts_repo
from omnirelay.contacts import service as contacts
from omnirelay.db import utcnow
from omnirelay.errors import InvalidInput, NotFound
from omnirelay.messaging import pipeline, sessions
from omnirelay.messaging.models import Message, MessageAttempt
from omnirelay.webchat import notices
from omnirelay.webchat import repository as repo

STATUSES = ("delivered", "read")
OPERATOR_FRAMES = ("typing", "read")  # what the operator side shows the visitor


@dataclass(frozen=True)
class Widget:
    """A webchat connection as a socket needs it (no ORM object leaves the session)."""

    connection_id: int
    organization_id: str
    key: str
    secret: str
    origins: tuple[str, ...]
    title: str
    colour: str
    sender: str

    def allows(self, origin: str | None) -> bool:
        if origin is None:
            return False
        return "*" in self.origins or origin.rstrip("/").lower() in self.origins


def widget(session: Session, key: str) -> Widget | None:
    for conn in repo.connections(session):
        s = conn.settings
        if conn.active and hmac.compare_digest(str(s.get("widget_key", "")), key):
            return Widget(
                conn.id,
                conn.organization_id,
                key,
                str(s["visitor_secret"]),
                tuple(s.get("allowed_origins") or ()),
                str(s.get("title", "Chat")),
                str(s.get("colour", "#2563eb")),
                conn.senders[0] if conn.senders else "",
            )
    return None


# --- visitor ids: "<id>.<signature>", the signature the connection's secret's --------------


def _signature(w: Widget, visitor: str) -> str:
    mac = hmac.new(w.secret.encode(), f"{w.key}:{visitor}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def new_visitor(w: Widget) -> str:
    visitor = "v" + secrets.token_hex(16)
    return f"{visitor}.{_signature(w, visitor)}"


def read_visitor(w: Widget, token: str | None) -> str | None:
    """The visitor id of a signed token, or None (forged, another widget's, malformed)."""
    if not token or len(token) > 100 or token.count(".") != 1:
        return None
    visitor, signature = token.split(".")
    if not (visitor.startswith("v") and len(visitor) == 33):
        return None
    return visitor if hmac.compare_digest(signature, _signature(w, visitor)) else None


# --- messages ---------------------------------------------------------------------------


def receive(session: Session, w: Widget, visitor: str, text: str) -> None:
    """The visitor's message: their contact (made on the first), stored as inbound."""
    contact, _ = contacts.find_or_create(session, w.organization_id, "webchatId", visitor)
    phone = contact.phone.lstrip("+") if contact.phone else ""
    sessions.inbound(
        session, w.organization_id, w.connection_id, phone, w.sender, text, channel="webchat"
    )


def _step_recipient(step: Any) -> Any:
    if not isinstance(step, dict) or step.get("channel") != "webchat":
        return None
    extra = step.get("extra")
    return extra.get("recipient") if isinstance(extra, dict) else None


def _recipient(attempt: MessageAttempt, message: Message) -> Any:
    route = message.route if isinstance(message.route, list) else []
    return _step_recipient(route[attempt.step]) if 0 <= attempt.step < len(route) else None


def pending(session: Session, w: Widget, visitor: str) -> list[tuple[str, str]]:
    """(provider id, text) of the sends to the visitor that no socket has taken yet."""
    out: list[tuple[str, str]] = []
    for attempt, message in repo.waiting(session, w.connection_id, utcnow()):
        if attempt.provider_message_id and _recipient(attempt, message) == visitor:
            step = message.route[attempt.step]
            out.append((attempt.provider_message_id, str(step.get("text") or "")))
    return out


def report(session: Session, w: Widget, visitor: str, provider_id: str, status: str) -> bool:
    """A status the widget reports for a message it got; False for an id that is not a
    send of this connection to this visitor (nothing recorded)."""
    if status not in STATUSES:
        return False
    parts = provider_id.split(":")
    if len(parts) != 3 or parts[0] != "wc" or len(parts[1]) > 36:
        return False
    # The message, not the attempt: the socket may be faster than the dispatcher's
    # record of the attempt (apply_event then waits for it).
    message = repo.message(session, parts[1])
    if message is None or message.organization_id != w.organization_id:
        return False
    route = message.route if isinstance(message.route, list) else []
    if not any(_step_recipient(step) == visitor for step in route):
        return False
    event = ProviderEvent(kind="status", status=status)
    pipeline.enqueue_event(session, w.organization_id, w.connection_id, provider_id, event)
    return True


# --- the operator side: typing and read, to the visitor's widgets on every process -------


def operator_event(
    session: Session,
    organization_id: str,
    contact_id: str,
    kind: str,
    connection_id: int | None = None,
) -> int:
    """The operator is typing to the contact's visitor, or has read what they wrote:
    announced to the visitor's widgets of the organization's web chats (or of
    ``connection_id``) after the commit; how many web chats it went to."""
    assert kind in OPERATOR_FRAMES
    contact = contacts_repo.get(session, organization_id, contact_id)
    if contact is None:
        raise NotFound("contact_not_found", "Contact not found")
    if not contact.webchat_id:
        raise InvalidInput("no_webchat_visitor", "the contact has no webchatId", field="contactId")
    chats = [
        c
        for c in repo.connections(session, organization_id)
        if c.active and (connection_id is None or c.id == connection_id)
    ]
    if connection_id is not None and not chats:
        raise NotFound("connection_not_found", f"no web chat connection {connection_id}")
    for conn in chats:
        key = str(conn.settings.get("widget_key", ""))
        notices.announce(session, key, contact.webchat_id, {"type": kind})
    return len(chats)
