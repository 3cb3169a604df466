"""The WhatsApp gateway surface (seed 002) as its own app, mounted at the root.

Every answer is JSON with ``status``: true with the seed's fields, or false with
``reason`` (``detail`` where the seed says so). Unknown paths and methods answer the same
way, so a client never sees another shape."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from omnirelay import __version__
from omnirelay.context import AppContext
from omnirelay.errors import RateLimited
from omnirelay.surfaces.gateway.limits import TokenRefused, gateway_limit
from omnirelay.surfaces.gateway.routes import router

log = logging.getLogger(__name__)


def refused(reason: str, key: str = "reason", status: int = 200) -> JSONResponse:
    return JSONResponse({key: reason, "status": False}, status_code=status)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return refused("unknown api", status=404)
    if exc.status_code == 405:
        return refused("method not allowed", status=405)
    # Anything else (a body that does not parse, ...) is a refusal: HTTP 200, as the seed's.
    return refused("input invalid")


async def _rate_limited(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)  # headers: the surface guard adds them
    return refused("rate limit exceeded", status=429)


async def _token_refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TokenRefused)
    return refused(exc.reason, exc.key)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return refused("server error, try again", status=500)


def create_gateway_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="omnirelay WhatsApp gateway",
        version=__version__,
        description=(
            "Seed 002 (WhatsApp gateway), wire-compatible, at the root paths. Header "
            "`Authorization: <token>`: the device token, or the account token for "
            "/get-devices and /add-device. Bodies: multipart, urlencoded or JSON. "
            "See docs/api/gateway.md."
        ),
        openapi_url="/gateway/openapi.json",
        docs_url="/gateway/docs",
        redoc_url=None,
        dependencies=[Depends(gateway_limit)],
    )
    app.state.ctx = ctx
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(TokenRefused, _token_refused)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(router)
    return app
