"""What happens to an accepted message: dispatch a step through its channel adapter, apply
provider reports, watch the ttl, hand over to the next step, report to the client.

Statuses only move forward. A step that ends undelivered / rejected / expired / error
hands over to the next step; the last one's failure is the message's final status.
Status reports go to the message's ``report`` URL: ``sent`` for every step tried (with
that step's channel), then the final status; never a status lower than one already sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.billing import service as billing
from omnirelay.blocklist import service as blocklist
from omnirelay.channels.base import (
    ProviderEvent,
    SendResult,
)
from omnirelay.db import utcnow
from omnirelay.messaging import bulk_repository as bulk
from omnirelay.messaging import inbox
from omnirelay.messaging import repository as repo
from omnirelay.messaging.models import Message, MessageAttempt
from omnirelay.messaging.service import DISPATCH_CHANNEL
from omnirelay.queue import Retry, enqueue
from omnirelay.webhooks import service as webhooks

log = logging.getLogger(__name__)

EVENT = "messages.provider_event"
TTL = "messages.ttl"
FAILED = ("undelivered", "expired", "rejected", "error", "deleted")
FINAL = ("delivered", "read", *FAILED)
RANK = {"accepted": 0, "queued": 0, "submitting": 0, "sent": 1, "delivered": 2, "read": 3}
WAITING = ("queued", "submitting", "sent")  # the ttl watch expires these
MAX_SEND_TRIES = 5  # retriable provider errors before the step is given up
EARLY_EVENT_TRIES = 20  # a report that arrives before its attempt is recorded waits
# Reports and replies of messages already sent run before new dispatches: under a
# backlog, a message sent is finished (and its customer told) first, instead of every
# report waiting behind the whole backlog. They cannot starve dispatch: each one exists
# only because a dispatch ran. (Ttl watches are not in flight work: when one is due, it
# hands over to the next step, a new dispatch.)
IN_FLIGHT = 1


# A surface whose messages report in their own shape (the WhatsApp gateway's webhooks)
# registers hooks by the message's ``method``; the rest use report_url and reply_url.
StatusHook = Callable[[Session, Message, MessageAttempt, str], None]
ReplyHook = Callable[[Session, Message, str], None]
STATUS_HOOKS: dict[str, StatusHook] = {}
REPLY_HOOKS: dict[str, ReplyHook] = {}
# A gate may hold a step back (a gateway device that is not connected): it returns when
# to look again, or None to send now.
DispatchGate = Callable[[Session, Message, dict[str, Any]], datetime | None]
DISPATCH_GATES: dict[str, DispatchGate] = {}


@dataclass(frozen=True)
class StatusReport:
    """A status recorded for a message, as a reporter gets it (no ORM objects)."""

    message_id: str
    organization_id: str
    step: int
    channel: str
    connection_id: int
    status: str
    code: int | None = None
    error: str | None = None


# A surface whose messages report in their own shape but need nothing of the message
# beyond a StatusReport (notifications: the callback server) registers a reporter: it is
# called by the per-message paths and by the set-based ones (sent_many,
# statuses.apply_many) alike, so its messages keep the set-based paths that a
# STATUS_HOOKS message leaves. It returns the webhook event to write (or None) rather
# than writing it: the set-based paths write a batch's events in their one INSERT
# (webhooks.emit_many), with their report URLs' (profiled: one emit per status was a
# quarter of the pipeline's time on a notification cascade, docs/performance.md).
Reporter = Callable[[Session, StatusReport], webhooks.NewEvent | None]
REPORTERS: dict[str, Reporter] = {}


def rank(status: str) -> int:
    return 4 if status in FAILED else RANK.get(status, 0)


# --- dispatch (the drain itself: messaging/dispatch.py) ---------------------------------


def _enqueue_dispatch(session: Session, message: Message, step: int, at: datetime) -> None:
    """The message is due again at ``at``, for ``step`` (ADR 18: it is its own job)."""
    message.tries = 0  # a new step: its own retriable errors
    message.step = step
    message.due_at = at
    if at <= utcnow():
        wakeup.notify(session, DISPATCH_CHANNEL)


def sent(
    session: Session, message: Message, attempt: MessageAttempt, result: SendResult, now: datetime
) -> None:
    attempt.status = "sent"
    attempt.provider_message_id = result.provider_message_id
    attempt.expires_at = now + timedelta(seconds=int(message.route[attempt.step]["ttl"]))
    repo.add_attempt(session, attempt)
    message.status = "sent"
    message.channel = attempt.channel
    message.updated_at = now
    _report(session, message, attempt, "sent")
    for event in result.events:
        enqueue_event(
            session,
            message.organization_id,
            attempt.connection_id,
            result.provider_message_id,
            event,
        )


def watch_ttl(session: Session, message: Message, attempt: MessageAttempt) -> None:
    """Nothing to do: an attempt's ``expires_at`` is its ttl watch, swept in batches by
    the ttl drain (``expire_due``, ADR 18). Kept as the place that says so."""


def _unwatch_ttl(session: Session, attempt: MessageAttempt) -> None:
    """Nothing to do: an attempt that ended is no longer waiting, so the sweep skips it."""


FOLDED = ("delivered", "read")  # reports a send may carry, due at once, applied with it


def _folded(row: SentRow) -> tuple[list[str], tuple[ProviderEvent, ...]]:
    """The statuses of ``row``'s events that are due at once and need nothing but a
    forward move (delivered, read, in rank order, single-part attempts), and the events
    left: from the first that is not one of those on, so the order is kept."""
    events = row.result.events
    if int(row.attempt.get("parts", 1)) > 1:
        return [], events
    statuses: list[str] = []
    current = "sent"
    for i, event in enumerate(events):
        if (
            event.kind != "status"
            or event.delay > 0
            or event.status not in FOLDED
            or rank(event.status) <= rank(current)
        ):
            return statuses, events[i:]
        statuses.append(event.status)
        current = event.status
    return statuses, ()


def sent_many(session: Session, rows: list[SentRow], now: datetime) -> None:
    """``sent`` for a batch of plain messages (no status hook) in a few statements: the
    attempts in one INSERT, the messages in one UPDATE, their reports (for the messages
    that have a report URL or a reporter) in one INSERT. A report the send carried that
    is due now (the sandbox's, a provider answering "delivered" with the send) is applied
    in the same statements: the attempt is inserted with its final status, the message
    updated to it (ADR 40); later or other events wait in the inbox (messaging/inbox.py),
    in one INSERT."""
    attempts, updates, events = [], [], []
    reports: list[webhooks.NewEvent] = []
    for row in rows:
        result = row.result
        folded, later = _folded(row)
        status = folded[-1] if folded else "sent"
        attempts.append(
            {
                **row.attempt,
                "status": status,
                "status_at": now,
                "provider_message_id": result.provider_message_id,
                "expires_at": now + timedelta(seconds=row.ttl),
                "code": None,
                "error": None,
            }
        )
        updates.append(
            {
                "mid": row.message_id,
                "status": status,
                "channel": row.attempt["channel"],
                "now": now,
                "final": now if folded else None,
            }
        )
        reporter = REPORTERS.get(row.method)
        for reported_status in ("sent", *folded):
            if reporter is not None:
                made = reporter(
                    session,
                    StatusReport(
                        row.message_id,
                        row.organization_id,
                        int(row.attempt["step"]),
                        str(row.attempt["channel"]),
                        int(row.attempt["connection_id"]),
                        reported_status,
                    ),
                )
                if made is not None:
                    reports.append(made)
            if row.report_url:
                reports.append(
                    webhooks.NewEvent(
                        row.organization_id,
                        row.report_url,
                        "message.status",
                        report_body(
                            row.message_id,
                            row.custom_id,
                            reported_status,
                            row.attempt["channel"],
                            int(row.attempt["price"]),
                            int(row.attempt["parts"]),
                        ),
                        ordering_key=row.message_id,
                    )
                )
        for event in later:
            events.append(
                inbox.row(
                    row.organization_id,
                    row.attempt["connection_id"],
                    result.provider_message_id,
                    event,
                    now + timedelta(seconds=event.delay),
                )
            )
    bulk.insert_attempts(session, attempts)
    bulk.mark_sent(session, updates)
    inbox.add(session, events)
    webhooks.emit_many(session, reports)


@dataclass
class SentRow:
    """A message whose step its adapter took, as ``sent_many`` records it."""

    message_id: str
    organization_id: str
    custom_id: str | None
    report_url: str | None
    ttl: int
    attempt: dict[str, Any]  # the attempt's columns before sending
    result: SendResult
    method: str = ""  # the message's (its reporter, if any: REPORTERS)


def event_payload(
    connection_id: int, provider_message_id: str, event: ProviderEvent
) -> dict[str, Any]:
    return {
        "connection_id": connection_id,
        "provider_message_id": provider_message_id,
        "kind": event.kind,
        "status": event.status,
        "code": event.code,
        "error": event.error,
        "text": event.text,
    }


def enqueue_event(
    session: Session,
    organization_id: str,
    connection_id: int,
    provider_message_id: str,
    event: ProviderEvent,
) -> None:
    """A provider event, applied as a job (after ``event.delay`` seconds)."""
    enqueue(
        session,
        EVENT,
        event_payload(connection_id, provider_message_id, event),
        run_at=utcnow() + timedelta(seconds=event.delay),
        priority=IN_FLIGHT,
        organization_id=organization_id,
        # A report of an id never recorded (an SMSC answering a copy sent before a
        # failover) is dropped by apply_event after EARLY_EVENT_TRIES, not dead-lettered.
        max_attempts=EARLY_EVENT_TRIES + 2,
    )


# --- provider events, ttl -----------------------------------------------------------


def apply_event(session: Session, payload: dict[str, Any], tries: int) -> None:
    connection_id, provider_id = int(payload["connection_id"]), str(payload["provider_message_id"])
    attempt = repo.attempt_by_provider_id(session, connection_id, provider_id)
    part = None
    if attempt is None:
        part = repo.part_by_provider_id(session, connection_id, provider_id)
        attempt = repo.get_attempt(session, part.attempt_id) if part is not None else None
    if attempt is None:
        if tries < EARLY_EVENT_TRIES:
            raise Retry(min(60.0, 0.5 * tries), "report before its attempt was recorded")
        log.warning("dropping a provider event for unknown id %s", payload["provider_message_id"])
        return
    message = repo.lock(session, attempt.message_id)
    assert message is not None
    session.refresh(attempt)  # as of the lock
    if payload["kind"] == "inbound":
        text = str(payload.get("text") or "")
        # A reply reported with a sent message (sandbox, Cloud API): the opt-out keywords
        # apply to it as to an inbound message (messaging/sessions.inbound).
        blocklist.opt_out(session, message.organization_id, message.phone, text, attempt.channel)
        _reply(session, message, text)
        return
    status = str(payload["status"])
    # A concatenated SMS is delivered when every part is.
    multipart = attempt.parts > 1 and status == "delivered"
    if multipart and not repo.mark_part_delivered(session, attempt.id, connection_id, provider_id):
        return
    # Statuses only move forward: nothing after a failure, no failure after delivery,
    # and a late or repeated report changes nothing.
    if attempt.status in FAILED or rank(status) <= rank(attempt.status):
        return
    if status in FAILED and attempt.status in ("delivered", "read"):
        return
    if status in FAILED:
        finish_attempt(session, message, attempt, status, payload.get("code"), payload.get("error"))
        return
    now = utcnow()
    attempt.status, attempt.status_at = status, now
    if status not in WAITING:  # a "sent" report still waits for the final one
        _unwatch_ttl(session, attempt)
    if message.step == attempt.step and rank(status) > rank(message.status):
        message.status = status
        message.updated_at = now
        message.final_at = message.final_at or now
        message.error = message.code = None
        _report(session, message, attempt, status)


def cancel(session: Session, message_id: str, reason: str) -> bool:
    """Stop a message that no step has been sent for yet; False if it is too late."""
    message = repo.lock(session, message_id)
    if message is None or message.final_at is not None or message.status != "accepted":
        return False
    now = utcnow()
    if message.claimed_by is not None and message.lease_until and message.lease_until > now:
        return False  # a dispatch holds it: it may be with the provider right now
    message.status, message.error, message.final_at, message.updated_at = (
        "deleted",
        reason,
        now,
        now,
    )
    message.due_at = None
    return True


def expire(session: Session, attempt_id: int) -> None:
    attempt = repo.get_attempt(session, attempt_id)
    if attempt is None:
        return
    message = repo.lock(session, attempt.message_id)
    assert message is not None
    session.refresh(attempt)  # as of the lock
    if attempt.status not in WAITING:
        return  # a final report came in time
    finish_attempt(session, message, attempt, "expired", None, "Possible delivery time is up")


def expire_due(session: Session, now: datetime, limit: int) -> int:
    """The ttl sweep: attempts still waiting whose ``expires_at`` passed expire (the next
    step takes over); how many were looked at."""
    ids = bulk.expired_attempts(session, now, limit)
    for attempt_id in ids:
        try:
            with session.begin_nested():
                expire(session, attempt_id)
        except Exception:
            # One bad row must not stop every ttl: it is looked at again in a minute.
            log.exception("expiring attempt %s failed", attempt_id)
            bulk.postpone_expiry(session, attempt_id, now + timedelta(seconds=60))
    return len(ids)


def finish_attempt(
    session: Session,
    message: Message,
    attempt: MessageAttempt,
    status: str,
    code: int | None,
    error: str | None,
) -> None:
    """A step failed: hand over to the next step, or fail the message."""
    now = utcnow()
    attempt.status, attempt.code, attempt.error, attempt.status_at = status, code, error, now
    if attempt.id is None:
        repo.add_attempt(session, attempt)
    else:
        _unwatch_ttl(session, attempt)
    if message.step != attempt.step or message.final_at is not None:
        return
    message.updated_at = now
    if attempt.step + 1 < len(message.route):
        message.step = attempt.step + 1
        message.channel = message.route[message.step]["channel"]
        _enqueue_dispatch(session, message, message.step, now)
        return
    message.status, message.code, message.error = status, code, error
    message.final_at = now
    _report(session, message, attempt, status)


# --- webhooks out -------------------------------------------------------------------


def report_body(
    message_id: str,
    custom_id: str | None,
    status: str,
    channel: str,
    price: int,
    parts: int,
    error: str | None = None,
    code: int | None = None,
) -> dict[str, Any]:
    """A status report as the ``report`` URL gets it (the per-message and the set-based
    paths both build it here)."""
    return {
        "id": message_id,
        "custom_id": custom_id,
        "status": status,
        "channel": channel,
        "error": error if status in FAILED else None,
        "code": code if status in FAILED else None,
        "price": billing.format_units(price),
        "parts": parts,
    }


def report_payload(message: Message, attempt: MessageAttempt, status: str) -> dict[str, Any]:
    return report_body(
        message.id,
        message.custom_id,
        status,
        attempt.channel,
        attempt.price,
        attempt.parts,
        attempt.error,
        attempt.code,
    )


def _report(session: Session, message: Message, attempt: MessageAttempt, status: str) -> None:
    hook = STATUS_HOOKS.get(message.method)
    if hook is not None:
        hook(session, message, attempt, status)
    reporter = REPORTERS.get(message.method)
    if reporter is not None:
        made = reporter(
            session,
            StatusReport(
                message.id,
                message.organization_id,
                attempt.step,
                attempt.channel,
                attempt.connection_id,
                status,
                attempt.code,
                attempt.error,
            ),
        )
        if made is not None:
            webhooks.emit_many(session, [made])
    if message.report_url:
        webhooks.emit(
            session,
            message.organization_id,
            message.report_url,
            "message.status",
            report_payload(message, attempt, status),
            ordering_key=message.id,  # the statuses of one message arrive in order
        )


def _reply(
    session: Session,
    message: Message,
    text: str,
    attachments: list[dict[str, Any]] | None = None,
) -> None:
    """An end user's answer to ``message``: its surface's hook, and its ``reply`` URL
    (``attachments``: the files it carried, as kept in the media storage; additive)."""
    hook = REPLY_HOOKS.get(message.method)
    if hook is not None:
        hook(session, message, text)
    if message.reply_url:
        webhooks.emit(
            session,
            message.organization_id,
            message.reply_url,
            "message.reply",
            {
                "id": message.id,
                "text": text,
                "date": utcnow().strftime("%Y-%m-%d %H:%M:%S"),
                "custom_id": message.custom_id,
                "attachments": attachments or [],
            },
            ordering_key=message.id,
        )


# Old names, for the modules that called them before they were public.
_finish_attempt = finish_attempt
_sent = sent
