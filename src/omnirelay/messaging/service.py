"""Accepting messages: resolve each step to a connection, price, debit, write the message
and its dispatch job in the caller's transaction. Nothing is sent from here."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.billing import repository as billing_repo
from omnirelay.billing import service as billing
from omnirelay.connections import repository as connections_repo
from omnirelay.connections.models import ChannelConnection
from omnirelay.errors import InvalidInput, NotFound
from omnirelay.messaging import errors as e
from omnirelay.messaging import repository as repo
from omnirelay.messaging.models import Message, MessageAttempt, NotifySettings
from omnirelay.messaging.segments import segment
from omnirelay.messaging.validation import CHANNELS, Draft, StepDraft
from omnirelay.phones import next_daylight, parse_phone, phone_timezone
from omnirelay.queue import enqueue
from omnirelay.templates import service as templates

DISPATCH = "messages.dispatch"
SENDER_REQUIRED = ("sms", "viber", "vk")


# --- settings -----------------------------------------------------------------------


def settings(session: Session, organization_id: str) -> NotifySettings:
    row = repo.get_settings(session, organization_id)
    if row is None:
        row = NotifySettings(
            organization_id=organization_id,
            daylight_start="09:00",
            daylight_end="20:00",
            default_route=[],
        )
        repo.add_settings(session, row)
    return row


def _parse_hhmm(value: str, name: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise InvalidInput("invalid_time", f"{name} must be HH:MM", field=name) from None


def update_settings(
    session: Session, organization_id: str, changes: dict[str, Any]
) -> NotifySettings:
    row = settings(session, organization_id)
    start = changes.get("daylight_start") or row.daylight_start
    end = changes.get("daylight_end") or row.daylight_end
    if _parse_hhmm(start, "daylight_start") >= _parse_hhmm(end, "daylight_end"):
        raise InvalidInput(
            "invalid_window", "daylight_start must be before daylight_end", field="daylight_end"
        )
    row.daylight_start, row.daylight_end = start, end
    route = changes.get("default_route")
    if route is not None:
        for i, step in enumerate(route):
            if step.get("channel") not in CHANNELS:
                raise InvalidInput(
                    "invalid_channel",
                    f"default_route[{i}].channel must be one of {', '.join(CHANNELS)}",
                    field=f"default_route[{i}].channel",
                )
        row.default_route = route
    session.flush()
    return row


# --- accepting ----------------------------------------------------------------------


@dataclass
class Resolved:
    draft: Draft
    steps: list[dict[str, Any]]
    price: int  # of the first step, debited now
    parts: int


class Connections:
    """The organization's connections by channel, read once per request."""

    def __init__(self, session: Session, organization_id: str) -> None:
        self.by_channel: dict[str, list[ChannelConnection]] = defaultdict(list)
        for row in connections_repo.list_for(session, organization_id):
            self.by_channel[row.channel].append(row)

    def pick(self, channel: str, sender: str | None, field: str) -> ChannelConnection:
        rows = self.by_channel.get(channel, [])
        if not rows:
            raise e.no_settings(channel)
        active = [c for c in rows if c.active]
        if not active:
            raise e.not_allowed(channel)
        if sender is None:
            if channel in SENDER_REQUIRED:
                raise e.no_field("group" if channel == "vk" else "sender")
            return active[0]
        for row in active:
            if sender in row.senders:
                return row
        raise e.bad_sender(field)

    def first_sender(self, channel: str) -> tuple[ChannelConnection, str | None] | None:
        active = [c for c in self.by_channel.get(channel, []) if c.active]
        if not active:
            return None
        return active[0], (active[0].senders[0] if active[0].senders else None)


def _parts(step: StepDraft) -> int:
    return segment(step.text or "").count if step.channel == "sms" else 1


def _simple_steps(
    session: Session, organization_id: str, draft: Draft, conns: Connections
) -> list[StepDraft]:
    base = draft.steps[0]
    route = settings(session, organization_id).default_route or [{"channel": "sms"}]
    steps: list[StepDraft] = []
    for entry in route:
        channel = entry["channel"]
        found = conns.first_sender(channel)
        if found is None:
            continue
        conn, default_sender = found
        sender = base.sender if base.sender in conn.senders else entry.get("sender")
        sender = sender or default_sender
        if channel in SENDER_REQUIRED and sender is None:
            continue
        ttl = base.ttl if base.ttl else int(entry.get("ttl", 300))
        steps.append(StepDraft(channel, base.phone, base.text, sender=sender, ttl=ttl))
    if not steps:
        raise e.no_settings(route[0]["channel"])
    return steps


def resolve(
    session: Session,
    organization_id: str,
    draft: Draft,
    conns: Connections,
    prices: dict[str, int],
) -> Resolved:
    """The database checks of a draft: connections, senders, templates; and its price."""
    if draft.simple:
        draft.steps = _simple_steps(session, organization_id, draft, conns)
    steps: list[dict[str, Any]] = []
    for i, step in enumerate(draft.steps):
        prefix = f"route[{i}]." if draft.method in ("send", "sendMixed") else ""
        field = prefix + ("group" if step.channel == "vk" else "sender")
        conn = conns.pick(step.channel, step.sender, field)
        if conn.templates_only and not templates.matches(
            session, organization_id, step.channel, step.text or ""
        ):
            raise e.no_template()
        parts = _parts(step)
        steps.append(
            {
                **step.as_dict(),
                "connection_id": conn.id,
                "provider": conn.provider,
                "parts": parts,
                "price": prices.get(step.channel, 0) * parts,
            }
        )
    return Resolved(draft, steps, steps[0]["price"], steps[0]["parts"])


def send_after(
    session: Session, organization_id: str, draft: Draft, phone: str, now: datetime
) -> datetime:
    base = max(draft.delivery_date or now, now)
    if not draft.daydelivery:
        return base
    return daylight(session, organization_id, phone, base)


def daylight(session: Session, organization_id: str, phone: str, at: datetime) -> datetime:
    """The first moment at or after ``at`` inside the organization's daylight window in
    the recipient's time zone."""
    row = settings(session, organization_id)
    tz = phone_timezone(parse_phone("+" + phone, None))
    return next_daylight(
        at, tz, _parse_hhmm(row.daylight_start, "start"), _parse_hhmm(row.daylight_end, "end")
    )


def _write(session: Session, organization_id: str, resolved: Resolved, now: datetime) -> Message:
    draft = resolved.draft
    first = resolved.steps[0]
    message = Message(
        id=str(uuid.uuid4()),
        organization_id=organization_id,
        custom_id=draft.custom_id,
        method=draft.method,
        phone=first["phone"],
        route=resolved.steps,
        report_url=draft.report,
        reply_url=draft.reply,
        daydelivery=draft.daydelivery,
        send_after=send_after(session, organization_id, draft, first["phone"], now),
        status="accepted",
        step=0,
        channel=first["channel"],
        price=resolved.price,
        parts=resolved.parts,
        created_at=now,
        updated_at=now,
    )
    repo.add(session, message)
    enqueue(
        session,
        DISPATCH,
        {"message_id": message.id, "step": 0},
        run_at=message.send_after,
        organization_id=organization_id,
    )
    return message


def accept(session: Session, organization_id: str, draft: Draft, now: datetime) -> Message:
    """One message. Raises SendError; the caller's transaction then writes nothing."""
    conns = Connections(session, organization_id)
    resolved = resolve(
        session, organization_id, draft, conns, billing.price_list(session, organization_id)
    )
    if draft.custom_id and repo.existing_custom_ids(session, organization_id, [draft.custom_id]):
        raise e.duplicate_custom_id()
    if not billing.debit(session, organization_id, resolved.price):
        raise e.no_funds()
    message = _write(session, organization_id, resolved, now)
    session.flush()  # the unique custom_id constraint decides between concurrent requests
    return message


@dataclass
class Outcome:
    message: Message | None = None
    error: e.SendError | None = None


def accept_many(
    session: Session,
    organization_id: str,
    drafts: Sequence[Draft | e.SendError],
    now: datetime,
) -> list[Outcome]:
    """sendMixed: each element on its own; in order, until the balance runs out."""
    conns = Connections(session, organization_id)
    prices = billing.price_list(session, organization_id)
    wanted = [d.custom_id for d in drafts if isinstance(d, Draft) and d.custom_id]
    taken = repo.existing_custom_ids(session, organization_id, wanted)
    balance = billing.balance(session, organization_id)
    locked = billing_repo.lock_balance(session, organization_id)
    available = locked.amount if locked is not None else balance.amount
    spent = 0
    out: list[Outcome] = []
    for draft in drafts:
        if isinstance(draft, e.SendError):
            out.append(Outcome(error=draft))
            continue
        try:
            resolved = resolve(session, organization_id, draft, conns, prices)
            if draft.custom_id in taken:
                raise e.duplicate_custom_id()
            if spent + resolved.price > available:
                raise e.no_funds()
        except e.SendError as exc:
            out.append(Outcome(error=exc))
            continue
        if draft.custom_id:
            taken.add(draft.custom_id)
        spent += resolved.price
        out.append(Outcome(message=_write(session, organization_id, resolved, now)))
    if spent and not billing_repo.debit(session, organization_id, spent):
        raise e.no_funds()  # only if the lock did not hold; the whole request is refused
    session.flush()
    return out


# --- lookup -------------------------------------------------------------------------


def get(session: Session, organization_id: str, message_id: str) -> Message:
    row = repo.get_for(session, organization_id, message_id)
    if row is None:
        raise NotFound("message_not_found", f"no message {message_id}")
    return row


def attempts(session: Session, message: Message) -> Sequence[MessageAttempt]:
    return repo.attempts(session, message.id)
