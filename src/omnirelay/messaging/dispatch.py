"""Dispatch as a drain (ADR 18): the message is its own job.

A message is due when its ``due_at`` has come. The drain engine (omnirelay/drain.py)
claims a batch of due messages in one statement and, in the same short transaction,
decides for each what needs no provider: held back by a gate or the daylight window,
handed to a session owner (SMPP), failed for a missing connection or funds. What is left
goes to its adapter with no transaction open; then one transaction records the whole
batch's answers: the attempt, ``sent`` with its report and ttl watch, a retry later, or
the step's failure and the handover to the next step. A batch lost with its process is
claimed again when its lease passes (at-least-once).
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.billing import repository as billing_repo
from omnirelay.billing import service as billing
from omnirelay.channels.base import (
    Outbound,
    PermanentError,
    RetriableError,
    SendResult,
    get_adapter,
)
from omnirelay.config import get_settings
from omnirelay.connections import repository as connections_repo
from omnirelay.db import utcnow
from omnirelay.messaging import bulk_repository as bulk
from omnirelay.messaging import claim_repository as claims
from omnirelay.messaging import pipeline
from omnirelay.messaging import repository as repo
from omnirelay.messaging.claim import SANDBOXES, FastClaim, Send
from omnirelay.messaging.models import Message, MessageAttempt
from omnirelay.messaging.service import DISPATCH_CHANNEL, daylight

log = logging.getLogger(__name__)

MAX_SEND_TRIES = pipeline.MAX_SEND_TRIES
RETRY_BASE = 2.0  # seconds before the second try of a step; doubles, with jitter
RETRY_MAX = 300.0


@dataclass
class Batch:
    claimed: int
    sends: list[Send]


Outcome = SendResult | RetriableError | PermanentError | Exception


def retry_delay(tries: int, hint: float | None) -> float:
    if hint is not None:
        return max(0.0, hint)
    delay = min(RETRY_MAX, RETRY_BASE * 2.0 ** max(0, tries - 1))
    return delay / 2 + random.uniform(0, delay / 2)


class DispatchStep:
    name = "dispatch"
    channel: str | None = DISPATCH_CHANNEL

    def __init__(self, *, lease_seconds: float = 120.0, concurrency: int = 32) -> None:
        self.lease_seconds = lease_seconds
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None

    # --- claim: one statement, then what needs no provider ----------------------------

    def claim(self, session: Session, claim_id: str, limit: int, now: datetime) -> Batch | None:
        until = now + timedelta(seconds=self.lease_seconds)
        rows = bulk.claim_due_rows(session, claim_id, limit, now, until)
        if not rows:
            return None
        rows.sort(key=lambda r: (r.due_at or r.created_at, r.id))  # due order
        connections = claims.connections(session, _connection_ids(rows))
        # The common first step is decided from the claim's own RETURNING, set-based; a
        # message that needs writes of its own (a gate, a handover's daylight or debit, a
        # missing connection) goes through the ORM in a savepoint of its own.
        fast = FastClaim(now, connections)
        slow: list[str] = []
        for row in rows:
            try:
                taken = fast.take(row)
            except Exception:  # a malformed route: the ORM path ends the step (or retries)
                log.exception("dispatch of %s: the fast claim failed", row.id)
                taken = False
            if not taken:
                slow.append(row.id)
        claims.release(session, fast.released)
        claims.queue_attempts(session, fast.queued, fast.queued_messages)
        if fast.queued:
            from omnirelay.messaging.sessions import NOTIFY_CHANNEL

            wakeup.notify(session, NOTIFY_CHANNEL)  # once for the batch
        sends = fast.sends
        if slow:
            cache: dict[int, Any] = {}
            for message in bulk.claimed(session, slow):
                try:
                    with session.begin_nested():
                        send = self._prepare(session, message, now, cache)
                except Exception:
                    log.exception("dispatch of %s: preparing failed", message.id)
                    self._give_up_or_later(session, message, None, "preparing failed", now)
                    continue
                if send is not None:
                    sends.append(send)
        return Batch(len(rows), sends)

    def _prepare(
        self, session: Session, message: Message, now: datetime, connections: dict[int, Any]
    ) -> Send | None:
        if message.final_at is not None:
            _release(message, None)
            return None
        index = message.step
        step = message.route[index]
        gate = pipeline.DISPATCH_GATES.get(message.method)
        later = gate(session, message, step) if gate is not None else None
        if later is not None:
            _release(message, later)
            return None
        if index > 0 and message.daydelivery:
            # A handover at night waits for the recipient's morning, as the first step did.
            at = daylight(session, message.organization_id, step["phone"], now)
            if at > now + timedelta(seconds=1):
                _release(message, at)
                return None
        attempt = MessageAttempt(
            message_id=message.id,
            organization_id=message.organization_id,
            step=index,
            channel=step["channel"],
            connection_id=int(step["connection_id"]),
            provider=step.get("provider", "sandbox"),
            sender=step.get("sender"),
            status="accepted",
            price=int(step.get("price", 0)),
            parts=int(step.get("parts", 1)),
            created_at=now,
            status_at=now,
        )
        if attempt.connection_id not in connections:
            connections[attempt.connection_id] = connections_repo.by_id_any(
                session, attempt.connection_id
            )
        connection = connections[attempt.connection_id]
        if connection is None or connection.deleted_at is not None or not connection.active:
            _release(message, None)
            pipeline.finish_attempt(
                session, message, attempt, "error", 1016, "Not found channel settings"
            )
            return None
        adapter = get_adapter(connection.provider)
        if adapter is None:
            _release(message, None)
            pipeline.finish_attempt(
                session, message, attempt, "error", 1016, "Provider is not available"
            )
            return None
        debited = 0
        if index > 0:
            if not billing.debit(session, message.organization_id, attempt.price):
                _release(message, None)
                pipeline.finish_attempt(
                    session, message, attempt, "error", 1015, "Balance error - not enough funds"
                )
                return None
            debited = attempt.price
        else:
            attempt.price = message.price  # debited when the message was accepted
        if getattr(adapter, "session_based", False):
            # A long-lived session (SMPP) sends it: queue the attempt for the session owner.
            from omnirelay.messaging import sessions

            _release(message, None)
            sessions.queue_attempt(session, message, attempt, now)
            return None
        settings = dict(connection.settings)
        override = get_settings().sandbox_report_delay
        if connection.provider in SANDBOXES and override is not None:
            settings.update(report_delay=override, read_delay=override, reply_delay=override)
        outbound = Outbound(
            message_id=message.id,
            channel=step["channel"],
            phone=step["phone"],
            sender=step.get("sender"),
            text=step.get("text"),
            image=step.get("image"),
            action=step.get("action"),
            ttl=int(step["ttl"]),
            settings=settings,
            try_number=message.tries + 1,
            extra=step.get("extra") or {},
        )
        columns = {c: getattr(attempt, c) for c in _ATTEMPT_COLUMNS}
        return Send(
            message.id,
            index,
            columns,
            adapter,
            outbound,
            debited,
            message.method,
            message.organization_id,
            message.custom_id,
            message.report_url,
        )

    @staticmethod
    def _later(message: Message, delay: float, now: datetime, *, tried: bool) -> None:
        if tried:
            message.tries += 1
        _release(message, now + timedelta(seconds=delay))

    def _give_up_or_later(
        self,
        session: Session,
        message: Message,
        attempt: MessageAttempt | None,
        reason: str,
        now: datetime,
    ) -> None:
        """A failure of ours (not the provider's): try again later, a bounded number of
        times, then end the step with an error (never a message left without an end)."""
        try:
            with session.begin_nested():
                if message.tries + 1 < MAX_SEND_TRIES:
                    self._later(message, retry_delay(message.tries + 1, None), now, tried=True)
                    return
                _release(message, None)
                if attempt is None:
                    attempt = _attempt_of(message, now)
                pipeline.finish_attempt(session, message, attempt, "error", 1001, reason)
        except Exception:
            log.exception("dispatch of %s: giving up failed too", message.id)

    def size(self, batch: Batch) -> int:
        return batch.claimed

    # --- io: the adapters, no transaction open ----------------------------------------

    def io(self, batch: Batch) -> list[Outcome] | None:
        if not batch.sends:
            return None  # the claim decided everything
        # The sandbox answers from memory; real providers are network calls (blocking
        # clients today), run side by side on a bounded pool, a pool-full at a time, and
        # only while half the lease is left: what is not sent by then is released
        # untried, so no send can outlive its claim (and be made twice).
        remote = [i for i, s in enumerate(batch.sends) if s.adapter.name not in SANDBOXES]
        outcomes: list[Outcome] = [
            _send(s) if s.adapter.name in SANDBOXES else NotTried() for s in batch.sends
        ]
        if remote:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="send")
            deadline = time.monotonic() + self.lease_seconds / 2
            for start in range(0, len(remote), self.concurrency):
                if time.monotonic() > deadline:
                    break
                chunk = remote[start : start + self.concurrency]
                sends = [batch.sends[i] for i in chunk]
                for i, outcome in zip(chunk, self._pool.map(_send, sends), strict=True):
                    outcomes[i] = outcome
        return outcomes

    # --- record: the whole batch in one transaction -----------------------------------

    def record(self, session: Session, batch: Batch, outcomes: Any, claim_id: str) -> None:
        now = utcnow()
        if not batch.sends:
            return
        mine = bulk.still_claimed(session, [s.message_id for s in batch.sends], claim_id)
        plain: list[pipeline.SentRow] = []
        for send, outcome in zip(batch.sends, outcomes, strict=True):
            if send.message_id not in mine:
                # The lease passed and another process took the message over: its
                # answer wins (this send may have gone twice: at-least-once), and its
                # claim debited the step again: this claim's debit goes back.
                log.warning("dispatch of %s: lease lost, outcome dropped", send.message_id)
                if send.debited:
                    billing_repo.credit(session, send.organization_id, send.debited)
            elif isinstance(outcome, SendResult) and send.method not in pipeline.STATUS_HOOKS:
                plain.append(
                    pipeline.SentRow(
                        send.message_id,
                        send.organization_id,
                        send.custom_id,
                        send.report_url,
                        send.outbound.ttl,
                        send.attempt,
                        outcome,
                        send.method,
                    )
                )
            else:  # a failure, a retry, or a surface's own status hook: one by one
                try:
                    with session.begin_nested():
                        self._record(session, send, outcome, now)
                except Exception:
                    log.exception("dispatch of %s: recording failed", send.message_id)
                    message = repo.lock(session, send.message_id)
                    if message is not None:
                        if send.debited:
                            billing_repo.credit(session, send.organization_id, send.debited)
                        self._give_up_or_later(session, message, None, "recording failed", now)
        if plain:  # the common case, set-based
            pipeline.sent_many(session, plain, now)
        for send, outcome in zip(batch.sends, outcomes, strict=True):
            if isinstance(outcome, SendResult) and send.message_id in mine:
                for channel, payload in outcome.notices:  # heard after this commit
                    wakeup.announce(session, channel, payload)

    def _record(self, session: Session, send: Send, outcome: Outcome, now: datetime) -> None:
        message = repo.lock(session, send.message_id)
        if message is None or message.step != send.step:
            return
        if isinstance(outcome, NotTried):  # the batch ran out of its lease's time
            if send.debited:
                billing_repo.credit(session, message.organization_id, send.debited)
            _release(message, now)
            return
        attempt = MessageAttempt(**send.attempt)
        if isinstance(outcome, SendResult):
            _release(message, None)
            pipeline.sent(session, message, attempt, outcome, now)
            return
        if isinstance(outcome, PermanentError):
            _release(message, None)
            pipeline.finish_attempt(
                session, message, attempt, outcome.status, outcome.code, str(outcome)
            )
            return
        hint = outcome.delay if isinstance(outcome, RetriableError) else None
        if not isinstance(outcome, RetriableError):
            log.warning("dispatch of %s: adapter failed: %r", send.message_id, outcome)
        if send.debited:  # this try is not charged: the next one takes it again
            billing_repo.credit(session, message.organization_id, send.debited)
        if message.tries + 1 < MAX_SEND_TRIES:
            self._later(message, retry_delay(message.tries + 1, hint), now, tried=True)
            return
        _release(message, None)
        pipeline.finish_attempt(
            session, message, attempt, "error", 1001, f"Provider unavailable: {outcome}"
        )

    def next_due(self, session: Session) -> datetime | None:
        return bulk.next_due(session, utcnow())


def _connection_ids(rows: list[Any]) -> set[int]:
    ids: set[int] = set()
    for row in rows:
        try:
            if row.final_at is None:
                ids.add(int(row.route[row.step]["connection_id"]))
        except (IndexError, KeyError, TypeError, ValueError):
            pass  # the message's own claim fails it, alone
    return ids


class NotTried(Exception):
    """The outcome of a send the batch had no time left for: released, due at once."""


def _attempt_of(message: Message, now: datetime) -> MessageAttempt:
    step = message.route[message.step] if message.step < len(message.route) else {}
    return MessageAttempt(
        message_id=message.id,
        organization_id=message.organization_id,
        step=message.step,
        channel=step.get("channel", message.channel),
        connection_id=int(step.get("connection_id", 0)),
        provider=step.get("provider", "sandbox"),
        sender=step.get("sender"),
        status="accepted",
        price=0,
        parts=int(step.get("parts", 1)),
        created_at=now,
        status_at=now,
    )


_ATTEMPT_COLUMNS = (
    "message_id",
    "organization_id",
    "step",
    "channel",
    "connection_id",
    "provider",
    "sender",
    "status",
    "price",
    "parts",
    "created_at",
    "status_at",
)


def _send(send: Send) -> Outcome:
    try:
        return send.adapter.send(send.outbound)
    except (RetriableError, PermanentError) as exc:
        return exc
    except Exception as exc:  # a bug or a garbage answer: retried, then the step fails
        return exc


def _release(message: Message, due_at: datetime | None) -> None:
    """The claim ends: due again at ``due_at`` (None: nothing to send until a handover)."""
    message.due_at = due_at
    message.claimed_by = None
    message.lease_until = None
