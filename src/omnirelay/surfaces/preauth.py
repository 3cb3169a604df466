"""Credentials checked before a body is read (issue 18 item 4).

FastAPI reads and parses a request's body before it solves the route's dependencies, so a
caller with no valid credentials could make the server read (and decode) a body up to the
surface's limit before being refused. This layer sits in front of a surface's app: a
request that carries a body has its credentials checked from the headers alone, and a
refusal is answered at once, in the surface's own words, without reading a byte of it.
The routes still authenticate as before (a pass here grants nothing).

Requests without a body are left to the routes, which answer them just as fast.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

# A refusal to answer, or None to let the request through.
Check = Callable[[Request], Awaitable[Response | None]]


def has_body(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return value.strip() not in (b"0", b"")
        if key == b"transfer-encoding":
            return True
    return False


class PreAuth:
    def __init__(self, app: ASGIApp, check: Check, exempt: tuple[str, ...] = ()) -> None:
        # ``exempt``: path prefixes (inside the surface) that other credentials guard, e.g.
        # the media form target, which its slot's signature authorises.
        self.app = app
        self.check = check
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and has_body(scope) and not self._exempt(scope):
            refused = await self.check(Request(scope))
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _exempt(self, scope: Scope) -> bool:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return any(path.startswith(prefix) for prefix in self.exempt)
