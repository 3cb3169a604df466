"""Telegram updates into omnirelay: stored as ``telegram.update`` jobs (from the webhook
or a poll), then applied: the contact's ``telegramId`` learned (its phone from a signed
/start link or a shared contact), the text stored through the inbound path
(messaging/sessions.inbound: reply URLs, opt-out). Takes a Session, never commits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.channels.telegram import TelegramConfig
from omnirelay.channels.telegram_updates import Inbound, parse_update, read_start
from omnirelay.connections import repository as connections_repo
from omnirelay.connections.models import ChannelConnection
from omnirelay.contacts import repository as contacts_repo
from omnirelay.contacts import service as contacts
from omnirelay.contacts.models import Contact
from omnirelay.db import utcnow
from omnirelay.media import fetch
from omnirelay.messaging import sessions
from omnirelay.messaging.pipeline import IN_FLIGHT
from omnirelay.queue.service import NewJob, enqueue_many
from omnirelay.telegram import repository as repo
from omnirelay.telegram.models import TelegramState

UPDATE = "telegram.update"
HOOK_PATH = "/hooks/telegram/{id}"
_HOOK_TAIL = re.compile(r"/hooks/telegram/\d+")


def hook_url(connection_id: int, webhook_url: str | None) -> str | None:
    """The URL Telegram POSTs updates to: ``webhook_url`` as given when it already ends
    in /hooks/telegram/<id>, else omnirelay's public base URL with that path added."""
    if webhook_url is None:
        return None
    if _HOOK_TAIL.search(webhook_url.split("?")[0]):
        return webhook_url
    return webhook_url + HOOK_PATH.format(id=connection_id)


def fingerprint(connection_id: int, config: TelegramConfig) -> str:
    """What the bot was connected with: a change of token, URL or secret connects again."""
    raw = "\n".join(
        (
            config.bot_token,
            hook_url(connection_id, config.webhook_url) or "",
            config.webhook_secret or "",
        )
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def enqueue_updates(
    session: Session, organization_id: str, connection_id: int, updates: Sequence[Any]
) -> None:
    """Updates as jobs, in the caller's transaction (with the poll offset, or before the
    webhook is answered): stored once, applied at least once."""
    enqueue_many(
        session,
        UPDATE,
        [
            NewJob({"connection_id": connection_id, "update": u}, organization_id=organization_id)
            for u in updates
        ],
        priority=IN_FLIGHT,
    )


def state(session: Session, connection_id: int, organization_id: str) -> TelegramState:
    row = repo.get(session, connection_id)
    if row is None:
        row = TelegramState(
            connection_id=connection_id,
            organization_id=organization_id,
            next_offset=0,
            updated_at=utcnow(),
        )
        repo.add(session, row)
    return row


def store_poll(
    session: Session,
    connection_id: int,
    owner: str,
    updates: Sequence[Any],
    next_offset: int,
) -> bool:
    """A poll's updates and the offset after them, in one transaction: if this process
    no longer holds the bot (its lease lapsed), nothing is stored and the new holder
    gets the same updates again."""
    row = repo.held(session, connection_id, owner)
    if row is None:
        return False
    if updates:
        enqueue_updates(session, row.organization_id, connection_id, updates)
    row.next_offset = max(row.next_offset, next_offset)
    row.last_error, row.updated_at = None, utcnow()
    return True


def record(
    session: Session, connection_id: int, *, connected: str | None = None, error: str | None
) -> None:
    row = repo.get(session, connection_id)
    if row is None:
        return
    if connected is not None:
        row.connected = connected
    row.last_error, row.updated_at = (error[:500] if error else None), utcnow()


def lease(session: Session, connection_id: int, owner: str, now: datetime, until: datetime) -> bool:
    return repo.take_lease(session, connection_id, owner, now, until)


# --- applying an update ---------------------------------------------------------------


def apply_update(session: Session, organization_id: str, connection_id: int, update: Any) -> None:
    connection = connections_repo.get(session, organization_id, connection_id)
    if connection is None or connection.deleted_at is not None:
        return  # the bot was removed since: nothing to tie the update to
    inbound = parse_update(update)
    if inbound is None:
        return
    contact = _contact(session, organization_id, connection, inbound) if inbound.private else None
    text = inbound.text
    if inbound.start is not None:
        text = "/start"  # the link's payload is omnirelay's, not the user's words
    if not text and not inbound.files:
        return  # a sticker: nothing to reply with
    phone = contact.phone.lstrip("+") if contact is not None and contact.phone else ""
    sender = connection.senders[0] if connection.senders else ""
    # Files are downloaded after this transaction (media/fetch.py): pending until then.
    pending = [
        {"name": f.name, "contentType": f.content_type, "size": f.size, "pending": True}
        for f in inbound.files
    ]
    row = sessions.inbound(
        session,
        organization_id,
        connection_id,
        phone,
        sender,
        text,
        channel="telegram",
        attachments=pending or None,
    )
    if pending:
        fetch.add(
            session,
            organization_id,
            row.id,
            connection_id,
            "telegram",
            [(i, f.file_id) for i, f in enumerate(inbound.files)],
        )


def _contact(
    session: Session, organization_id: str, connection: ChannelConnection, inbound: Inbound
) -> Contact:
    """The contact of the chat, created if new; tied to a phone or an existing contact
    when the update proves it (a signed /start link, the user's own shared number)."""
    token = str(connection.settings.get("bot_token") or "")
    link = read_start(token, inbound.start) if inbound.start and token else None
    target: Contact | None = None
    if inbound.shared_phone is not None:
        target, _ = contacts.find_or_create(
            session, organization_id, "phone", "+" + inbound.shared_phone
        )
    elif link is not None and link.phone is not None:
        target, _ = contacts.find_or_create(session, organization_id, "phone", "+" + link.phone)
    elif link is not None and link.contact_id is not None:
        target = contacts_repo.get(session, organization_id, link.contact_id)
    if target is None:
        found, _ = contacts.find_or_create(session, organization_id, "telegramId", inbound.chat_id)
        return found
    contacts.update_channel_id(session, organization_id, target.id, "telegramId", inbound.chat_id)
    # A merge may have kept the other contact: the one that now has the chat.
    kept = contacts_repo.find_by_channel_id(
        session, organization_id, "telegram_id", inbound.chat_id
    )
    return kept or target
