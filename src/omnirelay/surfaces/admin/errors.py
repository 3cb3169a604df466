"""The admin API's one error shape:
``{"statusCode": 401, "code": "invalid_subscription_key", "message": "...", "errors": [...]}``.

``statusCode`` + ``message`` is the shape API gateways answer seed 000 clients with;
``code`` is stable for programs, ``errors`` names each invalid field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from omnirelay.errors import DomainError, RateLimited

log = logging.getLogger(__name__)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"statusCode": status, "code": code, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return render(exc)


def render(exc: DomainError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return error_response(exc.status, exc.code, exc.message, errors=errors, headers=headers)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field_path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return error_response(400, "validation_error", f"Invalid request: {summary}", errors=errors)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "Internal server error.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
