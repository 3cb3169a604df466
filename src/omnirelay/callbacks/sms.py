"""SMS updates to callers who opted in, sent through omnirelay's own SMS pipeline (the
organization's first active SMS connection and its first sender)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from omnirelay.callbacks.models import Call, Profile
from omnirelay.connections import repository as connections
from omnirelay.db import utcnow
from omnirelay.messaging import service as messaging
from omnirelay.messaging.errors import SendError
from omnirelay.messaging.validation import Draft, StepDraft

log = logging.getLogger(__name__)


def text_for(kind: str, wait_seconds: int) -> str:
    if kind == "queued":
        minutes = max(1, round(wait_seconds / 60)) if wait_seconds else 0
        eta = f" Estimated wait: {minutes} min." if minutes else ""
        return f"Your call-back request is in the queue.{eta} We will call you."
    if kind == "calling":
        return "We are calling you now about your call-back request."
    return "Your call-back request has been cancelled."


def update(session: Session, call: Call, profile: Profile, kind: str, wait_seconds: int) -> None:
    if not (profile.sms and call.sms_opt_in):
        return
    conn = next(
        (c for c in connections.list_for(session, call.organization_id, "sms") if c.active), None
    )
    if conn is None or not conn.senders:
        log.warning("call-back %s: no SMS connection for the update", call.sid)
        return
    step = StepDraft("sms", call.number, text_for(kind, wait_seconds), conn.senders[0], ttl=3600)
    try:
        with session.begin_nested():  # a refused SMS must not undo the call's change
            messaging.accept(session, call.organization_id, Draft("callback", [step]), utcnow())
    except SendError as exc:
        log.warning("call-back %s: SMS update refused: %s", call.sid, exc.message)
