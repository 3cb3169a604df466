"""The guard in front of every surface (pure ASGI, no thread hop): body limits, JSON
hygiene, and the rate-limit headers on every answer.

- A body over the surface's limit is refused with 413 in the surface's own shape: at
  once when ``Content-Length`` says so, before a byte is read; while streaming otherwise
  (chunked bodies), as soon as the count passes the limit.
- Bodies are read only when the surface asks for them, so a route that checks the caller
  first never reads a stranger's body (on ``/v3`` and ``/3.0`` the NUL check of the body
  runs here, when it is read, instead of before the route). Multipart bodies (uploads)
  are streamed to the surface under their own, larger limit; other bodies are handed
  over whole.
- A JSON body nested deeper than ``MAX_DEPTH``, with a string longer than the string
  limit, or with an unpaired surrogate escape (``"\\udc80"``) is handed to the surface
  as a body that is not JSON, so it gets the surface's documented "invalid JSON"
  refusal instead of a recursion error or an encoding failure in the database (a 5xx).
- ``X-RateLimit-Limit/Remaining/Reset`` (and ``Retry-After`` on a 429) from the decision
  the surface's authentication left in ``scope["state"]["ratelimit"]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnirelay.ratelimit.limiter import Decision, headers
from omnirelay.surfaces.guards import check_body_nul

MAX_DEPTH = 64
NOT_JSON = b"{"  # what a refused JSON body becomes: every surface refuses it as invalid JSON

# An unpaired UTF-16 surrogate escape, after an even run of backslashes.
_ESC = rb"(?<!\\)(?:\\\\)*"
_LONE_HIGH = re.compile(_ESC + rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_LONE_LOW = re.compile(
    rb"(?<!\\u[dD][89abAB][0-9a-fA-F]{2})" + _ESC + rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: C speed
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _split(body: bytes) -> tuple[list[bytes], list[bytes]] | None:
    """(outside strings, inside strings) by splitting on quotes, when no quote is
    escaped (most bodies): C speed. None: use the regex."""
    if b'\\"' in body:
        return None
    pieces = body.split(b'"')
    return pieces[0::2], pieces[1::2]


def _too_deep(outside: bytes) -> bool:
    """Brackets only, then innermost pairs removed a level per round (each round is two
    C-speed replaces): what is left after MAX_DEPTH rounds is deeper."""
    brackets = outside.translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if shorter == brackets:
            return True  # unbalanced: not JSON either (and a parser would recurse into it)
        brackets = shorter
    return bool(brackets)


def json_problem(body: bytes, max_string: int) -> str | None:
    """Why a JSON-looking body is refused, or None. Cheap first: most bodies are small
    and shallow, and are let through by counting alone."""
    deep = body.count(b"[") + body.count(b"{") > MAX_DEPTH
    long = len(body) > max_string + 2
    split = _split(body) if deep or long else None
    if deep:
        outside = b"".join(split[0]) if split is not None else _STRING.sub(b"", body)
        if _too_deep(outside):
            return f"nested deeper than {MAX_DEPTH} levels"
    if b"\\u" in body and (_LONE_HIGH.search(body) or _LONE_LOW.search(body)):
        return "unpaired surrogate escape"
    if long:
        if split is not None:
            strings = split[1]
            found = bool(strings) and max(map(len, strings)) > max_string
        else:
            found = any(m.end() - m.start() - 2 > max_string for m in _STRING.finditer(body))
        if found:
            return f"a string longer than {max_string} bytes"
    return None


# --- the surfaces' shapes for 413 and 429 -------------------------------------------------

Shape = Callable[[int, str, str], tuple[int, dict[str, Any]]]


def _admin(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"statusCode": status, "code": code, "message": message}


def _notify(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    if status == 413:
        return status, {"result": "error", "desc": message, "code": 1021}
    return status, {"result": "error", "desc": message}


def _platform(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"result": "error", "code": code, "desc": message}


def _callback(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"head": {"status": 500, "message": message}, "data": None}


def _gateway(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"reason": message, "status": False}


def _hooks(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"ok": False, "error": message}


# Surfaces whose routes read their body by hand after the caller is known: the guard
# checks it for NUL when it is read (their app-level guard checks only path and headers).
CHECK_NUL_ON_READ = ("/v3", "/3.0")

SHAPES: dict[str, Shape] = {
    "/api": _admin,
    "/v3": _notify,
    "/user": _platform,
    "/3.0": _callback,
    "/hooks": _hooks,
    "": _gateway,
}

TOO_LARGE = "request body too large"
RATE_LIMITED = "rate limit exceeded"


def rate_limited_body(prefix: str, decision: Decision) -> tuple[int, dict[str, Any]]:
    message = f"Rate limit is exceeded. Try again in {decision.reset_seconds} seconds."
    if prefix == "":
        message = "rate limit exceeded"
    return SHAPES.get(prefix, _platform)(429, "rate_limit_exceeded", message)


async def answer(send: Send, status: int, body: dict[str, Any], extra: dict[str, str]) -> None:
    raw = json.dumps(body, separators=(",", ":")).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


class _TooLarge(BaseException):
    """Raised out of ``receive`` into the surface: a BaseException, so no exception
    handler of the surface turns it into a 500; the guard answers instead."""


def _limits(scope: Scope) -> tuple[int, int, int]:
    ctx = scope["app"].state.ctx if "app" in scope else None
    settings = getattr(ctx, "settings", None)
    body = int(getattr(settings, "max_body_bytes", 1 << 20))
    upload = int(getattr(settings, "max_upload_bytes", 64 << 20))
    string = int(getattr(settings, "max_json_string_bytes", 256 << 10))
    return body, upload, string


class SurfaceGuard:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.shape = SHAPES.get(prefix, _platform)
        self.check_nul = prefix in CHECK_NUL_ON_READ

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        body_limit, upload_limit, max_string = _limits(scope)
        ctype, length = "", None
        for key, value in scope["headers"]:
            if key == b"content-type":
                ctype = value.decode("latin-1").lower()
            elif key == b"content-length":
                length = value
        multipart = ctype.startswith("multipart/")
        limit = upload_limit if multipart else body_limit
        started = False

        def rate_headers() -> dict[str, str]:
            decision = state.get("ratelimit")
            return headers(decision) if isinstance(decision, Decision) else {}

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = rate_headers()
                if extra:
                    names = {k.lower().encode() for k in extra}
                    kept = [(k, v) for k, v in message.get("headers", []) if k not in names]
                    kept += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
                    message = {**message, "headers": kept}
            await send(message)

        async def too_large() -> None:
            status, body = self.shape(
                413, "payload_too_large", f"{TOO_LARGE}: at most {limit} bytes"
            )
            await answer(send, status, body, {"connection": "close", **rate_headers()})

        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > limit:
                await too_large()
                return

        delivered = False
        received = 0

        async def receive_stream() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def receive_whole() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            chunks: list[bytes] = []
            while True:
                message = await receive_stream()
                if message["type"] != "http.request":
                    return message
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            delivered = True
            body = b"".join(chunks)
            if self.check_nul:
                check_body_nul(body, ctype)  # InvalidInput: the surface's own refusal
            head = body[:64].lstrip()[:1]
            form = ctype.startswith("application/x-www-form-urlencoded")
            if head in (b"{", b"[") and not form and json_problem(body, max_string):
                body = NOT_JSON
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            await self.app(scope, receive_stream if multipart else receive_whole, send_wrapper)
        except _TooLarge:
            if not started:
                await too_large()
        except BaseExceptionGroup as group:  # an anyio task group wrapped it
            matched, rest = group.split(_TooLarge)
            if matched is None:
                raise
            if not started:
                await too_large()
            if rest is not None:
                raise rest from None
