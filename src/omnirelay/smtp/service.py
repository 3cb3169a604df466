"""What an email that reached the listener changes: a bounce or a delivery report
becomes a provider event of the message it names (``pipeline.enqueue_event``, by its
Message-ID); a reply becomes an inbound message (the ``messages.inbound`` job, which
reaches the message's ``reply`` URL). Takes a Session, never commits."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.channels.base import ProviderEvent
from omnirelay.channels.smtp.addresses import BadAddress, mailbox_key, normalize
from omnirelay.channels.smtp.inbound import MailEvent
from omnirelay.messaging import pipeline, sessions
from omnirelay.smtp import repository as repo

log = logging.getLogger(__name__)
OWN_ID = re.compile(r"[0-9a-f]{32}@[a-z0-9.-]+")  # channels/smtp/compose.provider_id


@dataclass(frozen=True)
class Mailbox:
    """An address the listener takes mail for: whose it is."""

    organization_id: str
    connection_id: int  # the connection the address belongs to
    connection_ids: tuple[int, ...]  # every email connection of the organization


def mailboxes(session: Session) -> dict[str, Mailbox]:
    """Every active email connection's addresses (from, reply-to, return path and the
    senders that are addresses), by ``mailbox_key``; the oldest connection wins a tie."""
    rows = repo.email_connections(session)
    by_org: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_org[row.organization_id].append(row.id)
    out: dict[str, Mailbox] = {}
    for row in rows:
        settings = row.settings or {}
        candidates = [settings.get(k) for k in ("from_address", "reply_to", "return_path")]
        candidates += list(row.senders or [])
        box = Mailbox(row.organization_id, row.id, tuple(by_org[row.organization_id]))
        for value in candidates:
            if not isinstance(value, str) or "@" not in value:
                continue
            try:
                out.setdefault(mailbox_key(normalize(value)), box)
            except BadAddress:
                continue
    return out


def apply(
    session: Session,
    box: Mailbox,
    recipient: str,
    event: MailEvent,
    attachments: list[dict[str, Any]] | None = None,
) -> str:
    """Apply one parsed email for one of its recipients; what was done (for the log and
    the tests): bounce, delivered, reply, ignored, unmatched. ``attachments``: a reply's
    files as already stored (media/inbound.py)."""
    if event.kind in ("ignored", "delayed"):
        return "ignored"
    attempt = repo.attempt_by_provider_id(session, box.connection_ids, event.references)
    if event.kind == "reply":
        sessions.enqueue_inbound(
            session,
            box.organization_id,
            attempt.connection_id if attempt is not None else box.connection_id,
            "",
            recipient,
            event.text or "",
            channel="email",
            address=event.sender,
            provider_message_id=attempt.provider_message_id if attempt is not None else None,
            attachments=attachments or None,
        )
        return "reply"
    connection_id, pid = (
        (attempt.connection_id, attempt.provider_message_id) if attempt else (0, None)
    )
    if pid is None:
        # A bounce can beat the record of its send (the dispatch batch records after all
        # its sends): a Message-ID of ours goes to the pipeline anyway, as the connection
        # the bounce came back to; an event early for its attempt waits for it there.
        ours = [r for r in event.references if OWN_ID.fullmatch(r)]
        if not ours:
            log.info("email %s for %s matches no message sent", event.kind, recipient)
            return "unmatched"
        connection_id, pid = box.connection_id, ours[0]
    if event.kind == "bounce":
        detail = " ".join(x for x in (event.status, event.diagnostic) if x)
        provider_event = ProviderEvent(
            "status",
            status="undelivered",
            code=event.code,
            error=f"Email bounced: {detail}" if detail else "Email bounced",
        )
    else:
        provider_event = ProviderEvent("status", status="delivered")
    pipeline.enqueue_event(session, box.organization_id, connection_id, pid, provider_event)
    return event.kind
