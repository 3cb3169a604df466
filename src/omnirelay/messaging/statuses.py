"""Provider reports applied set-based (ADR 18): a batch of status events in a few
statements instead of a locked ORM round per event.

The common case, a ``delivered`` or ``read`` report of a single-part attempt of a plain
message (no surface status hook), is decided in memory from one joined read and written
with one UPDATE of attempts and one of messages; the report webhooks of the messages that
have a ``report`` URL, and the reports of a method's reporter (``pipeline.REPORTERS``),
are added in the same transaction. Everything else (failures, which
hand over to the next step; parts of a concatenated SMS; inbound texts; the gateway's
hooks; reports of an id not recorded yet) goes through ``pipeline.apply_event`` one by
one, in order: pending fast writes are flushed first, so each message's events apply in
the order they came. Statuses only move forward either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.messaging import bulk_repository as bulk
from omnirelay.messaging import pipeline
from omnirelay.webhooks import service as webhooks

FAST = ("delivered", "read")


@dataclass
class _State:
    """An attempt and its message as this batch has them so far."""

    attempt_id: int
    message_id: str
    attempt_step: int
    attempt_status: str
    parts: int
    channel: str
    price: int
    message_step: int
    message_status: str
    final: bool
    method: str
    organization_id: str
    custom_id: str | None
    report_url: str | None


def apply_many(
    session: Session,
    payloads: Sequence[dict[str, Any]],
    slow: Callable[[int, dict[str, Any]], None],
) -> None:
    """Apply ``payloads`` (``pipeline.event_payload`` dicts) in order; ``slow(i, payload)``
    applies one the fast path does not take (the caller decides its savepoint and retry)."""
    keys = [
        (int(p["connection_id"]), str(p["provider_message_id"]))
        for p in payloads
        if p.get("kind") == "status" and p.get("status") in FAST
    ]
    states = {key: _State(**row) for key, row in bulk.attempts_for_reports(session, keys).items()}
    pending_attempts: dict[int, dict[str, Any]] = {}
    pending_messages: dict[str, dict[str, Any]] = {}
    pending_reports: list[webhooks.NewEvent] = []
    now = utcnow()

    def flush() -> None:
        bulk.set_attempt_statuses(session, list(pending_attempts.values()))
        bulk.set_message_statuses(session, list(pending_messages.values()))
        # Before any slow one: a message's reports keep the order of its events.
        webhooks.emit_many(session, pending_reports)
        pending_attempts.clear()
        pending_messages.clear()
        pending_reports.clear()

    for i, payload in enumerate(payloads):
        key = (int(payload["connection_id"]), str(payload["provider_message_id"]))
        state = states.get(key)
        status = str(payload.get("status"))
        if (
            state is None
            or payload.get("kind") != "status"
            or status not in FAST
            or state.parts > 1
            or state.method in pipeline.STATUS_HOOKS
        ):
            flush()
            slow(i, payload)
            states.pop(key, None)  # the slow path may have changed it: read it again
            continue
        _forward(
            state, status, now, pending_attempts, pending_messages, pending_reports, session, key[0]
        )
    flush()


def _forward(
    state: _State,
    status: str,
    now: datetime,
    attempts: dict[int, dict[str, Any]],
    messages: dict[str, dict[str, Any]],
    reports: list[webhooks.NewEvent],
    session: Session,
    connection_id: int,
) -> None:
    # The rules of pipeline.apply_event for a delivered/read report.
    if state.attempt_status in pipeline.FAILED:
        return
    if pipeline.rank(status) <= pipeline.rank(state.attempt_status):
        return
    state.attempt_status = status
    new_rank = pipeline.rank(status)
    attempts[state.attempt_id] = {
        "aid": state.attempt_id,
        "status": status,
        "now": now,
        "rank": new_rank,
    }
    if state.message_step != state.attempt_step:
        return
    if pipeline.rank(status) <= pipeline.rank(state.message_status):
        return
    state.message_status, state.final = status, True
    messages[state.message_id] = {
        "mid": state.message_id,
        "status": status,
        "now": now,
        "rank": new_rank,
    }
    reporter = pipeline.REPORTERS.get(state.method)
    if reporter is not None:
        report = pipeline.StatusReport(
            state.message_id,
            state.organization_id,
            state.attempt_step,
            state.channel,
            connection_id,
            status,
        )
        made = reporter(session, report)
        if made is not None:
            reports.append(made)
    if state.report_url:
        reports.append(
            webhooks.NewEvent(
                state.organization_id,
                state.report_url,
                "message.status",
                pipeline.report_body(
                    state.message_id,
                    state.custom_id,
                    status,
                    state.channel,
                    state.price,
                    state.parts,
                ),
                ordering_key=state.message_id,
            )
        )
