"""The /3.0 methods: profile reads, start / status / cancel, and the call lists."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from omnirelay.callbacks import engine, service
from omnirelay.callbacks import repository as repo
from omnirelay.callbacks.models import Call, Option, Profile, Question
from omnirelay.surfaces.callback.deps import Ctx, OrgId
from omnirelay.surfaces.callback.envelope import ok

router = APIRouter()
FMT = "%Y-%m-%d %H:%M:%S"
TRUE = ("1", "true", "yes", "on", "y")


def local(at: datetime | None, tz: str) -> str | None:
    return at.astimezone(ZoneInfo(tz)).strftime(FMT) if at else None


def profile_out(session: Session, p: Profile) -> dict[str, Any]:
    return {
        "sid": p.sid,
        "name": p.name,
        "status": p.status,
        "total_options": len(repo.options(session, p.sid)),
        "sms": p.sms,
        "pre_call_questions": p.questions,
        "scheduled_callbacks": p.scheduling,
        "timezone": p.timezone,
    }


def option_out(session: Session, o: Option) -> dict[str, Any]:
    return {
        "sid": o.sid,
        "profile_sid": o.profile_sid,
        "name": o.name,
        "order_position": o.position,
        "status": o.status,
        "estimated_wait": engine.estimated_wait(session, o.sid),
    }


def question_out(q: Question) -> dict[str, Any]:
    return {
        "sid": q.sid,
        "question": q.text,
        "type": q.kind,
        "choices": q.choices,
        "required": q.required,
        "order_position": q.position,
    }


def call_out(session: Session, c: Call) -> dict[str, Any]:
    tz = service.profile(session, c.organization_id, c.profile_sid).timezone
    return {
        "sid": c.sid,
        "profile_sid": c.profile_sid,
        "option_sid": c.option_sid,
        "number": c.number,
        "status": c.status,
        "start_date": local(c.start_date or c.queued_at or c.created_at, tz),
        "created": local(c.created_at, tz),
        "ended": local(c.ended_at, tz),
        "duration": service.duration(c),
        "attempts": c.attempts,
        "sms": c.sms_opt_in,
        "details": c.details,
    }


def _read(ctx: Ctx, fn: Any) -> Any:
    with ctx.db.transaction() as session:
        return fn(session)


@router.get("/profiles")
def profiles(ctx: Ctx, org: OrgId) -> dict[str, Any]:
    """Every call-back profile of the account."""
    return ok(
        "Profiles listed.",
        _read(ctx, lambda s: {"profiles": [profile_out(s, p) for p in service.profiles(s, org)]}),
    )


@router.get("/profile/{sid}")
def profile(ctx: Ctx, org: OrgId, sid: str) -> dict[str, Any]:
    """Status, total options, and whether SMS, pre-call questions and scheduling are on."""
    return ok("Profile found.", _read(ctx, lambda s: profile_out(s, service.profile(s, org, sid))))


@router.get("/profile/{sid}/options")
def options(ctx: Ctx, org: OrgId, sid: str) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        service.profile(s, org, sid)
        return {"options": [option_out(s, o) for o in repo.options(s, sid)]}

    return ok("Options listed.", _read(ctx, read))


@router.get("/profile/{sid}/option/{osid}")
def option(ctx: Ctx, org: OrgId, sid: str, osid: str) -> dict[str, Any]:
    return ok(
        "Option found.", _read(ctx, lambda s: option_out(s, service.option(s, org, osid, sid)))
    )


@router.get("/profile/{sid}/option/{osid}/schedule")
def option_schedule(ctx: Ctx, org: OrgId, sid: str, osid: str) -> dict[str, Any]:
    """The start times a caller may pick for this option (profile time)."""

    def read(s: Session) -> dict[str, Any]:
        opt = service.option(s, org, osid, sid)
        prof = service.profile(s, org, sid)
        slots = service.option_slots(s, prof) if opt.status == "active" else []
        return {
            "option_sid": opt.sid,
            "profile_sid": prof.sid,
            "timezone": prof.timezone,
            "slots": [local(t, prof.timezone) for t in slots],
        }

    return ok("Schedule found.", _read(ctx, read))


@router.get("/profile/{sid}/questions")
def questions(ctx: Ctx, org: OrgId, sid: str) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        service.profile(s, org, sid)
        return {"questions": [question_out(q) for q in repo.questions(s, sid)]}

    return ok("Questions listed.", _read(ctx, read))


@router.get("/profile/{sid}/question/{qsid}")
def question(ctx: Ctx, org: OrgId, sid: str, qsid: str) -> dict[str, Any]:
    return ok(
        "Question found.", _read(ctx, lambda s: question_out(service.question(s, org, qsid, sid)))
    )


def entry_out(entry: dict[str, Any]) -> dict[str, Any]:
    """Every entry carries its status: one stored without it is active (scheduling.py)."""
    return {
        "status": entry.get("status", "active"),
        "day_of_week": entry.get("day_of_week", []),
        "start_time": entry.get("start_time", []),
        "end_time": entry.get("end_time", []),
    }


@router.get("/profile/{sid}/scheduling")
def scheduling(ctx: Ctx, org: OrgId, sid: str) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        p = service.profile(s, org, sid)
        return {
            "offer_interval": p.offer_interval,
            "max_scheduled": p.max_scheduled,
            "max_options": p.max_options,
            "daily_overflow": p.daily_overflow,
            "profile_sid": p.sid,
            "timezone": p.timezone,
            "entries": [entry_out(e) for e in p.entries],
        }

    return ok("Scheduling found.", _read(ctx, read))


async def _fields(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return {"__invalid__": True}
        return body if isinstance(body, dict) else {"__invalid__": True}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _answers(fields: dict[str, Any]) -> dict[str, str]:
    answers: dict[str, str] = {}
    given = fields.get("answers")
    if isinstance(given, dict):
        answers.update({str(k): str(v) for k, v in given.items()})
    for key, value in fields.items():
        for prefix in ("fc_question_", "fc_questions["):
            if key.startswith(prefix):
                answers[key[len(prefix) :].rstrip("]")] = str(value)
    return answers


_START_FIELDS: dict[str, Any] = {
    "type": "object",
    "required": ["fc_number", "fc_option"],
    "properties": {
        "fc_number": {"type": "string", "description": "The customer's phone number"},
        "fc_option": {"type": "string", "description": "Call option SID"},
        "fc_start_date": {
            "type": "string",
            "description": "YYYY-MM-DD HH:MM:SS in the profile's time zone: a scheduled call",
        },
        "fc_sms": {"type": "string", "description": "1: opt in to SMS updates"},
    },
    "additionalProperties": {
        "type": "string",
        "description": "fc_question_<QSID>: the answer to a pre-call question",
    },
}
# The body is read by hand (form or JSON, questions by name), so it is described here.
_START_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _START_FIELDS},
            "application/json": {"schema": _START_FIELDS},
        },
    }
}


@router.post("/callback", openapi_extra=_START_BODY)
async def start(request: Request, ctx: Ctx, org: OrgId) -> dict[str, Any]:
    """Start a call-back: fc_number, fc_option, optional fc_start_date (profile time),
    fc_sms (opt in to SMS updates), fc_question_<QSID> answers."""
    fields = await _fields(request)
    if fields.get("__invalid__"):
        raise service.CallbackError(
            "Unable to read the request body: send form fields or a JSON object."
        )
    sms = str(fields.get("fc_sms", fields.get("fc_sms_opt_in", ""))).lower() in TRUE
    req = service.StartRequest(
        number=str(fields["fc_number"]) if fields.get("fc_number") else None,
        option_sid=str(fields["fc_option"]) if fields.get("fc_option") else None,
        start_date=str(fields["fc_start_date"]) if fields.get("fc_start_date") else None,
        sms_opt_in=sms,
        answers=_answers(fields),
    )

    def run() -> dict[str, Any]:
        with ctx.db.transaction() as s:
            call = service.start(s, org, req, ctx.settings.default_phone_region or None)
            return {"sid": call.sid, "status": f"/3.0/call/{call.sid}/status.json"}

    message = (
        "Call-back scheduled successfully." if req.start_date else "Call-back started successfully."
    )
    return ok(message, await run_in_threadpool(run))


@router.get("/callback/{sid}/status")
@router.get("/call/{sid}/status")
def status(ctx: Ctx, org: OrgId, sid: str) -> dict[str, Any]:
    """Current status and the duration timer (seconds since it started waiting)."""

    def read(s: Session) -> dict[str, Any]:
        c = service.call(s, org, sid)
        out = call_out(s, c)
        return {k: out[k] for k in ("sid", "start_date", "status", "duration", "details")}

    return ok("Call-back status.", _read(ctx, read))


@router.post("/callback/{sid}/cancel")
def cancel(ctx: Ctx, org: OrgId, sid: str) -> dict[str, Any]:
    with ctx.db.transaction() as s:
        c = service.cancel(s, org, sid)
        return ok("Call-back cancelled successfully.", {"sid": c.sid, "status": c.status})


def day(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    for fmt in ("%Y-%m-%d", FMT):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise service.CallbackError(f"Invalid date {value!r}: use YYYY-MM-DD.")


@router.get("/calls")
def calls(
    ctx: Ctx, org: OrgId, start_date: str | None = None, end_date: str | None = None
) -> dict[str, Any]:
    """Call-backs created from start_date to end_date (UTC days; default the last 7 days)."""
    now = datetime.now(UTC)
    since = day(start_date, now - timedelta(days=7))
    until = day(end_date, now) + (
        timedelta(days=1) if end_date and len(end_date) == 10 else timedelta(0)
    )
    if until <= since and end_date:
        raise service.CallbackError("end_date must not be before start_date.")
    return ok(
        "Calls listed.",
        _read(
            ctx,
            lambda s: {
                "calls": [
                    call_out(s, c)
                    for c in repo.list_calls(s, org, since=since, until=until if end_date else None)
                ]
            },
        ),
    )


@router.get("/call/{sid}")
def call(ctx: Ctx, org: OrgId, sid: str) -> dict[str, Any]:
    return ok("Call found.", _read(ctx, lambda s: call_out(s, service.call(s, org, sid))))


@router.get("/realtime")
def realtime(ctx: Ctx, org: OrgId) -> dict[str, Any]:
    """Per option now: calls by status, agents, and the estimated wait of a new call."""

    def read(s: Session) -> dict[str, Any]:
        counts = repo.counts_by_option(s, org)
        out = []
        for p in service.profiles(s, org):
            for o in repo.options(s, p.sid):
                agents = repo.agents(s, o.sid)
                out.append(
                    {
                        "option_sid": o.sid,
                        "profile_sid": p.sid,
                        "name": o.name,
                        "status": o.status,
                        **{
                            st: counts.get((o.sid, st), 0)
                            for st in (
                                "scheduled",
                                "queued",
                                "calling",
                                "waiting",
                                "connected",
                                "retrying",
                            )
                        },
                        "agents_available": sum(a.state == "available" for a in agents),
                        "agents_busy": sum(a.state == "busy" for a in agents),
                        "estimated_wait": engine.estimated_wait(s, o.sid),
                    }
                )
        return {"options": out}

    return ok("Realtime statistics.", _read(ctx, read))


@router.get("/pending")
def pending(ctx: Ctx, org: OrgId) -> dict[str, Any]:
    """Call-backs in progress: queued, calling, waiting for an agent, connected, retrying."""
    return ok(
        "Pending calls.",
        _read(
            ctx,
            lambda s: {
                "calls": [call_out(s, c) for c in repo.list_calls(s, org, statuses=repo.ACTIVE)]
            },
        ),
    )


@router.get("/scheduled")
def scheduled(ctx: Ctx, org: OrgId) -> dict[str, Any]:
    return ok(
        "Scheduled calls.",
        _read(
            ctx,
            lambda s: {
                "calls": [call_out(s, c) for c in repo.list_calls(s, org, statuses=("scheduled",))]
            },
        ),
    )


@router.get("/timezones")
def timezones(ctx: Ctx, org: OrgId) -> dict[str, Any]:
    """The time zones a profile may use (IANA names)."""
    return ok("Time zones listed.", {"timezones": sorted(available_timezones())})
