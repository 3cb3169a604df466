"""The hot path of ``/user/notifications/send``: answered by a plain ASGI layer.

As for /v3's single sends (surfaces/notify/hot.py, ADR 24), FastAPI's middleware, routing
and dependency injection cost more per request than the work; this layer answers the
request itself, on the event loop, when it is the ordinary case: a known token, a body
of at most the surface's limit with nothing the surface guard refuses, valid for the
route's model. The work is the route's (``notifications.accept``), the checks are the
route's in its order (token, rate limit, body, then the service's), the answers the
surface's (surfaces/platform/errors.py, X-RateLimit-* headers).

Anything else (an anonymous or bad token, a NUL anywhere, a body too large, too deep,
not JSON, not valid for the model, another content type) goes on to the FastAPI app with
the body it was already read replayed, so every refusal is the route's own answer, word
for word, and the rate limit is counted once (the hot path counts only requests it
answers itself).
"""

from __future__ import annotations

import logging

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnirelay.context import AppContext
from omnirelay.errors import DomainError, Unauthorized
from omnirelay.ratelimit.limiter import headers as limit_headers
from omnirelay.surfaces.guards import JSON_NUL
from omnirelay.surfaces.limits import json_problem
from omnirelay.surfaces.platform import errors
from omnirelay.surfaces.platform import notifications as route
from omnirelay.surfaces.ratelimits import enforce

log = logging.getLogger(__name__)
PATH = "/user/notifications/send"


def _replay(chunks: list[bytes], more: bool, receive: Receive) -> Receive:
    """``receive`` with the body read so far given back first."""
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": more}]

    async def again() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return again


def _json(content_type: bytes | None) -> bool:
    # The content types the route reads as JSON (none at all, application/json, +json);
    # FastAPI's own rules decide for the others.
    if content_type is None:
        return True
    main = content_type.split(b";", 1)[0].strip().lower()
    return main == b"application/json" or (
        main.startswith(b"application/") and main.endswith(b"+json")
    )


class HotNotifications:
    """ASGI middleware of the root app for ``POST /user/notifications/send``."""

    def __init__(self, app: ASGIApp, ctx: AppContext, path: str = PATH) -> None:
        self.app = app
        self.ctx = ctx
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("path") != self.path
            or b"%00" in scope.get("query_string", b"")
        ):
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        content_type: bytes | None = None
        length = -1
        for name, value in scope["headers"]:
            if b"\x00" in value:
                await self.app(scope, receive, send)  # the guard's refusal
                return
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        settings = self.ctx.settings
        limit = settings.max_body_bytes
        if length > limit or not _json(content_type):
            await self.app(scope, receive, send)
            return
        try:
            organization_id = self.ctx.tokens.organization(authorization)
        except Unauthorized:
            await self.app(scope, receive, send)  # PreAuth's answer (and its accounting)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody to answer
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body"))
            if size > limit or not more:
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        body: route.NotificationBody | None = None
        if (
            not more
            and raw.strip()
            and JSON_NUL.search(raw) is None
            and json_problem(raw, settings.max_json_string_bytes) is None
        ):
            try:
                body = route.NotificationBody.model_validate(orjson.loads(raw))
            except (orjson.JSONDecodeError, ValidationError):
                body = None
        if body is None:
            await self.app(scope, _replay(chunks, more, receive), send)
            return
        try:
            answer = await self._accept(scope, organization_id, body)
        except Exception:
            log.exception("unhandled error on POST %s", self.path)
            answer = errors.error_response("internal_error", "Internal server error")
        decision = scope.get("state", {}).get("ratelimit")
        if decision is not None:
            answer.headers.update(limit_headers(decision))
        await answer(scope, receive, send)

    async def _accept(
        self, scope: Scope, organization_id: str, body: route.NotificationBody
    ) -> JSONResponse:
        try:
            enforce(Request(scope), self.ctx, organization_id)  # the organization's limit
            request = route.to_request(body)
            message_id = await route.accept(self.ctx, organization_id, request)
        except DomainError as exc:
            return errors.render(exc)
        return JSONResponse(route.Sent(id=message_id).model_dump())
