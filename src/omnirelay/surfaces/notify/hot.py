"""The hot path of /v3: the single send methods answered by a plain ASGI layer.

``sendSMS``, ``sendViber``, ``sendVK``, ``sendTelegram``, ``send`` and ``sendSimple``
without an ``Idempotency-Key`` are the requests a busy client makes thousands of times a
second. FastAPI's routing, dependency injection and response classes cost ~140 µs a
request, more than the rest of the work (measured: docs/performance.md), so this layer sits
in front of the /v3 app and answers them itself, on the event loop, with no thread: the
token from the process's cache, the body read with a limit and decoded once, validated by
the same parse functions as every other send, handed to the group commit, answered after
the commit. It only translates the wire: the work is ``accept_draft``, which the FastAPI
routes (the OpenAPI document, the Idempotency-Key case) share.

Everything else (other paths and methods, requests with an Idempotency-Key) goes on to the
FastAPI app unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnirelay.blocklist.service import ip_blocked
from omnirelay.context import AppContext
from omnirelay.db import utcnow
from omnirelay.errors import DomainError, RateLimited, Unauthorized
from omnirelay.messaging import errors as e
from omnirelay.messaging import validation
from omnirelay.messaging.validation import Draft, Rules
from omnirelay.ratelimit.limiter import headers as limit_headers
from omnirelay.surfaces.guards import JSON_NUL
from omnirelay.surfaces.limits import json_problem
from omnirelay.surfaces.notify.errors import error_body, render
from omnirelay.surfaces.ratelimits import refused_anonymous

log = logging.getLogger(__name__)


Parse = Callable[[Any, Rules], Draft]


def _single(method: str, channel: str) -> Parse:
    return lambda body, rules: validation.single(method, channel, body, rules, utcnow())


PARSERS: dict[str, Parse] = {
    "/sendSMS": _single("sendSMS", "sms"),
    "/sendViber": _single("sendViber", "viber"),
    "/sendVK": _single("sendVK", "vk"),
    "/sendTelegram": _single("sendTelegram", "telegram"),
    "/send": lambda body, rules: validation.omnichannel(body, rules, utcnow()),
    "/sendSimple": lambda body, rules: validation.simple(body, rules, utcnow()),
}


def accepted(message_id: str) -> dict[str, Any]:
    """The answer to a send (the wire notes: clients read ``status``)."""
    return {"result": "success", "id": message_id, "status": "accepted"}


def decode(raw: bytes, max_string: int) -> Any:
    """A send body, or the seed's "No params" (empty, not JSON, not UTF-8, or what the
    surface guard refuses in every body: too deep, a lone surrogate, a string too long)."""
    if not raw.strip() or json_problem(raw, max_string) is not None:
        raise e.no_params()
    try:
        return orjson.loads(raw)  # refuses nesting over 1,024 and lone surrogates itself
    except orjson.JSONDecodeError:
        raise e.no_params() from None


def too_large(limit: int) -> e.SendError:
    # The surface guard's words (surfaces/limits.py): the same refusal either way.
    return e.SendError(1021, f"request body too large: at most {limit} bytes", status=413)


def nul_refused(where: str) -> e.SendError:
    # The words of the routes' check (surfaces/guards.py).
    return e.SendError(1021, f"Invalid argument: NUL characters (U+0000) are not allowed ({where})")


class HotSends:
    """ASGI middleware of the root app for ``/v3/message/<single send>``."""

    def __init__(self, app: ASGIApp, ctx: AppContext, prefix: str = "/v3/message") -> None:
        self.app = app
        self.ctx = ctx
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(self.prefix)
            or (parse := PARSERS.get(path[len(self.prefix) :])) is None
        ):
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        length = -1
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"idempotency-key":
                # Its stored answer commits with its message: the FastAPI route's own
                # transaction (surfaces/notify/sends.py).
                await self.app(scope, receive, send)
                return
            elif name == b"content-length" and value.isdigit():
                length = int(value)
            if b"\x00" in value:
                await _answer(send, *render(nul_refused("in a header")), {})
                return
        try:
            status, answer = await self._accept(scope, receive, authorization, length, parse)
        except Exception:
            log.exception("unhandled error on POST %s", path)
            status, answer = 500, error_body("Internal error", 1001)
        # X-RateLimit-* on every answer, Retry-After on a 429 (as the surface guard adds
        # them to the routed answers: surfaces/limits.py).
        decision = scope.get("state", {}).get("ratelimit")
        extra = limit_headers(decision) if decision is not None else {}
        await _answer(send, status, answer, extra)

    async def _accept(
        self, scope: Scope, receive: Receive, authorization: str | None, length: int, parse: Parse
    ) -> tuple[int, dict[str, Any]]:
        try:
            # An announced size over the limit is refused at once (as the surface guard
            # does, surfaces/limits.py); then the caller; only then its body, so an
            # anonymous body is never read.
            settings = self.ctx.settings
            limit = settings.max_body_bytes  # as the surface guard (an omnichannel route
            # of ten 4,096-character steps is ~100 KB)
            if length > limit:
                raise too_large(limit)
            if b"%00" in scope.get("query_string", b""):
                raise nul_refused("in the query")
            try:
                organization_id = self.ctx.tokens.organization(authorization)
            except Unauthorized as exc:
                raise refused_anonymous(Request(scope), self.ctx, exc) from None
            # The organization's rate limit, as surfaces/ratelimits.enforce (its decision
            # where Request.state keeps it) without a Request object per send.
            decision = self.ctx.limiter.check(organization_id)
            scope.setdefault("state", {})["ratelimit"] = decision
            if not decision.allowed:
                raise RateLimited(decision.reset_seconds)
            client = scope.get("client")
            if ip_blocked(self.ctx.db, organization_id, client[0] if client else None):
                raise e.blocked_ip()  # seed 001 code 1013 (the organization's IP block list)
            raw = await _read_body(receive, limit)
            if JSON_NUL.search(raw) is not None:
                raise nul_refused("in the body")
            draft = parse(decode(raw, settings.max_json_string_bytes), self.ctx.rules)
            message_id = await self.ctx.accepts.accept(organization_id, draft)
        except DomainError as exc:
            return render(exc)
        return 200, accepted(message_id)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise e.no_params()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # a chunked body has no Content-Length to refuse it by
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, answer: dict[str, Any], extra: dict[str, str]) -> None:
    body = orjson.dumps(answer)
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(len(body)).encode()),
    ]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
