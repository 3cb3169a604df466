"""``POST /hooks/telegram/<connection id>``: the updates Telegram sends a bot whose
connection has a public ``webhook_url`` (setWebhook with a secret token).

The ``X-Telegram-Bot-Api-Secret-Token`` header is checked before the body is read;
an accepted update is stored as a ``telegram.update`` job before the answer, so a 200
means it will be applied (Telegram sends again what was not answered 2xx)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from omnirelay.channels.telegram_updates import SECRET_HEADER, update_id, verify_secret
from omnirelay.context import AppContext
from omnirelay.surfaces.hooks import routes
from omnirelay.telegram import service

router = APIRouter(tags=["telegram"])


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": text}, status_code=status)


@router.post("/telegram/{connection_id}", include_in_schema=False)
async def telegram_update(connection_id: int, request: Request) -> JSONResponse:
    ctx: AppContext = request.app.state.ctx
    found = await routes.connection(ctx, connection_id, "telegram")
    if found is None:
        return _error(404, "unknown connection")
    secret = found.settings.get("webhook_secret")
    if not verify_secret(
        request.headers.get(SECRET_HEADER), secret if isinstance(secret, str) else None
    ):
        return _error(401, "invalid secret token")
    raw = await request.body()
    try:
        update = json.loads(raw)
    except ValueError:
        return _error(400, "the body is not JSON")
    if update_id(update) is None:
        return _error(400, "not a Telegram Update (no update_id)")

    def store() -> None:
        with ctx.db.transaction() as session:
            service.enqueue_updates(session, found.organization_id, found.id, [update])

    await run_in_threadpool(store)
    return JSONResponse({"ok": True})
