"""Call-back rules: credentials, configuration, starting, reading and cancelling calls."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from omnirelay.callbacks import engine, scheduling, telephony
from omnirelay.callbacks import repository as repo
from omnirelay.callbacks.models import Agent, Call, CallbackAccount, Option, Profile, Question
from omnirelay.db import utcnow
from omnirelay.errors import DomainError, InvalidInput, NotFound, Unauthorized
from omnirelay.phones import InvalidPhone, parse_phone
from omnirelay.queue import enqueue
from omnirelay.security import constant_time_equal, hash_secret

LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")


class CallbackError(DomainError):
    """A refusal with the seed's descriptive message (HTTP and head status 500)."""

    status = 500

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__("callback_error", message, field=field)


def new_sid(kind: str) -> str:
    return kind + secrets.token_hex(16)


# --- credentials ------------------------------------------------------------------------


def create_account(session: Session, organization_id: str) -> tuple[str, str]:
    """(account SID, auth token); the token is shown once and stored hashed."""
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(32)
    repo.add(
        session,
        CallbackAccount(
            organization_id=organization_id, account_sid=sid, auth_token_hash=hash_secret(token)
        ),
    )
    return sid, token


def regenerate_token(session: Session, organization_id: str) -> tuple[str, str]:
    row = repo.account_of(session, organization_id)
    if row is None:
        return create_account(session, organization_id)
    token = secrets.token_hex(32)
    row.auth_token_hash = hash_secret(token)
    session.flush()
    return row.account_sid, token


def authenticate(session: Session, account_sid: str, auth_token: str) -> str:
    row = repo.account_by_sid(session, account_sid)
    if row is None or not constant_time_equal(row.auth_token_hash, hash_secret(auth_token)):
        raise Unauthorized(
            "invalid_credentials", "Authentication failed: unknown account SID or auth token."
        )
    return row.organization_id


# --- configuration ------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            "invalid_timezone", f"unknown time zone {name!r}", field="timezone"
        ) from None


PROFILE_FIELDS = (
    "name",
    "status",
    "sms",
    "questions",
    "scheduling",
    "timezone",
    "offer_interval",
    "max_scheduled",
    "max_options",
    "daily_overflow",
    "entries",
    "retry_attempts",
    "retry_interval",
    "telephony",
)


def _apply_profile(row: Profile, values: dict[str, Any]) -> None:
    if "timezone" in values:
        _zone(values["timezone"])
    if "entries" in values:
        try:
            scheduling.validate_entries(values["entries"])
        except ValueError as exc:
            raise InvalidInput("invalid_entries", str(exc), field="entries") from exc
    if "telephony" in values:
        try:
            values["telephony"] = telephony.validate_settings(
                values["telephony"], row.telephony or {}
            )
        except ValueError as exc:
            raise InvalidInput("invalid_telephony", str(exc), field="telephony") from exc
    for key in PROFILE_FIELDS:
        if key in values and values[key] is not None:
            setattr(row, key, values[key])


def create_profile(session: Session, organization_id: str, values: dict[str, Any]) -> Profile:
    row = Profile(sid=new_sid("PF"), organization_id=organization_id, entries=[], telephony={})
    _apply_profile(row, values)
    repo.add(session, row)
    return row


def update_profile(
    session: Session, organization_id: str, sid: str, values: dict[str, Any]
) -> Profile:
    row = profile(session, organization_id, sid)
    _apply_profile(row, values)
    session.flush()
    return row


def profile(session: Session, organization_id: str, sid: str) -> Profile:
    row = repo.get(session, Profile, organization_id, sid)
    if row is None:
        raise NotFound("profile_not_found", f"Call-back profile {sid} not found.")
    return row


def profiles(session: Session, organization_id: str) -> Sequence[Profile]:
    return repo.profiles(session, organization_id)


def add_option(
    session: Session, organization_id: str, profile_sid: str, values: dict[str, Any]
) -> Option:
    profile(session, organization_id, profile_sid)
    row = Option(
        sid=new_sid("OP"), organization_id=organization_id, profile_sid=profile_sid, **values
    )
    repo.add(session, row)
    return row


def option(
    session: Session, organization_id: str, sid: str, profile_sid: str | None = None
) -> Option:
    row = repo.get(session, Option, organization_id, sid)
    if row is None or (profile_sid is not None and row.profile_sid != profile_sid):
        raise NotFound("option_not_found", f"Call option {sid} not found.")
    return row


def update_option(
    session: Session, organization_id: str, sid: str, values: dict[str, Any]
) -> Option:
    row = option(session, organization_id, sid)
    for key, value in values.items():
        setattr(row, key, value)
    session.flush()
    if row.status == "active":
        engine.schedule_assign(session, row)
    return row


def add_question(
    session: Session, organization_id: str, profile_sid: str, values: dict[str, Any]
) -> Question:
    profile(session, organization_id, profile_sid)
    if values.get("kind") == "choice" and not values.get("choices"):
        raise InvalidInput("invalid_question", "a choice question needs choices", field="choices")
    row = Question(
        sid=new_sid("QU"), organization_id=organization_id, profile_sid=profile_sid, **values
    )
    repo.add(session, row)
    return row


def question(
    session: Session, organization_id: str, sid: str, profile_sid: str | None = None
) -> Question:
    row = repo.get(session, Question, organization_id, sid)
    if row is None or (profile_sid is not None and row.profile_sid != profile_sid):
        raise NotFound("question_not_found", f"Pre-call question {sid} not found.")
    return row


# --- agents ---------------------------------------------------------------------------------


def join_agent(session: Session, organization_id: str, option_sid: str, name: str) -> Agent:
    opt = option(session, organization_id, option_sid)
    row = Agent(sid=new_sid("AG"), organization_id=organization_id, option_sid=opt.sid, name=name)
    repo.add(session, row)
    engine.schedule_assign(session, opt)
    return row


def agent(session: Session, organization_id: str, sid: str) -> Agent:
    row = repo.get(session, Agent, organization_id, sid)
    if row is None:
        raise NotFound("agent_not_found", f"Agent {sid} not found.")
    return row


def set_agent_state(session: Session, organization_id: str, sid: str, state: str) -> Agent:
    row = agent(session, organization_id, sid)
    if state not in ("available", "busy", "away"):
        raise InvalidInput("invalid_state", "state is available, busy or away", field="state")
    if row.call_sid is not None and state != "busy":
        raise InvalidInput("agent_on_call", "the agent is on a call-back; it ends by itself")
    row.state = state
    row.busy_since = utcnow() if state == "busy" else None
    session.flush()
    engine.schedule_assign(session, option(session, organization_id, row.option_sid))
    return row


def leave_agent(session: Session, organization_id: str, sid: str) -> None:
    row = agent(session, organization_id, sid)
    if row.call_sid is not None:
        raise InvalidInput("agent_on_call", "the agent is on a call-back; it ends by itself")
    session.delete(row)
    session.flush()


# --- call-backs -----------------------------------------------------------------------------


@dataclass
class StartRequest:
    number: str | None
    option_sid: str | None
    start_date: str | None
    sms_opt_in: bool
    answers: dict[str, str]


def parse_local(value: str, tz: ZoneInfo) -> datetime:
    for fmt in LOCAL_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=tz).astimezone(UTC)
        except ValueError:
            continue
    raise CallbackError(
        "Invalid fc_start_date: use YYYY-MM-DD HH:MM:SS in the profile's time zone.",
        "fc_start_date",
    )


def _check_answers(questions: Sequence[Question], answers: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    known = {q.sid for q in questions}
    for sid in answers:
        if sid not in known:
            raise CallbackError(f"Unknown pre-call question {sid}.", "answers")
    for q in questions:
        value = (answers.get(q.sid) or "").strip()
        if not value:
            if q.required:
                raise CallbackError(f"Missing answer to a required question: {q.text}", q.sid)
            continue
        if q.kind == "number":
            try:
                float(value)
            except ValueError:
                raise CallbackError(f"The answer to '{q.text}' must be a number.", q.sid) from None
        if q.kind == "choice" and value not in q.choices:
            raise CallbackError(
                f"The answer to '{q.text}' must be one of: {', '.join(q.choices)}.", q.sid
            )
        out[q.sid] = value
    return out


def start(
    session: Session, organization_id: str, req: StartRequest, default_region: str | None
) -> Call:
    if not req.option_sid:
        raise CallbackError("Missing fc_option: the SID of a call option.", "fc_option")
    if not req.number:
        raise CallbackError("Missing fc_number: the phone number to call back.", "fc_number")
    opt = repo.get(session, Option, organization_id, req.option_sid)
    if opt is None:
        raise CallbackError(f"Unknown call option {req.option_sid}.", "fc_option")
    prof = profile(session, organization_id, opt.profile_sid)
    if prof.status != "active":
        raise CallbackError("This call-back profile is paused.", "fc_option")
    if opt.status != "active":
        raise CallbackError(
            f"This call option is {opt.status}; please choose another.", "fc_option"
        )
    try:
        number = parse_phone(req.number, default_region).digits
    except InvalidPhone:
        raise CallbackError("Invalid fc_number: not a valid phone number.", "fc_number") from None
    if req.sms_opt_in and not prof.sms:
        raise CallbackError("SMS updates are not enabled for this profile.", "fc_sms")
    answers = (
        _check_answers(repo.questions(session, prof.sid), req.answers) if prof.questions else {}
    )
    now = utcnow()
    start_at = None
    if req.start_date:
        if not prof.scheduling:
            raise CallbackError(
                "Scheduled call-backs are not enabled for this profile.", "fc_start_date"
            )
        tz = _zone(prof.timezone)
        start_at = parse_local(req.start_date, tz)
        if start_at <= now:
            raise CallbackError("fc_start_date is in the past.", "fc_start_date")
        if not scheduling.within_days(tz, now, start_at, prof.max_scheduled):
            raise CallbackError(
                f"fc_start_date is more than {prof.max_scheduled} days ahead.", "fc_start_date"
            )
        if not scheduling.inside(prof.entries, tz, start_at):
            raise CallbackError(
                "fc_start_date is outside the profile's scheduling windows.", "fc_start_date"
            )
    call = Call(
        sid=new_sid("CA"),
        organization_id=organization_id,
        profile_sid=prof.sid,
        option_sid=opt.sid,
        number=number,
        status="new",
        start_date=start_at,
        sms_opt_in=req.sms_opt_in,
        answers=answers,
        created_at=now,
        updated_at=now,
    )
    repo.add(session, call)
    if start_at is None:
        engine.queue_call(session, call)
    else:
        engine.set_status(session, call, "scheduled")
        enqueue(
            session,
            engine.START,
            {"call_sid": call.sid},
            run_at=start_at,
            organization_id=organization_id,
        )
    return call


def call(session: Session, organization_id: str, sid: str) -> Call:
    row = repo.get(session, Call, organization_id, sid)
    if row is None:
        raise CallbackError(f"Call-back {sid} not found.", "sid")
    return row


def optin_sid(call: Call) -> str:
    """An SMS opt-in is recorded with its call-back: ``SO`` + the call-back's hex."""
    return "SO" + call.sid[2:]


def optin(session: Session, organization_id: str, sid: str) -> Call:
    """The call-back that recorded the SMS opt-in ``sid``."""
    row = None
    if sid.startswith("SO") and len(sid) == 34:
        row = repo.get(session, Call, organization_id, "CA" + sid[2:])
    if row is None or not row.sms_opt_in:
        raise CallbackError(f"SMS opt-in {sid} not found.", "sid")
    return row


def cancel(session: Session, organization_id: str, sid: str) -> Call:
    row = call(session, organization_id, sid)
    locked = repo.lock_call(session, row.sid)
    assert locked is not None
    if locked.status in engine.FINAL:
        raise CallbackError(f"Call-back {sid} has already ended ({locked.status}).", "sid")
    if locked.status == "connected":
        raise CallbackError(
            f"Call-back {sid} is connected to an agent and cannot be cancelled.", "sid"
        )
    engine.cancel(session, locked)
    return locked


def duration(row: Call, now: datetime | None = None) -> int:
    """Seconds since the call-back started waiting (queued), until it ended."""
    begin = row.queued_at
    if begin is None:
        return 0
    end = row.ended_at or now or utcnow()
    return max(0, int((end - begin).total_seconds()))


def option_slots(session: Session, prof: Profile) -> list[datetime]:
    if not prof.scheduling:
        return []
    return scheduling.slots(
        prof.entries,
        _zone(prof.timezone),
        utcnow(),
        interval_minutes=prof.offer_interval,
        max_days=prof.max_scheduled,
        max_options=prof.max_options,
        overflow=prof.daily_overflow,
    )
