"""Provider requests of the call engine, made with no transaction open (ADR 33).

The engine records the intent (``callbacks.telephony``: originate, bridge or hang up one
attempt's call) in its own transaction. This job reads what it needs in one short
transaction, makes the HTTP request with none open, and records the answer in a second
short one. A request that did not get through (transport error, 429, 5xx) is retried
with backoff (429: after its ``Retry-After``); one the provider refused (4xx) fails the
call with the provider's reason. At-least-once: a retried job reads the call again, so an
intent that is no longer current (cancelled, a later attempt) is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from omnirelay.callbacks import engine, twilio
from omnirelay.callbacks import repository as repo
from omnirelay.callbacks.models import Call, Option, Profile
from omnirelay.channels.base import PermanentError, RetriableError
from omnirelay.db import Database
from omnirelay.queue import JobContext, enqueue
from omnirelay.queue.registry import Retry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    op: str
    call_sid: str
    attempt: int
    settings: dict[str, Any]
    number: str = ""  # originate: the customer's; bridge: the agent's
    provider_sid: str = ""


def _plan(db: Database, p: dict[str, Any]) -> Plan | str | None:
    """What to request (a Plan), why the call fails (str), or nothing (None)."""
    op, call_sid, attempt = str(p["op"]), str(p["call_sid"]), int(p["attempt"])
    with db.transaction() as session:
        call = session.get(Call, call_sid)
        if call is None:
            return None
        profile = repo.get(session, Profile, call.organization_id, call.profile_sid)
        if profile is None or profile.telephony.get("provider") != twilio.NAME:
            return None
        settings = dict(profile.telephony)
        if op == "hangup":
            return Plan(op, call_sid, attempt, settings, provider_sid=str(p["provider_sid"]))
        if call.attempts != attempt or call.status in engine.FINAL:
            return None  # cancelled or superseded since the intent was recorded
        if op == "originate":
            return Plan(op, call_sid, attempt, settings, number=call.number)
        if op == "bridge":
            if call.status != "waiting" or not call.provider_call_sid:
                return None
            agents = settings.get("agent_numbers") or {}
            option = repo.get(session, Option, call.organization_id, call.option_sid)
            number = agents.get(str(p["agent_sid"])) or (option.destination if option else None)
            if not number:
                return "no number to reach the agent (agent_numbers or the option's destination)"
            return Plan(op, call_sid, attempt, settings, number, call.provider_call_sid)
    return None


def _send(plan: Plan) -> twilio.Answer:
    if plan.op == "originate":
        return twilio.originate(plan.settings, plan.call_sid, plan.attempt, plan.number)
    if plan.op == "bridge":
        return twilio.bridge(
            plan.settings, plan.provider_sid, plan.call_sid, plan.attempt, plan.number
        )
    return twilio.hangup(plan.settings, plan.provider_sid)


def _placed(db: Database, plan: Plan, provider_sid: str) -> None:
    """The customer's call exists at the provider: remember its sid, or hang it up when
    the call-back was cancelled (or moved on) while the request was in flight."""
    with db.transaction() as session:
        call = repo.lock_call(session, plan.call_sid)
        if call is None:
            return
        current = call.attempts == plan.attempt and call.status not in engine.FINAL
        if current and call.provider_call_sid in (None, provider_sid):
            call.provider_call_sid = provider_sid
        elif not current:
            enqueue(
                session,
                engine.TELEPHONY,
                {"op": "hangup", "call_sid": call.sid, "attempt": plan.attempt}
                | {"provider_sid": provider_sid},
                organization_id=call.organization_id,
                max_attempts=engine.TELEPHONY_TRIES + 1,
            )


def run(db: Database, job: JobContext) -> None:
    plan = _plan(db, job.payload)
    if plan is None:
        return
    if isinstance(plan, str):
        with db.transaction() as session:
            engine.fail(session, job.payload["call_sid"], int(job.payload["attempt"]), plan)
        return
    try:
        answer = _send(plan)  # no transaction is open here
    except RetriableError as exc:
        if job.attempts < engine.TELEPHONY_TRIES:
            raise Retry(exc.delay, str(exc)) from None
        log.warning("call %s: %s gave up: %s", plan.call_sid, plan.op, exc)
        if plan.op != "hangup":
            with db.transaction() as session:
                detail = f"{exc} ({job.attempts} tries)"
                engine.fail(session, plan.call_sid, plan.attempt, detail)
        return
    except PermanentError as exc:
        log.info("call %s: %s refused: %s", plan.call_sid, plan.op, exc)
        if plan.op != "hangup":  # a refused hang-up: the call is over already
            with db.transaction() as session:
                engine.fail(session, plan.call_sid, plan.attempt, str(exc))
        return
    if plan.op == "originate":
        _placed(db, plan, answer.sid)
