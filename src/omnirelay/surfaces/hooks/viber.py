"""Viber callbacks: a bot's (``/hooks/viber_bot/<connection id>``, signed with
``X-Viber-Content-Signature``) and Infobip's Viber business messages reports and replies
(``/hooks/infobip_viber/<connection id>``, HTTP Basic with the connection's
``webhook_secret``). The signature or credentials are checked on the raw body before
anything is read from it; a refused callback stores nothing."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from omnirelay.channels import infobip_viber, viber_bot
from omnirelay.context import AppContext
from omnirelay.messengers import service as messengers
from omnirelay.surfaces.hooks import routes
from omnirelay.surfaces.hooks.routes import HookConnection

router = APIRouter()


def _refused(status: int, error: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error}, status_code=status)


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


# --- Viber bots -------------------------------------------------------------------------------


def apply_bot_event(ctx: AppContext, conn: HookConnection, event: viber_bot.BotEvent) -> int:
    """One transaction: what the callback says. Returns how many things it changed."""
    with ctx.db.transaction() as session:
        org, wire = conn.organization_id, "viberId"
        if event.kind == "status" and event.provider_message_id and event.status:
            messengers.status(
                session,
                org,
                conn.id,
                event.provider_message_id,
                event.status,
                event.code,
                event.error,
            )
            return 1
        if event.kind in ("subscribed", "conversation_started") and event.user_id:
            return int(messengers.learn(session, org, wire, event.user_id, event.context))
        if event.kind == "inbound" and event.user_id:
            messengers.learn(session, org, wire, event.user_id, event.phone)
            messengers.inbound(
                session,
                org,
                conn.id,
                "viber",
                text=event.text or "",
                to=str(conn.settings.get("sender_name") or "viber_bot"),
                wire=wire,
                user_id=event.user_id,
                reply_to=event.tracking_data,
                files=_files(event.file),
                provider=viber_bot.NAME,
            )
            return 1
    return 0  # webhook checks, unsubscribed: nothing to store


def _files(file: viber_bot.ViberFile | None) -> list[tuple[dict[str, Any], str]] | None:
    if file is None:
        return None
    entry: dict[str, Any] = {"name": file.name, "contentType": file.content_type}
    entry.update(size=file.size, pending=True)
    return [({k: v for k, v in entry.items() if v is not None}, file.url)]


@router.post("/viber_bot/{connection_id}", include_in_schema=False)
async def viber_bot_callback(connection_id: int, request: Request) -> Response:
    ctx = _ctx(request)
    raw = await request.body()
    conn = await routes.connection(ctx, connection_id, viber_bot.NAME)
    if conn is None:
        return _refused(404, "unknown connection")
    token = str(conn.settings.get("auth_token") or "")
    if not viber_bot.verify_signature(raw, request.headers.get("x-viber-content-signature"), token):
        return _refused(401, "invalid signature")
    try:
        payload = json.loads(raw)
    except ValueError:
        return _refused(400, "body is not JSON")
    event = viber_bot.parse_callback(payload)
    applied = await run_in_threadpool(apply_bot_event, ctx, conn, event) if event else 0
    # An empty 200: Viber would read a message body on conversation_started as a welcome.
    return Response(status_code=200, headers={"X-Applied": str(applied)})


# --- Infobip Viber business messages -----------------------------------------------------------


def apply_infobip(
    ctx: AppContext, conn: HookConnection, events: list[infobip_viber.InfobipEvent]
) -> int:
    with ctx.db.transaction() as session:
        for event in events:
            if event.kind == "status" and event.provider_message_id and event.status:
                messengers.status(
                    session,
                    conn.organization_id,
                    conn.id,
                    event.provider_message_id,
                    event.status,
                    event.code,
                    event.error,
                )
            elif event.kind == "inbound" and event.phone:
                messengers.inbound(
                    session,
                    conn.organization_id,
                    conn.id,
                    "viber",
                    text=event.text or "",
                    to=event.to or "",
                    phone=event.phone,
                )
    return len(events)


@router.post("/infobip_viber/{connection_id}", include_in_schema=False)
async def infobip_viber_callback(connection_id: int, request: Request) -> Response:
    ctx = _ctx(request)
    raw = await request.body()
    conn = await routes.connection(ctx, connection_id, infobip_viber.NAME)
    if conn is None:
        return _refused(404, "unknown connection")
    secret = str(conn.settings.get("webhook_secret") or "")
    if not infobip_viber.verify_basic(request.headers.get("authorization"), secret):
        return _refused(401, "invalid credentials")
    try:
        payload = json.loads(raw)
    except ValueError:
        return _refused(400, "body is not JSON")
    events = infobip_viber.parse_results(payload)
    applied = await run_in_threadpool(apply_infobip, ctx, conn, events) if events else 0
    return JSONResponse({"ok": True, "applied": applied})
