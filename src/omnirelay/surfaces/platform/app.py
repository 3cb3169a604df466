"""The platform surface (seed 004), mounted at /user."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from omnirelay import __version__
from omnirelay.context import AppContext
from omnirelay.surfaces.guards import reject_nul
from omnirelay.surfaces.platform import contacts, deals, errors, templates
from omnirelay.surfaces.platform.channels import router as channels_router
from omnirelay.surfaces.platform.media import install as install_media
from omnirelay.surfaces.platform.notifications import router as notifications_router
from omnirelay.surfaces.platform.routes import router
from omnirelay.surfaces.platform.webchat import router as webchat_router
from omnirelay.surfaces.preauth import PreAuth
from omnirelay.surfaces.token import preauth


def create_platform_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="omnirelay platform API",
        version=__version__,
        description=(
            "Seed 004 platform methods. `Authorization: Token <key>`; every method is POST; "
            'success is 200 `{"result": "success", ...}`, an API error is 500 '
            '`{"result": "error", "code", "desc"}`.'
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(reject_nul)],
    )
    app.state.ctx = ctx
    errors.install(app)
    # The media form target is authorised by its slot, not a token (media.py).
    app.add_middleware(PreAuth, check=preauth(ctx, errors.render), exempt=("/media/store/",))
    app.include_router(router)
    app.include_router(channels_router)
    app.include_router(notifications_router)
    install_media(app)
    app.include_router(contacts.router)
    app.include_router(deals.router)
    app.include_router(templates.router)
    app.include_router(webchat_router)
    return app
