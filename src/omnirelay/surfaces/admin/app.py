"""The admin surface as its own ASGI app, mounted at /api: own OpenAPI, own error shape."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from omnirelay import __version__
from omnirelay.context import AppContext
from omnirelay.surfaces.admin import (
    callbacks,
    connections,
    errors,
    gateway,
    jobs,
    messages,
    webhooks,
)
from omnirelay.surfaces.admin.routes import router
from omnirelay.surfaces.guards import reject_nul


def create_admin_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="omnirelay admin API",
        version=__version__,
        description=(
            "Tenancy and administration (seed 000). Every call carries "
            "`Ocp-Apim-Subscription-Key` and `Authorization`; `impersonatedUserExternalId` "
            "is optional. Errors: `{statusCode, code, message, errors?}`."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(reject_nul)],
    )
    app.state.ctx = ctx
    errors.install(app)
    app.include_router(router)
    app.include_router(webhooks.router)
    app.include_router(jobs.router)
    app.include_router(connections.router)
    app.include_router(messages.router)
    app.include_router(callbacks.router)
    app.include_router(gateway.router)
    return app
