"""A message's current status as its status report carries it (``POST
/v3/message/status``): id, custom_id, status, channel, error, code, price, parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.billing import service as billing
from omnirelay.messaging import repository as repo
from omnirelay.messaging.models import Message, MessageAttempt
from omnirelay.messaging.pipeline import FAILED, report_payload


def _current(message: Message, attempt: MessageAttempt | None) -> dict[str, Any]:
    if attempt is not None:
        return report_payload(message, attempt, message.status)
    # Not tried yet (waiting for its delivery_date or daylight, or queued): the accepted
    # step's channel and price.
    failed = message.status in FAILED
    return {
        "id": message.id,
        "custom_id": message.custom_id,
        "status": message.status,
        "channel": message.channel,
        "error": message.error if failed else None,
        "code": message.code if failed else None,
        "price": billing.format_units(message.price),
        "parts": message.parts,
    }


def current(
    session: Session, organization_id: str, ids: Sequence[str], custom_ids: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The reports of the organization's messages, by id and by custom_id; two queries
    for the messages, one for their attempts, however many are asked."""
    messages = repo.messages_for(session, organization_id, ids=ids, custom_ids=custom_ids)
    latest: dict[tuple[str, int], MessageAttempt] = {}
    for attempt in repo.attempts_of(session, list({m.id for m in messages})):
        latest[(attempt.message_id, attempt.step)] = attempt  # ordered by id: the last wins
    by_id: dict[str, dict[str, Any]] = {}
    by_custom: dict[str, dict[str, Any]] = {}
    for m in messages:
        report = _current(m, latest.get((m.id, m.step)))
        by_id[m.id] = report
        if m.custom_id is not None:
            by_custom[m.custom_id] = report
    return by_id, by_custom
