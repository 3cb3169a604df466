"""Every /3.0 answer: ``{"head": {"status": 200|500, "message": ...}, "data": ...}``.

Failures are HTTP 500 with head status 500 and a descriptive message, as the seed's
section 10 shows; failed authentication is HTTP 401 (with ``WWW-Authenticate``, so HTTP
clients know to send Basic credentials) and head status 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from omnirelay.errors import DomainError, RateLimited, Unauthorized

log = logging.getLogger(__name__)


def ok(message: str, data: Any) -> dict[str, Any]:
    return {"head": {"status": 200, "message": message}, "data": data}


def failure(message: str, status: int = 500, **headers: str) -> JSONResponse:
    body = {"head": {"status": 500, "message": message}, "data": None}
    return JSONResponse(body, status_code=status, headers=headers or None)


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    if isinstance(exc, Unauthorized):
        return failure(exc.message, 401, **{"WWW-Authenticate": 'Basic realm="omnirelay"'})
    if isinstance(exc, RateLimited):  # its own status; Retry-After: the surface guard
        return failure(exc.message, 429)
    return failure(exc.message)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path"))
    return failure(f"Invalid {field}: {first['msg']}.")


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return failure("Unknown API method.", 404)
    if exc.status_code == 405:
        return failure("Method not allowed for this API method.", 405)
    # Anything else (a form body that does not parse, ...) is a refusal like any other.
    return failure(str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return failure("Internal error. Please try again.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
