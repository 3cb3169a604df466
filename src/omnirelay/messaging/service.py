"""Accepting messages: resolve each step to a connection, price, debit, write the message
(due to be dispatched at its ``due_at``) in the caller's transaction. Nothing is sent from
here.

One core, :func:`accept_bulk`, serves a single send, sendMixed and the group commit of
concurrent requests (messaging/batcher.py): per organization it reads connections and
prices once, locks and debits the balance once, and writes all messages with one INSERT."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.billing import service as billing
from omnirelay.blocklist import service as blocklist
from omnirelay.channels.base import get_adapter
from omnirelay.errors import InvalidInput, NotFound
from omnirelay.messaging import accept_insert
from omnirelay.messaging import errors as e
from omnirelay.messaging import repository as repo
from omnirelay.messaging.models import Message, MessageAttempt, NotifySettings
from omnirelay.messaging.repository import AcceptConnection
from omnirelay.messaging.segments import segment
from omnirelay.messaging.validation import CHANNELS, Draft, StepDraft
from omnirelay.phones import next_daylight, parse_phone, phone_timezone
from omnirelay.templates import repository as templates_repo
from omnirelay.templates import service as templates

# The dispatch drain's wake-up (messaging/dispatcher.py): a message became due.
DISPATCH_CHANNEL = "omnirelay_dispatch"
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
    """The organization's connections by channel, read once per transaction."""

    def __init__(self, session: Session, organization_id: str) -> None:
        self.by_channel: dict[str, list[AcceptConnection]] = defaultdict(list)
        for row in repo.connections_for_accept(session, organization_id):
            self.by_channel[row.channel].append(row)

    def pick(self, channel: str, sender: str | None, field: str) -> AcceptConnection:
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

    def chosen(self, channel: str, connection_id: int) -> AcceptConnection:
        """The connection a caller chose by id (already checked against the caller's
        organization): still live and active now, in the same transaction."""
        for row in self.by_channel.get(channel, []):
            if row.id == connection_id:
                if not row.active:
                    raise e.not_allowed(channel)
                return row
        raise e.no_settings(channel)

    def first_sender(self, channel: str) -> tuple[AcceptConnection, str | None] | None:
        active = [c for c in self.by_channel.get(channel, []) if c.active]
        if not active:
            return None
        return active[0], (active[0].senders[0] if active[0].senders else None)


class OrgView:
    """What accepting reads of one organization, once per transaction however many
    messages it accepts: connections and prices; settings and approved templates only
    when a draft needs them."""

    def __init__(self, session: Session, organization_id: str, *, persist: bool = True) -> None:
        self.session = session
        self.organization_id = organization_id
        self.persist = persist  # False: a read session (settings missing are not created)
        self.conns = Connections(session, organization_id)
        self.prices = billing.default_prices() | repo.own_prices(session, organization_id)
        self._settings: NotifySettings | None = None
        self._templates: dict[str, list[re.Pattern[str]]] = {}
        self._recipients: dict[tuple[str, str], str | None] = {}

    def recipient(
        self, provider: str, phone: str, known: dict[str, Any] | None = None
    ) -> str | None:
        """The id a messenger provider addresses ``phone`` by (the contact's vkId,
        viberId or telegramId: ``recipient_field`` of the adapter), or None; read once
        per phone, in the accept transaction (an adapter never reads the database).
        ``known``: the ids a caller already has (a notification's contact: ``extra.to``)."""
        wire = getattr(get_adapter(provider), "recipient_field", None)
        if wire is None:
            return None
        if known and known.get(wire) not in (None, ""):
            return str(known[wire])
        if known and wire == "webchatId" and known.get("id") not in (None, ""):
            return str(known["id"])  # seed 004 calls the web chat's id field ``id``
        key = (wire, phone)
        if key not in self._recipients:
            from omnirelay.messengers import service as messengers

            found = messengers.recipients(self.session, self.organization_id, wire, [phone])
            self._recipients[key] = found.get(phone)
        return self._recipients[key]

    @property
    def settings(self) -> NotifySettings:
        if self._settings is None:
            if self.persist:
                self._settings = settings(self.session, self.organization_id)
            else:  # the defaults that settings() would write
                self._settings = repo.get_settings(
                    self.session, self.organization_id
                ) or NotifySettings(
                    organization_id=self.organization_id,
                    daylight_start="09:00",
                    daylight_end="20:00",
                    default_route=[],
                )
        return self._settings

    def matches_template(self, channel: str, text: str) -> bool:
        patterns = self._templates.get(channel)
        if patterns is None:
            rows = templates_repo.approved_for(self.session, self.organization_id, channel)
            patterns = self._templates[channel] = [templates.pattern(t.text) for t in rows]
        return any(p.fullmatch(text) for p in patterns)


def _parts(step: StepDraft) -> int:
    return segment(step.text or "").count if step.channel == "sms" else 1


def _simple_steps(view: OrgView, draft: Draft) -> list[StepDraft]:
    base = draft.steps[0]
    route = view.settings.default_route or [{"channel": "sms"}]
    steps: list[StepDraft] = []
    for entry in route:
        channel = entry["channel"]
        found = view.conns.first_sender(channel)
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


def resolve(view: OrgView, draft: Draft) -> Resolved:
    """The database checks of a draft: connections, senders, templates; and its price.
    The draft is left as it is (a batch may be resolved again, item by item)."""
    drafted = _simple_steps(view, draft) if draft.simple else draft.steps
    steps: list[dict[str, Any]] = []
    for i, step in enumerate(drafted):
        prefix = f"route[{i}]." if draft.method in ("send", "sendMixed") else ""
        field = prefix + ("group" if step.channel == "vk" else "sender")
        if step.connection_id is not None:
            conn = view.conns.chosen(step.channel, step.connection_id)
        else:
            conn = view.conns.pick(step.channel, step.sender, field)
        if conn.templates_only and not view.matches_template(step.channel, step.text or ""):
            raise e.no_template()
        parts = _parts(step)
        row = {
            **step.as_dict(),
            "connection_id": conn.id,
            "provider": conn.provider,
            "parts": parts,
            "price": view.prices.get(step.channel, 0) * parts,
        }
        known = (step.extra or {}).get("to")
        to = view.recipient(conn.provider, step.phone, known if isinstance(known, dict) else None)
        if to is not None:  # a messenger's own id of the person (channels/vk.py, ...)
            row["extra"] = {**(step.extra or {}), "recipient": to}
        steps.append(row)
    return Resolved(draft, steps, steps[0]["price"], steps[0]["parts"])


def daylight(session: Session, organization_id: str, phone: str, at: datetime) -> datetime:
    """The first moment at or after ``at`` inside the organization's daylight window in
    the recipient's time zone."""
    return _daylight(settings(session, organization_id), phone, at)


def _daylight(row: NotifySettings, phone: str, at: datetime) -> datetime:
    # An email step may have no phone: its daylight is UTC's.
    tz = phone_timezone(parse_phone("+" + phone, None)) if phone else ZoneInfo("UTC")
    return next_daylight(
        at, tz, _parse_hhmm(row.daylight_start, "start"), _parse_hhmm(row.daylight_end, "end")
    )


def _row(view: OrgView, resolved: Resolved, now: datetime) -> dict[str, Any]:
    """The message as an INSERT row; every row has the same keys (one executemany)."""
    draft = resolved.draft
    first = resolved.steps[0]
    send_after = max(draft.delivery_date or now, now)
    if draft.daydelivery:
        send_after = _daylight(view.settings, first["phone"], send_after)
    return {
        "id": str(uuid.uuid4()),
        "organization_id": view.organization_id,
        "custom_id": draft.custom_id,
        "method": draft.method,
        "phone": first["phone"],
        "route": resolved.steps,
        "report_url": draft.report,
        "reply_url": draft.reply,
        "daydelivery": draft.daydelivery,
        "send_after": send_after,
        "status": "accepted",
        "step": 0,
        "channel": first["channel"],
        "price": resolved.price,
        "parts": resolved.parts,
        "created_at": now,
        "updated_at": now,
        "due_at": send_after,
        "tries": 0,
    }


@dataclass
class Outcome:
    id: str | None = None  # of the accepted message
    error: e.SendError | None = None


Item = tuple[str, "Draft | e.SendError"]  # (organization id, draft or its parse error)


def accept_bulk(session: Session, items: Sequence[Item], now: datetime) -> list[Outcome]:
    """Accept drafts of any organizations in the caller's transaction, one outcome per
    item in order. Each item stands alone: a refused one writes nothing and does not
    touch the others; per organization, in order, until its balance runs out.

    Accepting transactions of one organization queue on its balance row, locked before
    custom_ids are checked; a writer that does not take the lock may still insert a
    custom_id between check and INSERT: IntegrityError, and the caller decides (roll
    back; retry items one by one)."""
    out, batches = prepare(session, items, now)
    write(session, batches, out)
    return out


@dataclass
class OrgBatch:
    """One organization's drafts of a batch, resolved and priced, each with its INSERT
    row ready: what :func:`write` still has to decide under the lock (funds, custom_ids)."""

    organization_id: str
    # (item index, resolved draft, INSERT row, the row's driver values)
    rows: list[tuple[int, Resolved, dict[str, Any], accept_insert.Params]]


def prepare(
    session: Session, items: Sequence[Item], now: datetime, *, persist: bool = True
) -> tuple[list[Outcome], list[OrgBatch]]:
    """Everything of accepting that reads only: connections, prices, senders, templates,
    the block list, the messenger ids, the rows. With ``persist=False`` ``session`` may be
    a read session (``Database.read()``: on SQLite it does not take the write lock), so
    that the group commit holds the lock only for :func:`write` (ADR 41). The outcomes
    carry the refusals found so far; ids come with :func:`write`."""
    out = [Outcome() for _ in items]
    by_org: dict[str, list[tuple[int, Draft]]] = defaultdict(list)
    for i, (organization_id, draft) in enumerate(items):
        if isinstance(draft, e.SendError):
            out[i].error = draft
        else:
            by_org[organization_id].append((i, draft))
    batches: list[OrgBatch] = []
    # Balance rows are locked in one order in every transaction: no deadlock between two.
    for organization_id in sorted(by_org):
        view = OrgView(session, organization_id, persist=persist)
        batch = _prepare_org(session, view, by_org[organization_id], now, out)
        if batch.rows:
            batches.append(batch)
    return out, batches


def write(session: Session, batches: Sequence[OrgBatch], out: list[Outcome]) -> None:
    """The writes of prepared batches, in the caller's (write) transaction: per
    organization the balance locked, custom_ids checked, one debit; then one INSERT for
    every message and one wake-up of the dispatch drain."""
    rows: list[dict[str, Any]] = []
    params: list[accept_insert.Params] = []
    for batch in batches:
        _write_org(session, batch, out, rows, params)
    if rows:
        # The message is its own dispatch job: its due_at (ADR 18). One wake-up for the lot.
        accept_insert.insert_prepared(session, rows, params)
        wakeup.notify(session, DISPATCH_CHANNEL)


def _prepare_org(
    session: Session,
    view: OrgView,
    drafts: list[tuple[int, Draft]],
    now: datetime,
    out: list[Outcome],
) -> OrgBatch:
    batch = OrgBatch(view.organization_id, [])
    dialect = session.get_bind().dialect
    # The block list (1019): one query for every number of the batch, not one per message.
    blocked = blocklist.blocked_phones(
        session, view.organization_id, {s.phone for _, d in drafts for s in d.steps}
    )
    for i, draft in drafts:
        if blocked and any(s.phone in blocked for s in draft.steps):
            out[i].error = e.blocked_phone()
            continue
        try:
            resolved = resolve(view, draft)
        except e.SendError as exc:
            out[i].error = exc
            continue
        row = _row(view, resolved, now)
        # The driver's values now, not under the write lock (messaging/accept_insert.py).
        batch.rows.append(
            (i, resolved, row, accept_insert.prepared(dialect, list(row)).params(row))
        )
    return batch


def _write_org(
    session: Session,
    batch: OrgBatch,
    out: list[Outcome],
    rows: list[dict[str, Any]],
    params: list[accept_insert.Params],
) -> None:
    organization_id = batch.organization_id
    now = batch.rows[0][2]["created_at"]
    # Lock first, then look for taken custom_ids: a concurrent accept of this
    # organization holds the same lock until it commits, so its custom_ids are seen
    # (PostgreSQL's READ COMMITTED reads what committed before each statement).
    available = repo.lock_balance_amount(session, organization_id)
    if available is None:
        available = billing.open_account(session, organization_id).amount
    wanted = [r.draft.custom_id for _, r, _, _ in batch.rows if r.draft.custom_id]
    taken = repo.existing_custom_ids(session, organization_id, wanted)
    spent = 0
    for i, r, row, values in batch.rows:
        custom_id = r.draft.custom_id
        if custom_id is not None and custom_id in taken:
            out[i].error = e.duplicate_custom_id()
        elif spent + r.price > available:
            out[i].error = e.no_funds()
        else:
            if custom_id is not None:
                taken.add(custom_id)
            spent += r.price
            rows.append(row)
            params.append(values)
            out[i].id = row["id"]
    if spent and not repo.debit(session, organization_id, spent, now):
        raise e.no_funds()  # only if the lock did not hold; the caller retries one by one


def accept(session: Session, organization_id: str, draft: Draft, now: datetime) -> str:
    """One message in the caller's transaction; its id. Raises SendError (nothing is
    then written), or IntegrityError when a concurrent request took its custom_id."""
    outcome = accept_bulk(session, [(organization_id, draft)], now)[0]
    if outcome.error is not None:
        raise outcome.error
    assert outcome.id is not None
    return outcome.id


def accept_many(
    session: Session,
    organization_id: str,
    drafts: Sequence[Draft | e.SendError],
    now: datetime,
) -> list[Outcome]:
    """sendMixed: each element on its own; in order, until the balance runs out."""
    return accept_bulk(session, [(organization_id, d) for d in drafts], now)


def record_unsendable(
    session: Session,
    organization_id: str,
    *,
    method: str,
    phone: str,
    channel: str,
    error: str,
    now: datetime,
) -> str:
    """A message for which no route step could be made (a notification whose contact has
    none of the ids its channels need): written final with status ``error``, so that its
    id answers and reads like any other message; nothing to dispatch, nothing debited."""
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "organization_id": organization_id,
        "custom_id": None,
        "method": method,
        "phone": phone,
        "route": [],
        "report_url": None,
        "reply_url": None,
        "daydelivery": False,
        "send_after": now,
        "status": "error",
        "step": 0,
        "channel": channel,
        "error": error,
        "price": 0,
        "parts": 0,
        "created_at": now,
        "updated_at": now,
        "final_at": now,
        "due_at": None,
        "tries": 0,
    }
    repo.insert_many(session, [row])
    return str(row["id"])


# --- lookup -------------------------------------------------------------------------


def get(session: Session, organization_id: str, message_id: str) -> Message:
    row = repo.get_for(session, organization_id, message_id)
    if row is None:
        raise NotFound("message_not_found", f"no message {message_id}")
    return row


def attempts(session: Session, message: Message) -> Sequence[MessageAttempt]:
    return repo.attempts(session, message.id)
