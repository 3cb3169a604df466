"""The admin surface as its own ASGI app, mounted at /api: own OpenAPI, own error shape."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from omnirelay import __version__
from omnirelay.context import AppContext
from omnirelay.surfaces.admin import (
    blocklist,
    callbacks,
    connections,
    errors,
    gateway,
    jobs,
    messages,
    webhooks,
)
from omnirelay.surfaces.admin.deps import preauth, project_scoped
from omnirelay.surfaces.admin.routes import router
from omnirelay.surfaces.guards import reject_nul
from omnirelay.surfaces.preauth import PreAuth


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
    app.add_middleware(PreAuth, check=preauth(ctx))
    app.include_router(router)  # identity, organizations, users: each checks its own caller
    # Everything else acts on one organization's projects: a workspace token without
    # impersonatedUserExternalId is refused on all of it (403 impersonation_required).
    project = [Depends(project_scoped)]
    for module in (webhooks, jobs, connections, messages, callbacks, gateway, blocklist):
        app.include_router(module.router, dependencies=project)
    return app
