"""Errors of /v3 as the wire notes show them: ``{"result": "error", "desc": ..., "code": n}``
(``code`` where the seed's table gives one), with an HTTP status that says the class."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from omnirelay.errors import DomainError, RateLimited, Unauthorized
from omnirelay.messaging.errors import SendError
from omnirelay.templates.service import TemplateError

log = logging.getLogger(__name__)


def error_body(desc: str, number: int | None = None, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"result": "error", "desc": desc}
    if number is not None:
        body["code"] = number
    if field:
        body["field"] = field
    return body


def render(exc: DomainError) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, SendError | TemplateError):
        return exc.status, error_body(exc.message, exc.number, exc.field)
    if isinstance(exc, RateLimited):  # Retry-After: the surface guard adds it
        return 429, error_body(exc.message)
    if isinstance(exc, Unauthorized):
        return 401, error_body(f"Authorization error: {exc.message}", 1003)
    if exc.status == 404:
        return 404, error_body(exc.message, 1029, exc.field)
    return exc.status, error_body(exc.message, 1021, exc.field)


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status, body = render(exc)
    return JSONResponse(body, status_code=status)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "header"))
    if first["type"] == "missing" and field:
        return JSONResponse(error_body(f'No field "{field}"', None, field), status_code=400)
    return JSONResponse(
        error_body(f"Invalid argument: {field}: {first['msg']}", 1021, field), status_code=400
    )


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return JSONResponse(error_body("Method not found"), status_code=404)
    if exc.status_code == 405:
        return JSONResponse(error_body("Method not allowed"), status_code=405)
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("Internal error", 1001), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
