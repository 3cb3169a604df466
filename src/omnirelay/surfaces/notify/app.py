"""The notifications surface (seed 001) as its own app, mounted at /v3."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from omnirelay import __version__
from omnirelay.context import AppContext
from omnirelay.surfaces.guards import reject_nul_head
from omnirelay.surfaces.notify import account, errors, sends, status


def create_notify_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="omnirelay notifications API 3.0",
        version=__version__,
        description=(
            "Seed 001 (Fromni Notifications API 3.0), wire-compatible. "
            '`Authorization: Token <key>`. Success `{"result": "success", ...}`; errors '
            '`{"result": "error", "desc", "code"}` with a 4xx status. '
            "See docs/api/notifications.md."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(reject_nul_head)],  # the body: when read (surfaces.limits)
    )
    app.state.ctx = ctx
    errors.install(app)
    app.include_router(sends.router)
    app.include_router(account.router)
    app.include_router(status.router)
    return app
