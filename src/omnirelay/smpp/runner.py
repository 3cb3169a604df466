"""One SMPP connection owned by this process: its session(s), fed from the attempts
queued for it, and the answers written back in batches (one transaction per flush)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omnirelay.channels.base import ProviderEvent
from omnirelay.channels.smpp import receipts
from omnirelay.channels.smpp.config import SmppConfig
from omnirelay.channels.smpp.encoding import decode_text, parts
from omnirelay.channels.smpp.session import Inbound, SmppSession, Submission
from omnirelay.connections.models import ConnectionStatus
from omnirelay.db import Database, utcnow
from omnirelay.messaging import claim_repository as claims
from omnirelay.messaging import pipeline, sessions, statuses
from omnirelay.messaging import repository as messages
from omnirelay.messaging.models import ProviderPart
from omnirelay.smpp import repository as repo

log = logging.getLogger(__name__)

# command_status -> (status, seed 001 code) for refusals; anything else: rejected 1000.
REFUSALS = {
    0x0000000A: ("rejected", 1011),  # invalid source address: the sender ID
    0x0000000B: ("rejected", 1010),  # invalid destination address
    0x00000001: ("rejected", 1012),  # invalid message length
    0x00000008: ("error", 1001),  # system error (after the retries)
}


@dataclass
class _Pending:
    expected: int
    ids: dict[int, str] = field(default_factory=dict)


class ConnectionRunner:
    def __init__(
        self,
        db: Database,
        connection_id: int,
        organization_id: str,
        config: SmppConfig,
        owner: str,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        # Called when a session hands over the first answer of a batch: an idle owner's
        # loop then writes it now, not at its next poll (ADR 34).
        self._wake = wake or (lambda: None)
        self.connection_id = connection_id
        self.organization_id = organization_id
        self.config = config
        self.owner = owner
        self._lock = threading.Lock()
        self._submitted: list[tuple[Submission, str]] = []
        self._refused: list[tuple[Submission, int, str]] = []
        self._received: list[tuple[Inbound, Callable[[], None]]] = []
        self._pending: dict[int, _Pending] = {}
        self.link_state: str = "starting"
        self.last_error: str | None = None
        self._states: dict[str, str] = {}
        name = f"smpp-{connection_id}"
        if config.bind == "transceiver":
            self.sessions = [SmppSession(config, self, role="transceiver", name=name)]
        else:
            self.sessions = [
                SmppSession(config, self, role="transmitter", name=f"{name}-tx"),
                SmppSession(config, self, role="receiver", name=f"{name}-rx"),
            ]
        self._last_status = 0.0
        self._last_sent = 0
        self._rate = 0.0

    # --- SessionEvents (called on the sessions' threads) -------------------------------

    def submitted(self, sub: Submission, message_id: str) -> None:
        with self._lock:
            first = not (self._submitted or self._refused or self._received)
            self._submitted.append((sub, message_id))
        if first:
            self._wake()

    def refused(self, sub: Submission, status: int, reason: str) -> None:
        with self._lock:
            first = not (self._submitted or self._refused or self._received)
            self._refused.append((sub, status, reason))
        if first:
            self._wake()

    def received(self, inbound: Inbound, ack: Callable[[], None]) -> None:
        with self._lock:
            first = not (self._submitted or self._refused or self._received)
            self._received.append((inbound, ack))
        if first:
            self._wake()

    def state(self, state: str, error: str | None) -> None:
        with self._lock:
            self._states[threading.current_thread().name] = state
            if error:
                self.last_error = error
            states = set(self._states.values())
            if states == {"bound"}:
                self.link_state = "bound"
            else:
                self.link_state = "down" if "down" in states else sorted(states)[0]

    # --- the owner's loop ---------------------------------------------------------------

    def start(self) -> None:
        with self.db.transaction() as session:
            requeued = messages.requeue_submitting(session, self.connection_id)
        if requeued:
            log.info(
                "connection %s: %d attempts in flight before are sent again",
                self.connection_id,
                requeued,
            )
        for s in self.sessions:
            s.start()

    def stop(self) -> None:
        for s in self.sessions:
            s.stop()
        self.flush()
        with self.db.transaction() as session:
            messages.requeue_submitting(session, self.connection_id)
        self._write_status(force=True, state="stopped")

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._submitted or self._refused or self._received)

    def step(self) -> None:
        self.flush()
        self.feed()
        self._write_status()

    def feed(self) -> None:
        tx = self.sessions[0]
        if self.link_state != "bound" or tx.backlog >= self.config.window * 4:
            return
        with self.db.transaction() as session:
            claimed = claims.claim_queued(session, self.connection_id, self.config.window * 8)
            data = sessions.submission_data(session, claimed)
            ready: list[int] = []
            batch: list[Submission] = []
            for attempt, step, done in data:
                chunks = parts(
                    step.get("text") or "", concat=self.config.concat, reference=attempt.id
                )
                todo = [(n, p) for n, p in enumerate(chunks, start=1) if n not in done]
                self._pending[attempt.id] = _Pending(len(chunks))
                if not todo:
                    ready.append(attempt.id)  # every part was answered before a restart
                for number, part in todo:
                    batch.append(
                        Submission(
                            attempt.id, number, step["phone"], step.get("sender") or "", part
                        )
                    )
            for attempt_id in ready:
                first = messages.parts_of(session, attempt_id)
                sessions.mark_sent(
                    session, attempt_id, first[0].provider_message_id if first else ""
                )
        if batch:
            tx.submit(batch)

    def flush(self) -> None:
        with self._lock:
            submitted, self._submitted = self._submitted, []
            refused, self._refused = self._refused, []
            received, self._received = self._received, []
        if not (submitted or refused or received):
            return
        try:
            self._commit(submitted, refused, received)
        except Exception:
            # One bad item must not take the batch with it: apply them one by one.
            log.exception("connection %s: batch failed; applying one by one", self.connection_id)
            for item in submitted:
                self._try(self._commit, [item], [], [])
            for ref in refused:
                self._try(self._commit, [], [ref], [])
            for rec in received:
                self._try(self._commit, [], [], [rec])

    def _try(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            # A receipt not acknowledged is sent again by the SMSC; an answer lost here
            # leaves the attempt to its ttl (and to a new owner, which sends it again).
            log.exception("connection %s: dropped one SMPP result", self.connection_id)

    def _commit(
        self,
        submitted: list[tuple[Submission, str]],
        refused: list[tuple[Submission, int, str]],
        received: list[tuple[Inbound, Callable[[], None]]],
    ) -> None:
        complete: list[tuple[int, str]] = []
        with self.db.transaction() as session:
            rows: list[ProviderPart] = []
            got: dict[int, dict[int, str]] = {}
            for sub, message_id in submitted:
                pending = self._pending.setdefault(sub.key, _Pending(1))
                ids = got.setdefault(sub.key, dict(pending.ids))
                ids[sub.part_no] = message_id
                if pending.expected > 1:
                    rows.append(
                        ProviderPart(
                            attempt_id=sub.key,
                            connection_id=self.connection_id,
                            provider_message_id=message_id,
                            part=sub.part_no,
                        )
                    )
                if len(ids) >= pending.expected:
                    complete.append((sub.key, ids.get(1) or message_id))
            if rows:
                sessions.record_parts(session, rows)
            sessions.mark_sent_many(session, complete)
            for sub, status, reason in refused:
                final, code = REFUSALS.get(status, ("rejected", 1000))
                sessions.mark_failed(session, sub.key, final, code, f"SMSC: {reason}")
            # Each receipt parsed once; the provider ids they name looked up in two reads.
            parsed = [(i, self._receipt(i)) for i, _ in received]
            names = [
                c for _, r in parsed if r is not None for c in receipts.candidates(r.message_id)
            ]
            known_ids = claims.known_provider_ids(session, self.connection_id, names)
            known = [
                p
                for p in (self._apply(session, i, r, known_ids) for i, r in parsed)
                if p is not None
            ]
            # Receipts of recorded attempts, set-based (messaging/statuses.py).
            statuses.apply_many(
                session, known, lambda _, p: pipeline.apply_event(session, p, tries=1)
            )
        # Committed: now the in-memory state may follow, and the receipts be acknowledged.
        for key, ids in got.items():
            if key in self._pending:
                self._pending[key].ids = ids
        for key, _ in complete:
            self._pending.pop(key, None)
        for sub, _, _ in refused:
            self._pending.pop(sub.key, None)
        for _, ack in received:
            ack()  # only now, after the commit: a report is never lost

    @staticmethod
    def _receipt(inbound: Inbound) -> receipts.Receipt | None:
        """The receipt an inbound PDU carries with a status to apply, or None."""
        if not (receipts.is_receipt(inbound.esm_class) or inbound.receipted_message_id):
            return None
        text = decode_text(inbound.short_message, inbound.data_coding, inbound.esm_class)
        receipt = receipts.parse(text, inbound.receipted_message_id, inbound.message_state)
        return None if receipt is None or receipt.status is None else receipt

    def _apply(
        self,
        session: object,
        inbound: Inbound,
        receipt: receipts.Receipt | None,
        known_ids: set[str],
    ) -> dict[str, Any] | None:
        """An inbound PDU: a receipt of a recorded attempt (its id in ``known_ids``) comes
        back as the event to apply with the batch; the rest is handled here."""
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        if receipts.is_receipt(inbound.esm_class) or inbound.receipted_message_id:
            if receipt is None:
                return None  # no id, or no status to apply
            provider_id, known = receipt.message_id, False
            for candidate in receipts.candidates(receipt.message_id):
                if candidate in known_ids:
                    provider_id, known = candidate, True
                    break
            failed = receipt.status not in ("delivered",)
            event = ProviderEvent(
                "status",
                status=receipt.status,
                code=1000 if failed else None,
                error=f"SMSC: stat {receipt.stat} err {receipt.error}" if failed else None,
            )
            if known:
                # Its attempt is recorded: applied with the batch, in its transaction.
                return pipeline.event_payload(self.connection_id, provider_id, event)
            # Before its submit_sm_resp was recorded: a job that waits for it.
            pipeline.enqueue_event(
                session, self.organization_id, self.connection_id, provider_id, event
            )
            return None
        sessions.enqueue_inbound(
            session,
            self.organization_id,
            self.connection_id,
            inbound.source.lstrip("+"),
            inbound.destination,
            decode_text(inbound.short_message, inbound.data_coding, inbound.esm_class),
        )
        return None

    def _write_status(self, *, force: bool = False, state: str | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 1.0:
            return
        sent = sum(s.sent for s in self.sessions)
        if self._last_status:
            self._rate = (sent - self._last_sent) / max(0.001, now - self._last_status)
        self._last_status, self._last_sent = now, sent
        with self.db.transaction() as session:
            repo.save_status(
                session,
                ConnectionStatus(
                    connection_id=self.connection_id,
                    state=state or self.link_state,
                    last_error=self.last_error,
                    in_flight=sum(s.in_flight for s in self.sessions),
                    sent_per_second=round(self._rate, 1),
                    owner=self.owner,
                    updated_at=utcnow(),
                ),
            )
