"""Errors of the /user surface: seed 004 answers every API error with HTTP 500 and
``{"result": "error", ...}``; we add ``desc`` (the message) and a stable ``code``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from omnirelay.errors import DomainError, RateLimited

log = logging.getLogger(__name__)
API_ERROR = 500  # the seed's status for every API error


def error_response(
    code: str, desc: str, *, field: str | None = None, status: int = API_ERROR
) -> JSONResponse:
    body = {"result": "error", "code": code, "desc": desc}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return render(exc)


def render(exc: DomainError) -> JSONResponse:
    # A rate limit keeps its own status, so clients back off (Retry-After: the guard).
    status = 429 if isinstance(exc, RateLimited) else API_ERROR
    return error_response(exc.code, exc.message, field=exc.field, status=status)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    if first["type"] == "json_invalid":  # its loc is a character position, not a field
        return error_response("invalid_json", "The body is not valid JSON")
    field = ".".join(str(p) for p in first["loc"] if p != "body")
    if not field:  # the body itself: absent, or not an object
        return error_response("invalid_body", "The body must be a JSON object")
    if first["type"] == "missing":
        return error_response("missing_field", f'No field "{field}"', field=field)
    return error_response("invalid_field", f"{field}: {first['msg']}", field=field)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return JSONResponse(
            {"result": "error", "code": "not_found", "desc": "Method not found"}, status_code=404
        )
    if exc.status_code == 405:
        return JSONResponse(
            {"result": "error", "code": "method_not_allowed", "desc": "Use POST"}, status_code=405
        )
    return error_response("http_error", str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response("internal_error", "Internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
