"""Response header names in canonical capitalisation (``Content-Type``, ``Retry-After``),
on every answer of every surface, errors included.

HTTP says names are case-insensitive, but client code of the seed services looks
``Content-Type`` up case-sensitively. Starlette keeps names lower-case, so this pure ASGI
middleware, around the whole root app (outside its error middleware and its hot path), rewrites
the names of every ``http.response.start``. It also adds ``Date`` when the answer has none:
``omnirelay serve`` turns uvicorn's own lower-case ``date``/``server`` headers off, and
runs uvicorn's h11 protocol, which writes names as given (httptools lower-cases them all;
ADR 24)."""

from __future__ import annotations

import time
from email.utils import formatdate
from functools import lru_cache

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Names whose usual spelling is not "each word capitalised".
_SPECIAL = {
    b"www-authenticate": b"WWW-Authenticate",
    b"etag": b"ETag",
    b"content-md5": b"Content-MD5",
    b"x-ratelimit-limit": b"X-RateLimit-Limit",
    b"x-ratelimit-remaining": b"X-RateLimit-Remaining",
    b"x-ratelimit-reset": b"X-RateLimit-Reset",
    b"x-xss-protection": b"X-XSS-Protection",
}


@lru_cache(maxsize=512)  # the app sends a few dozen distinct names
def canonical(name: bytes) -> bytes:
    """``content-type`` -> ``Content-Type``; ``x-ratelimit-limit`` -> ``X-RateLimit-Limit``."""
    lower = name.lower()
    special = _SPECIAL.get(lower)
    if special is not None:
        return special
    return b"-".join(part[:1].upper() + part[1:] for part in lower.split(b"-"))


class _Clock:
    """The ``Date`` value, formatted once a second."""

    second = -1
    value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.value = formatdate(second, usegmt=True).encode("ascii")
            self.second = second
        return self.value


_clock = _Clock()


class CanonicalHeaders:
    """ASGI middleware: ``CanonicalHeaders(app)``, or :meth:`wrap` from an app's own
    ``__call__`` (the root app's, so that its hot path is covered too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.wrap(scope, receive, send, self.app)

    @staticmethod
    async def wrap(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_canonical(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(canonical(k), v) for k, v in message.get("headers", [])]
                if not any(k == b"Date" for k, _ in headers):
                    headers.insert(0, (b"Date", _clock.now()))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_canonical)
