"""Provider events applied in batches (ADR 40): the inbox drain.

A report or a reply that is not applied where it came in (with the send that carried it,
``pipeline.sent_many``; with the SMPP batch that received it) waits in
``provider_events`` until its ``due_at``. Each batch takes the due events in the order
they came, applies them with ``statuses.apply_many`` (the common delivered/read report
set-based, the rest one by one in a savepoint), and deletes them, all in one transaction:
no job per event, nothing applied twice unless a crash rolled the batch back (then it is
applied again, and statuses only move forward).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.db import utcnow
from omnirelay.messaging import inbox_repository as repo
from omnirelay.messaging import pipeline, statuses
from omnirelay.queue import Retry

log = logging.getLogger(__name__)

CHANNEL = "omnirelay_events"


def add(session: Session, rows: list[dict[str, Any]]) -> None:
    """Events (``inbox_repository.COLUMNS`` each) into the inbox, one INSERT, one wake-up."""
    if rows:
        repo.add_many(session, rows)
        wakeup.notify(session, CHANNEL)


def row(
    organization_id: str,
    connection_id: int,
    provider_message_id: str,
    event: Any,
    due_at: datetime,
) -> dict[str, Any]:
    """An inbox row of a ``channels.base.ProviderEvent``."""
    return {
        "organization_id": organization_id,
        "connection_id": int(connection_id),
        "provider_message_id": provider_message_id,
        "kind": event.kind,
        "status": event.status,
        "code": event.code,
        "error": event.error,
        "text": event.text,
        "due_at": due_at,
        "tries": 0,
    }


class InboxStep:
    """A drain step with no I/O: the claim applies the batch and records it."""

    name = "events"
    channel: str | None = CHANNEL

    def claim(self, session: Session, claim_id: str, limit: int, now: datetime) -> int:
        rows = repo.due(session, now, limit)
        if not rows:
            return 0
        payloads = [
            {
                "connection_id": r.connection_id,
                "provider_message_id": r.provider_message_id,
                "kind": r.kind,
                "status": r.status,
                "code": r.code,
                "error": r.error,
                "text": r.text,
            }
            for r in rows
        ]
        again: list[dict[str, Any]] = []

        def slow(i: int, payload: dict[str, Any]) -> None:
            tries = int(rows[i].tries) + 1
            try:
                with session.begin_nested():
                    pipeline.apply_event(session, payload, tries)
            except Retry as retry:  # a report before its attempt was recorded
                again.append({"eid": rows[i].id, "at": now + _delay(retry.delay), "n": tries})
            except Exception:
                if tries > pipeline.EARLY_EVENT_TRIES:
                    log.exception("dropping provider event %s after %d tries", rows[i].id, tries)
                    return
                log.exception("provider event %s failed; again later", rows[i].id)
                again.append({"eid": rows[i].id, "at": now + _delay(None, tries), "n": tries})

        statuses.apply_many(session, payloads, slow)
        kept = {r["eid"] for r in again}
        repo.remove(session, [r.id for r in rows if r.id not in kept])
        repo.later(session, again)
        return len(rows)

    def size(self, batch: int) -> int:
        return batch

    def io(self, batch: int) -> None:
        return None

    def record(self, session: Session, batch: int, outcomes: object, claim_id: str) -> None:
        return None

    def next_due(self, session: Session) -> datetime | None:
        return repo.next_due(session, utcnow())


def _delay(seconds: float | None, tries: int = 1) -> timedelta:
    return timedelta(seconds=seconds if seconds is not None else min(60.0, 0.5 * 2**tries))
