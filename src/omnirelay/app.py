"""The HTTP application: every surface mounted on one root app, workers in its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from omnirelay import __version__
from omnirelay.config import Settings, get_settings
from omnirelay.context import AppContext
from omnirelay.db import Database
from omnirelay.runtime import Runtime
from omnirelay.surfaces.admin.app import create_admin_app
from omnirelay.surfaces.callback.app import create_callback_app
from omnirelay.surfaces.gateway.app import create_gateway_app
from omnirelay.surfaces.headers import CanonicalHeaders
from omnirelay.surfaces.hooks.app import create_hooks_app
from omnirelay.surfaces.mount import SurfaceMount
from omnirelay.surfaces.notify.app import create_notify_app
from omnirelay.surfaces.notify.hot import HotSends
from omnirelay.surfaces.platform.app import create_platform_app
from omnirelay.surfaces.platform.hot import HotNotifications
from omnirelay.surfaces.webchat.app import create_webchat_app

log = logging.getLogger(__name__)


class RootApp(FastAPI):
    """The root app. The busiest requests (single /v3 sends) are answered before
    FastAPI's own middleware and routing, which cost more than the work itself
    (surfaces/notify/hot.py); everything else goes through FastAPI as usual. Every
    answer, the hot path's too, leaves through :class:`CanonicalHeaders` (ADR 24)."""

    hot: HotSends | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await CanonicalHeaders.wrap(scope, receive, send, self._inner)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot is not None:
            await self.hot(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, db: Database | None = None, run_workers: bool = False
) -> FastAPI:
    settings = settings or get_settings()
    ctx = AppContext(
        settings=settings,
        db=db or Database(settings.database_url, pool_size=settings.database_pool_size),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(ctx.db, settings) if run_workers else None
        if runtime is not None:
            runtime.start()
        ctx.accepts.start()
        try:
            yield
        finally:
            ctx.accepts.stop()  # commits what is queued before the database goes
            ctx.limiter.stop()
            if runtime is not None:
                runtime.stop()

    app = RootApp(
        title="omnirelay", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.ctx = ctx

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.router.routes.append(SurfaceMount("/api", create_admin_app(ctx)))
    app.router.routes.append(SurfaceMount("/user", create_platform_app(ctx)))
    app.router.routes.append(SurfaceMount("/v3", create_notify_app(ctx)))
    app.router.routes.append(SurfaceMount("/3.0", create_callback_app(ctx)))
    app.router.routes.append(SurfaceMount("/hooks", create_hooks_app(ctx)))
    app.router.routes.append(SurfaceMount("/webchat", create_webchat_app(ctx)))
    # Seed 002 lives at the root paths (/send, /device, ...): mounted last, it gets what
    # no other surface took.
    app.router.routes.append(SurfaceMount("", create_gateway_app(ctx)))
    # /v3's single sends, then /user/notifications/send, before FastAPI (ADR 24, 36).
    app.hot = HotSends(HotNotifications(app.routed, ctx), ctx)
    return app
