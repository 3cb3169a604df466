"""The pipeline's side of session-based providers (SMPP): an attempt is queued for the
connection's session owner, which reports back what the provider answered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.blocklist import service as blocklist
from omnirelay.db import utcnow
from omnirelay.messaging import bulk_repository as bulk
from omnirelay.messaging import pipeline
from omnirelay.messaging import repository as repo
from omnirelay.messaging.claim_repository import QueuedAttempt
from omnirelay.messaging.models import InboundMessage, Message, MessageAttempt, ProviderPart
from omnirelay.queue import enqueue
from omnirelay.webhooks import service as webhooks

NOTIFY_CHANNEL = "omnirelay_sessions"
INBOUND = "messages.inbound"


def queue_attempt(
    session: Session, message: Message, attempt: MessageAttempt, now: datetime
) -> None:
    attempt.status = "queued"
    attempt.expires_at = now + timedelta(seconds=int(message.route[attempt.step]["ttl"]))
    # Nothing needs its id now: written with the rest of the message's changes.
    session.add(attempt)
    message.channel = attempt.channel
    message.updated_at = now
    # The ttl runs from now: a session that cannot send (SMSC down) does not hold the
    # message forever; the next step takes over.
    pipeline.watch_ttl(session, message, attempt)
    wakeup.notify(session, NOTIFY_CHANNEL)


def submission_data(
    session: Session, attempts: Sequence[QueuedAttempt]
) -> list[tuple[QueuedAttempt, dict[str, Any], list[int]]]:
    """For each claimed attempt: its route step and the parts already sent (with ids).
    Two reads for the batch, not two per attempt."""
    routes = bulk.routes_of(session, [a.message_id for a in attempts])
    done = bulk.parts_done(session, [a.id for a in attempts])
    return [
        (attempt, routes[attempt.message_id][attempt.step], done.get(attempt.id, []))
        for attempt in attempts
        if attempt.message_id in routes
    ]


def record_parts(session: Session, rows: Sequence[ProviderPart]) -> None:
    repo.add_parts(session, rows)


def mark_sent(session: Session, attempt_id: int, provider_message_id: str) -> None:
    attempt = repo.get_attempt(session, attempt_id)
    if attempt is None:
        return
    message = repo.lock(session, attempt.message_id)
    assert message is not None
    session.refresh(attempt)
    if attempt.status not in ("queued", "submitting"):
        return  # expired meanwhile, or already answered
    now = utcnow()
    attempt.status, attempt.status_at = "sent", now
    attempt.provider_message_id = provider_message_id
    if message.step == attempt.step and message.final_at is None:
        message.status = "sent"
        message.updated_at = now
        pipeline._report(session, message, attempt, "sent")


def mark_sent_many(session: Session, answers: Sequence[tuple[int, str]]) -> None:
    """``mark_sent`` for a batch of (attempt id, provider message id), set-based: one
    joined read, one UPDATE of attempts and one of messages, reports (where a message has
    a URL) in one INSERT; a message with a surface's status hook or reporter goes through
    ``mark_sent``."""
    now = utcnow()
    rows = bulk.attempts_to_mark_sent(session, [a for a, _ in answers])
    attempts, messages = [], []
    reports: list[webhooks.NewEvent] = []
    for attempt_id, provider_id in answers:
        row = rows.get(attempt_id)
        if row is None or row["status"] not in ("queued", "submitting"):
            continue  # expired meanwhile, or already answered
        if row["method"] in pipeline.STATUS_HOOKS or row["method"] in pipeline.REPORTERS:
            mark_sent(session, attempt_id, provider_id)
            continue
        row["status"] = "sent"  # a repeated answer in the same batch changes nothing
        attempts.append({"aid": attempt_id, "pid": provider_id, "now": now})
        if row["message_step"] != row["step"] or row["final"]:
            continue
        messages.append({"mid": row["message_id"], "now": now})
        if row["report_url"]:
            reports.append(
                webhooks.NewEvent(
                    row["organization_id"],
                    row["report_url"],
                    "message.status",
                    pipeline.report_body(
                        row["message_id"],
                        row["custom_id"],
                        "sent",
                        row["channel"],
                        int(row["price"]),
                        int(row["parts"]),
                    ),
                    ordering_key=row["message_id"],
                )
            )
    bulk.set_attempts_sent(session, attempts)
    bulk.set_messages_sent(session, messages)
    webhooks.emit_many(session, reports)


def mark_failed(session: Session, attempt_id: int, status: str, code: int, error: str) -> None:
    attempt = repo.get_attempt(session, attempt_id)
    if attempt is None:
        return
    message = repo.lock(session, attempt.message_id)
    assert message is not None
    session.refresh(attempt)
    if attempt.status not in ("queued", "submitting", "sent"):
        return
    pipeline._finish_attempt(session, message, attempt, status, code, error)


def inbound(
    session: Session,
    organization_id: str,
    connection_id: int,
    phone: str,
    to: str,
    text: str,
    *,
    channel: str = "sms",
    reply_to: str | None = None,
    address: str | None = None,
    provider_message_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> InboundMessage:
    """An end user's message: a reply to ``reply_to`` (a message id the provider handed
    back, already checked by the caller), or to the message it names (an email's
    In-Reply-To, as ``provider_message_id``), or else to the latest message sent to them
    through this connection (to its ``reply`` URL), kept either way. A stop/start keyword
    changes the block list (opt-out: every channel's inbound comes here or to
    pipeline.apply_event). ``attachments``: its files as stored in the media storage
    (media/inbound.py), kept on the row and passed on to the ``reply`` URL."""
    message_id = reply_to
    if message_id is None and provider_message_id is not None:
        named = repo.attempt_by_provider_id(session, connection_id, provider_message_id)
        if named is not None and named.organization_id == organization_id:
            message_id = named.message_id
    elif message_id is None and phone:
        attempt = repo.last_message_to(session, organization_id, connection_id, phone)
        message_id = attempt.message_id if attempt else None
    blocklist.opt_out(session, organization_id, phone, text, channel)
    row = InboundMessage(
        organization_id=organization_id,
        connection_id=connection_id,
        channel=channel,
        phone=phone,
        address=address,
        to=to,
        text=text,
        attachments=attachments or None,
        message_id=message_id,
    )
    repo.add_inbound(session, row)
    if any(a.get("pending") for a in attachments or []):
        return row  # its reply goes out when its files are in (media/fetch.py)
    if message_id is not None:
        message = repo.get(session, message_id)
        if message is not None:
            pipeline._reply(session, message, text, attachments or [])
    return row


def set_attachment(session: Session, inbound_id: int, position: int, link: dict[str, Any]) -> None:
    """An attachment of an inbound message once fetched (or given up on): ``link``
    replaces its pending entry (keeping the name, type and size it had)."""
    row = session.get(InboundMessage, inbound_id)
    if row is None or not row.attachments or position >= len(row.attachments):
        return
    items = [dict(a) for a in row.attachments]
    entry = {k: v for k, v in items[position].items() if k != "pending"}
    entry.update(link)
    if "mediaUrl" in entry:
        entry.pop("error", None)
    items[position] = entry
    row.attachments = items  # a new list: JSON columns do not track changes in place


def attachments_done(session: Session, inbound_id: int) -> None:
    """Every file of an inbound message is in: the reply it was holding goes out."""
    row = session.get(InboundMessage, inbound_id)
    if row is None or row.message_id is None:
        return
    message = repo.get(session, row.message_id)
    if message is not None:
        pipeline._reply(session, message, row.text, list(row.attachments or []))


def enqueue_inbound(
    session: Session,
    organization_id: str,
    connection_id: int,
    phone: str,
    to: str,
    text: str,
    **more: Any,
) -> None:
    """``more``: ``inbound``'s keyword arguments (channel, reply_to, address,
    provider_message_id, attachments)."""
    payload: dict[str, Any] = {"connection_id": connection_id, "phone": phone, "to": to}
    payload["text"] = text
    payload.update(
        {k: v for k, v in more.items() if v is not None and (k, v) != ("channel", "sms")}
    )
    enqueue(
        session,
        INBOUND,
        payload,
        priority=pipeline.IN_FLIGHT,
        organization_id=organization_id,
    )
