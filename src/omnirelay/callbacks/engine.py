"""The call engine: per option a FIFO queue served by its agents.

A queued call is dialled when an agent is free (the agent is reserved), or when a busy
agent is predicted to be free within ``LEAD`` seconds (from recent handle times): then the
customer is dialled without an agent and waits for the first one free. Answered calls
are bridged to the agent; no answer or busy retries by the profile's rules. Every step is
a job; every status change is an event to the organization's callback server, and, if
the caller opted in, an SMS at queued, about to call, and cancelled.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from omnirelay.callbacks import repository as repo
from omnirelay.callbacks import sms, telephony
from omnirelay.callbacks.models import Agent, Call, Option, Profile
from omnirelay.db import utcnow
from omnirelay.queue import enqueue
from omnirelay.webhooks import service as webhooks

log = logging.getLogger(__name__)

ASSIGN, EVENT, START, REQUEUE, TELEPHONY = (
    "callbacks.assign",
    "callbacks.event",
    "callbacks.start",
    "callbacks.requeue",
    "callbacks.telephony",  # a provider request, run with no transaction open (remote.py)
)
TELEPHONY_TRIES = 8  # a provider request that keeps failing to get through fails the call
FINAL = ("completed", "cancelled", "failed", "no_answer")
DEFAULT_HANDLE = 180.0  # seconds, until an option has handled calls of its own
LEAD = 20.0  # seconds: dial ahead of an agent predicted to be free this soon


def _profile(session: Session, call: Call) -> Profile:
    profile = repo.get(session, Profile, call.organization_id, call.profile_sid)
    assert profile is not None
    return profile


def set_status(session: Session, call: Call, status: str, details: str | None = None) -> None:
    call.status = status
    call.details = details
    call.updated_at = utcnow()
    if status in FINAL:
        call.ended_at = call.ended_at or call.updated_at
    webhooks.emit_callback(
        session,
        call.organization_id,
        "callback.status",
        {"sid": call.sid, "status": status, "option_sid": call.option_sid, "details": details},
        ordering_key=call.sid,  # the statuses of one call-back arrive in order
    )


def schedule_assign(
    session: Session, call_or_option: Call | Option, at: datetime | None = None
) -> None:
    option_sid = (
        call_or_option.option_sid if isinstance(call_or_option, Call) else call_or_option.sid
    )
    # No dedupe key: a running assignment may already have read the queue, so a change
    # made now needs an assignment of its own. Assignments of one option serialise on
    # the agents' row locks and are cheap when there is nothing to do.
    enqueue(
        session,
        ASSIGN,
        {"option_sid": option_sid},
        run_at=at,
        organization_id=call_or_option.organization_id,
    )


def queue_call(session: Session, call: Call) -> None:
    now = utcnow()
    call.queued_at = call.queued_at or now
    set_status(session, call, "queued")
    session.flush()
    wait = estimated_wait(session, call.option_sid, call)
    sms.update(session, call, _profile(session, call), "queued", wait)
    schedule_assign(session, call)


def handle_time(session: Session, option_sid: str) -> float:
    times = repo.recent_handle_times(session, option_sid)
    return sum(times) / len(times) if times else DEFAULT_HANDLE


def estimated_wait(session: Session, option_sid: str, call: Call | None = None) -> int:
    """Seconds until a call (or a new one) is likely dialled: the calls ahead of it spread
    over the option's agents, each taking the recent average handle time."""
    agents = [a for a in repo.agents(session, option_sid) if a.state != "away"]
    free = sum(1 for a in agents if a.state == "available")
    queue = list(repo.calls_in(session, option_sid, ("queued",)))
    ahead = queue.index(call) if call is not None and call in queue else len(queue)
    if ahead < free:
        return 0
    rounds = math.floor((ahead - free) / max(1, len(agents))) + 1
    return int(rounds * handle_time(session, option_sid))


def assign(session: Session, option_sid: str) -> None:
    agents = repo.agents(session, option_sid, lock=True)
    free = [a for a in agents if a.state == "available"]
    for call in repo.calls_in(session, option_sid, ("waiting",), lock=True):
        if not free:
            break
        if call.agent_sid is None:
            _bridge(session, call, free.pop(0))
    for call in repo.calls_in(session, option_sid, ("calling",), lock=True):
        if free and call.agent_sid is None:
            _reserve(free.pop(0), call)  # dialled ahead: this agent takes it when answered
    queued = list(repo.calls_in(session, option_sid, ("queued",), lock=True))
    while queued and free:
        _dial(session, queued.pop(0), free.pop(0))
    if not queued:
        return
    soon = utcnow() + timedelta(seconds=LEAD)
    handle = handle_time(session, option_sid)
    predicted = sum(
        1
        for a in agents
        if a.state == "busy" and a.busy_since and a.busy_since + timedelta(seconds=handle) <= soon
    )
    ahead = [
        c for c in repo.calls_in(session, option_sid, ("calling", "waiting")) if c.agent_sid is None
    ]
    for _ in range(max(0, predicted - len(ahead))):
        if not queued:
            break
        _dial(session, queued.pop(0), None)
    if queued:
        # Look again when the next busy agent is predicted to be about free.
        ends = [
            a.busy_since + timedelta(seconds=handle - LEAD)
            for a in agents
            if a.state == "busy"
            and a.busy_since
            and a.busy_since + timedelta(seconds=handle) > soon
        ]
        option = repo.get(session, Option, queued[0].organization_id, option_sid)
        if ends and option is not None:
            schedule_assign(session, option, at=min(ends))


def _reserve(agent: Agent, call: Call) -> None:
    agent.state, agent.call_sid, agent.busy_since = "busy", call.sid, utcnow()
    call.agent_sid = agent.sid


def _release(session: Session, call: Call) -> None:
    if call.agent_sid is None:
        return
    agent = repo.get(session, Agent, call.organization_id, call.agent_sid)
    if agent is not None and agent.call_sid == call.sid:
        agent.state, agent.call_sid, agent.busy_since = "available", None, None
    call.agent_sid = None
    schedule_assign(session, call)


def _dial(session: Session, call: Call, agent: Agent | None) -> None:
    if agent is not None:
        _reserve(agent, call)
    call.attempts += 1
    profile = _profile(session, call)
    if call.attempts == 1:
        sms.update(session, call, profile, "calling", 0)
    set_status(session, call, "calling")
    call.provider_call_sid = None  # a new attempt is a new provider call
    if telephony.is_remote(profile.telephony):
        _request(session, call, "originate")
        return
    for event in telephony.adapter.originate(call.sid, call.number, profile.telephony):
        _enqueue_event(session, call, event.kind, event.delay)


def _bridge(session: Session, call: Call, agent: Agent) -> None:
    _reserve(agent, call)
    _bridge_reserved(session, call, agent)


def _request(session: Session, call: Call, op: str, **more: str | None) -> None:
    """Record the intent of a provider request in this transaction; a job makes it with
    no transaction open and records what the provider answered (remote.py)."""
    enqueue(
        session,
        TELEPHONY,
        {"op": op, "call_sid": call.sid, "attempt": call.attempts, **more},
        organization_id=call.organization_id,
        max_attempts=TELEPHONY_TRIES + 1,
    )


def _enqueue_event(session: Session, call: Call, kind: str, delay: float) -> None:
    enqueue(
        session,
        EVENT,
        {"call_sid": call.sid, "kind": kind, "attempt": call.attempts},
        run_at=utcnow() + timedelta(seconds=delay),
        organization_id=call.organization_id,
    )


def apply_event(session: Session, call_sid: str, kind: str, attempt: int) -> None:
    call = repo.lock_call(session, call_sid)
    if call is None or call.status in FINAL or attempt != call.attempts:
        return  # cancelled, finished, or an event of an earlier attempt
    if kind == "ended":  # a provider's "the call is over": after a conversation or before
        kind = "completed" if call.status == "connected" else "hangup"
    if kind == "failed":
        _release(session, call)
        set_status(session, call, "failed", "the provider could not place the call")
    elif kind == "answered" and call.status == "calling":
        set_status(session, call, "waiting", "customer answered; waiting for an agent")
        agent = repo.get(session, Agent, call.organization_id, call.agent_sid or "")
        if agent is not None:
            _bridge_reserved(session, call, agent)
        else:
            schedule_assign(session, call)
    elif kind == "connected" and call.status == "waiting":
        call.connected_at = utcnow()
        set_status(session, call, "connected")
    elif kind == "completed" and call.status == "connected":
        set_status(session, call, "completed")
        _release(session, call)
    elif kind in ("busy", "no_answer") and call.status == "calling":
        _release(session, call)
        _retry_or_give_up(session, call, kind)
    elif kind == "hangup" and call.status in ("calling", "waiting", "connected"):
        _release(session, call)
        set_status(session, call, "failed", "the customer hung up")


def _bridge_reserved(session: Session, call: Call, agent: Agent) -> None:
    profile = _profile(session, call)
    if telephony.is_remote(profile.telephony):
        _request(session, call, "bridge", agent_sid=agent.sid)
        return
    for event in telephony.adapter.bridge(call.sid, call.number, agent.sid, profile.telephony):
        _enqueue_event(session, call, event.kind, event.delay)


def fail(session: Session, call_sid: str, attempt: int, details: str) -> bool:
    """The provider refused this attempt's call for good (or could not be reached):
    the call fails with the provider's reason and its agent is free again."""
    call = repo.lock_call(session, call_sid)
    if call is None or call.status in FINAL or attempt != call.attempts:
        return False
    _release(session, call)
    set_status(session, call, "failed", details)
    return True


def _retry_or_give_up(session: Session, call: Call, kind: str) -> None:
    profile = _profile(session, call)
    reason = "busy" if kind == "busy" else "no answer"
    if call.attempts <= profile.retry_attempts:
        set_status(
            session,
            call,
            "retrying",
            f"{reason}; retry {call.attempts} of {profile.retry_attempts}",
        )
        enqueue(
            session,
            REQUEUE,
            {"call_sid": call.sid},
            run_at=utcnow() + timedelta(seconds=profile.retry_interval),
            organization_id=call.organization_id,
        )
    else:
        set_status(session, call, "no_answer", f"{reason} after {call.attempts} attempts")


def requeue(session: Session, call_sid: str) -> None:
    call = repo.lock_call(session, call_sid)
    if call is not None and call.status == "retrying":
        set_status(session, call, "queued", call.details)
        schedule_assign(session, call)


def start_scheduled(session: Session, call_sid: str) -> None:
    call = repo.lock_call(session, call_sid)
    if call is not None and call.status == "scheduled":
        queue_call(session, call)


def cancel(session: Session, call: Call) -> None:
    if call.status in ("calling", "waiting"):
        if telephony.is_remote(_profile(session, call).telephony):
            # Without a provider sid yet the pending originate sees the cancel and
            # hangs up what it placed (remote.py).
            if call.provider_call_sid:
                _request(session, call, "hangup", provider_sid=call.provider_call_sid)
        else:
            telephony.adapter.hangup(call.sid)
        _release(session, call)
    set_status(session, call, "cancelled", "cancelled by request")
    sms.update(session, call, _profile(session, call), "cancelled", 0)
