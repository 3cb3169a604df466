"""``GET /3.0/optins`` and ``GET /3.0/optin/{sid}``: the SMS opt-ins that call-back
requests recorded (``fc_sms=1``). An opt-in's SID is ``SO`` + its call-back's hex."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from omnirelay.callbacks import engine, service
from omnirelay.callbacks import repository as repo
from omnirelay.callbacks.models import Call
from omnirelay.surfaces.callback.deps import Ctx, OrgId
from omnirelay.surfaces.callback.envelope import ok
from omnirelay.surfaces.callback.routes import day, local

router = APIRouter()


def optin_out(session: Session, c: Call) -> dict[str, Any]:
    tz = service.profile(session, c.organization_id, c.profile_sid).timezone
    return {
        "sid": service.optin_sid(c),
        "number": c.number,
        "option_sid": c.option_sid,
        "profile_sid": c.profile_sid,
        "callback_sid": c.sid,
        "date": local(c.created_at, tz),
        # active: SMS updates may still come; ended: its call-back reached a final status.
        "status": "ended" if c.status in engine.FINAL else "active",
    }


@router.get("/optins")
def optins(
    ctx: Ctx, org: OrgId, start_date: str | None = None, end_date: str | None = None
) -> dict[str, Any]:
    """Opt-ins recorded from start_date to end_date (UTC days; default the last 7 days),
    newest first."""
    now = datetime.now(UTC)
    since = day(start_date, now - timedelta(days=7))
    until = day(end_date, now) + (
        timedelta(days=1) if end_date and len(end_date) == 10 else timedelta(0)
    )
    if until <= since and end_date:
        raise service.CallbackError("end_date must not be before start_date.")
    with ctx.db.read() as s:
        rows = repo.list_calls(
            s, org, since=since, until=until if end_date else None, sms_opt_in=True
        )
        return ok("SMS opt-ins listed.", {"optins": [optin_out(s, c) for c in rows]})


@router.get("/optin/{sid}")
def optin(ctx: Ctx, org: OrgId, sid: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return ok("SMS opt-in found.", optin_out(s, service.optin(s, org, sid)))
