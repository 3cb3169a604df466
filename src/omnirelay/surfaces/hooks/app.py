"""The provider-webhook surface, mounted at /hooks.

Providers POST their events (statuses, inbound messages) to
``/hooks/<provider>/<connection id>``. Each provider module contributes one router;
every route verifies the provider's signature or secret on the raw body before reading
anything from it, and answers in the shape the provider expects. The error shape of the
surface itself (413, 429, unknown paths) is ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from omnirelay import __version__
from omnirelay.context import AppContext
from omnirelay.surfaces.hooks import routes


def create_hooks_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="omnirelay provider webhooks",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"ok": False, "error": str(exc.detail)}, status_code=exc.status_code)

    # Explicit wiring: one router per provider (surfaces/hooks/<provider>.py).
    for router in routes.routers():
        app.include_router(router)
    return app
