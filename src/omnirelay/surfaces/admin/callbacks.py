"""Admin API: call-back configuration (profiles, options, questions, scheduling), agents,
and the /3.0 credentials."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from omnirelay.callbacks import service, telephony
from omnirelay.callbacks.models import Option, Profile, Question
from omnirelay.callbacks.schemas import (
    AgentIn,
    AgentOut,
    AgentState,
    OptionIn,
    OptionUpdate,
    ProfileIn,
    QuestionIn,
)
from omnirelay.surfaces.admin.deps import Caller, Ctx
from omnirelay.tenancy.auth import require_admin

router = APIRouter(prefix="/callbacks", tags=["call-backs"])


def _profile(p: Profile) -> dict[str, Any]:
    out = {k: getattr(p, k) for k in ("sid", *service.PROFILE_FIELDS)}
    out["telephony"] = telephony.shown(p.telephony or {})  # secrets masked
    return out


def _option(o: Option) -> dict[str, Any]:
    return {
        k: getattr(o, k)
        for k in ("sid", "profile_sid", "name", "position", "status", "destination")
    }


def _question(q: Question) -> dict[str, Any]:
    return {
        k: getattr(q, k)
        for k in ("sid", "profile_sid", "text", "kind", "choices", "required", "position")
    }


def _values(body: ProfileIn) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True, mode="json")


@router.post("/profiles", status_code=201)
def create_profile(ctx: Ctx, caller: Caller, body: ProfileIn) -> dict[str, Any]:
    require_admin(caller)
    values = _values(body)
    values.setdefault("name", "Call-back profile")
    with ctx.db.transaction() as session:
        return _profile(service.create_profile(session, caller.organization_id, values))


@router.get("/profiles")
def list_profiles(ctx: Ctx, caller: Caller) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        return {"items": [_profile(p) for p in service.profiles(session, caller.organization_id)]}


@router.get("/profiles/{sid}")
def get_profile(ctx: Ctx, caller: Caller, sid: str) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        return _profile(service.profile(session, caller.organization_id, sid))


@router.patch("/profiles/{sid}")
def update_profile(ctx: Ctx, caller: Caller, sid: str, body: ProfileIn) -> dict[str, Any]:
    """Change any field; `entries` replaces the scheduling windows."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        return _profile(service.update_profile(session, caller.organization_id, sid, _values(body)))


@router.post("/profiles/{sid}/options", status_code=201)
def add_option(ctx: Ctx, caller: Caller, sid: str, body: OptionIn) -> dict[str, Any]:
    require_admin(caller)
    with ctx.db.transaction() as session:
        return _option(service.add_option(session, caller.organization_id, sid, body.model_dump()))


@router.patch("/options/{osid}")
def update_option(ctx: Ctx, caller: Caller, osid: str, body: OptionUpdate) -> dict[str, Any]:
    require_admin(caller)
    with ctx.db.transaction() as session:
        changes = body.model_dump(exclude_unset=True)
        return _option(service.update_option(session, caller.organization_id, osid, changes))


@router.post("/profiles/{sid}/questions", status_code=201)
def add_question(ctx: Ctx, caller: Caller, sid: str, body: QuestionIn) -> dict[str, Any]:
    require_admin(caller)
    with ctx.db.transaction() as session:
        return _question(
            service.add_question(session, caller.organization_id, sid, body.model_dump())
        )


@router.post("/options/{osid}/agents", status_code=201, response_model=AgentOut)
def join_agent(ctx: Ctx, caller: Caller, osid: str, body: AgentIn) -> AgentOut:
    """An agent joins the option's queue, available."""
    with ctx.db.transaction() as session:
        return AgentOut.model_validate(
            service.join_agent(session, caller.organization_id, osid, body.name)
        )


@router.post("/agents/{sid}/state", response_model=AgentOut)
def agent_state(ctx: Ctx, caller: Caller, sid: str, body: AgentState) -> AgentOut:
    """available, busy (on other work) or away."""
    with ctx.db.transaction() as session:
        return AgentOut.model_validate(
            service.set_agent_state(session, caller.organization_id, sid, body.state)
        )


@router.delete("/agents/{sid}", status_code=204)
def leave_agent(ctx: Ctx, caller: Caller, sid: str) -> Response:
    with ctx.db.transaction() as session:
        service.leave_agent(session, caller.organization_id, sid)
    return Response(status_code=204)


@router.post("/credentials/regenerate")
def regenerate(ctx: Ctx, caller: Caller) -> dict[str, str]:
    """A new auth token for /3.0 (shown once); the old one stops working."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        sid, token = service.regenerate_token(session, caller.organization_id)
        return {"account_sid": sid, "auth_token": token}
