"""What a messenger provider's callbacks change, and whom a send by phone reaches.

A Viber bot or a VK community addresses people by their own ids (``viberId``, ``vkId``),
while /v3 sends name a phone. The link is the organization's contact (contacts/): a
contact with that phone and that id. It is learned when the user gives the phone to the
bot (a Viber shared contact, the ``context`` of a Viber deep link, the ``key`` of a VK
``message_allow`` or the ``ref`` of a VK message, when it is a phone number) or set
through /user contacts. Takes a Session, never commits, no network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnirelay.channels.base import ProviderEvent
from omnirelay.contacts import repository as contacts_repo
from omnirelay.contacts import service as contacts
from omnirelay.contacts.models import CHANNEL_IDS
from omnirelay.errors import DomainError
from omnirelay.messaging import pipeline, sessions
from omnirelay.messaging import repository as messages_repo
from omnirelay.phones import InvalidPhone, parse_phone

log = logging.getLogger(__name__)


def _e164(phone: str) -> str | None:
    digits = phone.strip().lstrip("+")
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        return None
    try:
        return parse_phone("+" + digits, None).e164
    except InvalidPhone:
        return None


def recipients(
    session: Session, organization_id: str, wire: str, phones: Iterable[str]
) -> dict[str, str]:
    """phone digits -> the contact's id on ``wire`` (``vkId``, ``viberId``), for the
    phones that have one: one indexed probe per phone."""
    column = CHANNEL_IDS[wire]
    out: dict[str, str] = {}
    for phone in set(phones):
        e164 = _e164(phone)
        contact = (
            contacts_repo.find_by_channel_id(session, organization_id, "phone", e164)
            if e164
            else None
        )
        value = getattr(contact, column) if contact is not None else None
        if value:
            out[phone] = str(value)
    return out


def phone_of(session: Session, organization_id: str, wire: str, user_id: str) -> str | None:
    contact = contacts_repo.find_by_channel_id(session, organization_id, CHANNEL_IDS[wire], user_id)
    return contact.phone.lstrip("+") if contact is not None and contact.phone else None


def learn(
    session: Session, organization_id: str, wire: str, user_id: str, phone: str | None = None
) -> bool:
    """The user ``user_id`` on ``wire`` is a contact (created if new); with ``phone``
    (when it is a phone number), the contact with that phone. False when nothing could
    be recorded (a conflict is logged, never an error of the callback)."""
    e164 = _e164(phone) if phone else None
    try:
        with session.begin_nested():
            if e164 is None:
                contacts.find_or_create(session, organization_id, wire, user_id)
                return True
            contact, _ = contacts.find_or_create(session, organization_id, "phone", e164)
            contacts.update_channel_id(session, organization_id, contact.id, wire, user_id)
            return True
    except (DomainError, IntegrityError) as exc:
        log.warning("could not record %s %s: %s", wire, user_id, exc)
        return False


def status(
    session: Session,
    organization_id: str,
    connection_id: int,
    provider_message_id: str,
    status: str,
    code: int | None = None,
    error: str | None = None,
) -> None:
    """A status of a message we sent, applied by the pipeline (forward only)."""
    pipeline.enqueue_event(
        session,
        organization_id,
        connection_id,
        provider_message_id,
        ProviderEvent("status", status=status, code=code, error=error),
    )


def inbound(
    session: Session,
    organization_id: str,
    connection_id: int,
    channel: str,
    *,
    text: str,
    to: str,
    wire: str | None = None,
    user_id: str | None = None,
    phone: str | None = None,
    reply_to: str | None = None,
    files: list[tuple[dict[str, Any], str]] | None = None,
    provider: str | None = None,
) -> None:
    """A user's message: kept, and a reply to ``reply_to`` (our message id the provider
    handed back, when it is this organization's and went through this connection) or to
    the latest message sent to the user's phone through the connection. ``files``: its
    attachments as (pending entry, the ``provider``'s reference), downloaded once the
    message is stored (media/fetch.py, ADR 37)."""
    if phone is None and wire is not None and user_id is not None:
        phone = phone_of(session, organization_id, wire, user_id)
    if reply_to is not None:
        message = messages_repo.get(session, reply_to)
        if (
            message is None
            or message.organization_id != organization_id
            or not any(int(s.get("connection_id", 0)) == connection_id for s in message.route)
        ):
            reply_to = None
        elif phone is None:
            phone = message.phone
    sessions.enqueue_inbound(
        session,
        organization_id,
        connection_id,
        phone or "",
        to,
        text,
        channel=channel,
        reply_to=reply_to,
        attachments=[entry for entry, _ in files] if files else None,
        fetch={"provider": provider, "refs": [ref for _, ref in files]} if files else None,
    )
