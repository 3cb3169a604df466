"""Twilio's status callbacks of call-back telephony:
``/hooks/twilio/<call-back sid>/<attempt>/<leg>`` (leg: ``customer`` or ``agent``), the URL
omnirelay gave Twilio as ``StatusCallback``. ``X-Twilio-Signature`` is checked against the
profile's auth token over the public URL and the raw form before anything is applied; a
refused callback changes nothing. Each accepted status becomes a ``callbacks.event`` job,
as the sandbox's events are (callbacks/engine.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from omnirelay.callbacks import engine, twilio
from omnirelay.callbacks import repository as repo
from omnirelay.callbacks.models import Call, Profile
from omnirelay.context import AppContext
from omnirelay.queue import enqueue

router = APIRouter()
_SID = re.compile(r"^CA[0-9a-f]{32}$")
LEGS = ("customer", "agent")


@dataclass(frozen=True)
class Target:
    organization_id: str
    auth_token: str


def _refused(status: int, error: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error}, status_code=status)


def _target(ctx: AppContext, call_sid: str) -> Target | None:
    with ctx.db.read() as session:
        call = session.get(Call, call_sid)
        if call is None:
            return None
        profile = repo.get(session, Profile, call.organization_id, call.profile_sid)
        if profile is None or profile.telephony.get("provider") != twilio.NAME:
            return None
        return Target(call.organization_id, str(profile.telephony.get(twilio.SECRET) or ""))


def _apply(ctx: AppContext, call_sid: str, attempt: int, kind: str, provider_sid: str) -> int:
    with ctx.db.transaction() as session:
        call = repo.lock_call(session, call_sid)
        if call is None or call.attempts != attempt:
            return 0  # an earlier attempt's call: nothing to do
        if provider_sid and call.provider_call_sid is None and call.status not in engine.FINAL:
            call.provider_call_sid = provider_sid  # the status can overtake the create's answer
        enqueue(
            session,
            engine.EVENT,
            {"call_sid": call_sid, "kind": kind, "attempt": attempt},
            organization_id=call.organization_id,
        )
    return 1


@router.post("/twilio/{call_sid}/{attempt}/{leg}", include_in_schema=False)
async def twilio_status(call_sid: str, attempt: int, leg: str, request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    raw = await request.body()
    if not _SID.match(call_sid) or leg not in LEGS or not 0 < attempt < 1000:
        return _refused(404, "unknown call")
    target = await run_in_threadpool(_target, ctx, call_sid)
    if target is None:
        return _refused(404, "unknown call")
    try:
        params = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        return _refused(400, "body is not a form")
    url = twilio.callback_url(call_sid, attempt, leg)
    if request.url.query:
        url += "?" + request.url.query
    if not twilio.verify(target.auth_token, url, params, request.headers.get("x-twilio-signature")):
        return _refused(403, "invalid signature")
    kind = twilio.event_of(leg, params.get("CallStatus", ""))
    applied = 0
    if kind is not None:
        sid = params.get("CallSid", "") if leg == "customer" else ""
        applied = await run_in_threadpool(_apply, ctx, call_sid, attempt, kind, sid[:64])
    # Twilio reads nothing from a status callback's answer: an empty 204.
    return Response(status_code=204, headers={"X-Applied": str(applied)})
