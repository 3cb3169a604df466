"""VK's Callback API: ``/hooks/vk/<connection id>``. ``confirmation`` is answered with the
community's confirmation code in plain text; every other event must carry the
connection's ``secret`` (checked before anything is stored) and is answered ``ok``, as
VK requires (anything else makes VK send the event again)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from omnirelay.channels import vk
from omnirelay.context import AppContext
from omnirelay.messengers import service as messengers
from omnirelay.surfaces.hooks import routes
from omnirelay.surfaces.hooks.routes import HookConnection

router = APIRouter()
WIRE = "vkId"


def _refused(status: int, error: str) -> Response:
    return PlainTextResponse(error, status_code=status)


def apply_event(ctx: AppContext, conn: HookConnection, event: vk.VkEvent) -> int:
    with ctx.db.transaction() as session:
        org = conn.organization_id
        user = str(event.user_id) if event.user_id is not None else None
        if event.kind == "inbound" and user is not None:
            messengers.learn(session, org, WIRE, user, event.key)
            messengers.inbound(
                session,
                org,
                conn.id,
                "vk",
                text=event.text or "",
                to=str(conn.settings.get("group_id") or ""),
                wire=WIRE,
                user_id=user,
            )
            return 1
        if event.kind == "allow" and user is not None:
            return int(messengers.learn(session, org, WIRE, user, event.key))
        if event.kind == "read" and event.provider_message_id:
            messengers.status(session, org, conn.id, event.provider_message_id, "read")
            return 1
    # message_deny: the next send answers 901 (-> 1102); message_reply: the community's
    # own message (an operator in VK): nothing to store.
    return 0


@router.post("/vk/{connection_id}", include_in_schema=False)
async def vk_callback(connection_id: int, request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    raw = await request.body()
    conn = await routes.connection(ctx, connection_id, vk.NAME)
    if conn is None:
        return _refused(404, "unknown connection")
    try:
        payload = json.loads(raw)
    except ValueError:
        return _refused(400, "body is not JSON")
    event = vk.parse_callback(payload)
    if event is None:
        return _refused(400, "not a Callback API event")
    if event.group_id != conn.settings.get("group_id"):
        return _refused(403, "group_id is not this connection's community")
    if event.kind == "confirmation":
        code = str(conn.settings.get("confirmation_code") or "")
        if not code:
            return _refused(403, "no confirmation_code configured")
        return PlainTextResponse(code)
    if not vk.verify_secret(payload, str(conn.settings.get("secret") or "")):
        return _refused(403, "invalid secret")
    applied = await run_in_threadpool(apply_event, ctx, conn, event)
    return PlainTextResponse("ok", headers={"X-Applied": str(applied)})
