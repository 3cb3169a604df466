"""The call-back surface (seed 003) as its own app, mounted at /3.0."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from omnirelay import __version__
from omnirelay.context import AppContext
from omnirelay.surfaces.callback import envelope, optins
from omnirelay.surfaces.callback.routes import router
from omnirelay.surfaces.guards import reject_nul_head


class StripJsonSuffix:
    """Every path may end in ``.json`` (``/3.0/profiles.json``): route it without."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(".json"):
            scope = dict(scope)
            scope["path"] = scope["path"][: -len(".json")]
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.endswith(b".json"):
                scope["raw_path"] = raw[: -len(b".json")]
        await self.app(scope, receive, send)


def create_callback_app(ctx: AppContext) -> ASGIApp:
    app = FastAPI(
        title="omnirelay call-back API 3.0",
        version=__version__,
        description=(
            "Seed 003 (call-back requests), wire-compatible. HTTP Basic: account SID and "
            "auth token. Every path takes an optional `.json` suffix; bodies are form or "
            'JSON; answers are `{"head": {"status", "message"}, "data"}`. '
            "See docs/api/callbacks.md."
        ),
        openapi_url="/openapi",  # reached as /3.0/openapi.json: the suffix is stripped
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(reject_nul_head)],  # the body: when read (surfaces.limits)
    )
    app.state.ctx = ctx
    envelope.install(app)
    app.include_router(router)
    app.include_router(optins.router)
    return StripJsonSuffix(app)
