"""Rate limits of the gateway surface (seed 002), as an app-level dependency: the seed's
methods find their caller inside their own transaction, so the organization of the token
is looked up here first (a read, cached briefly: the limit is keyed by it, the
authentication itself stays the method's)."""

from __future__ import annotations

import threading
import time

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from omnirelay.context import AppContext, get_context
from omnirelay.errors import Unauthorized
from omnirelay.gateway import service
from omnirelay.security import hash_secret
from omnirelay.surfaces.preauth import has_body
from omnirelay.surfaces.ratelimits import enforce, enforce_ip, refused_anonymous

# Paths that are not the seed's methods: providers calling in (verified by their own
# signatures), the surface's OpenAPI and docs.
UNLIMITED = ("/gateway/",)
OTP_PATHS = ("/delete-device",)
# What each method answers for a missing or wrong token, in the seed's words and key.
TOKEN_ANSWERS: dict[str, tuple[str, str]] = {
    "send": ("token invalid", "reason"),
    "device": ("token invalid", "reason"),
    "disconnect": ("token invalid", "detail"),
    "update-device": ("device not found", "reason"),
    "delete-device": ("invalid device", "reason"),
    "qr": ("token invalid", "reason"),
    "validate": ("token invalid", "reason"),
    "status": ("token invalid", "reason"),
    "delete-message": ("token invalid", "reason"),
    "reset-message": ("token invalid", "reason"),
    "get-devices": ("unknown user", "reason"),
    "add-device": ("unknown user", "reason"),
}


class TokenRefused(Exception):
    """A seed method's answer to a wrong token, given before its body is read."""

    def __init__(self, reason: str, key: str) -> None:
        super().__init__(reason)
        self.reason, self.key = reason, key


CACHE_SECONDS = 60.0
CACHE_MAX = 100_000


class _TokenOrgs:
    """token digest -> organization id, for a minute (a deleted device's token may keep
    counting against its organization that long; it authenticates nothing)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[bool, str | None]:
        with self._lock:
            found = self._items.get(digest)
        if found is None or found[1] < time.monotonic():
            return False, None
        return True, found[0]

    def put(self, digest: str, org: str | None) -> None:
        with self._lock:
            if len(self._items) >= CACHE_MAX:
                self._items.clear()
            self._items[digest] = (org, time.monotonic() + CACHE_SECONDS)


_orgs = _TokenOrgs()


def _lookup(ctx: AppContext, token: str) -> str | None:
    with ctx.db.read() as session:
        device = service.device_by_token(session, token)
        if device is not None:
            return device.organization_id
        account = service.account_by_token(session, token)
        return account.organization_id if account is not None else None


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header and header.strip():
        return header.strip()
    query = request.query_params.get("token")
    if request.method == "GET" and query:
        first = query.split(",")[0].strip()
        return first or None
    return None


async def gateway_limit(request: Request) -> None:
    path = request.url.path
    if any(path.startswith(p) for p in UNLIMITED):
        return
    ctx = get_context(request)
    if path in OTP_PATHS:
        enforce_ip(request, ctx, "otp", ctx.settings.rate_limit_otp_requests)
    token = _token(request)
    org: str | None = None
    if token:
        digest = hash_secret(token)
        cached, org = _orgs.get(digest)
        if not cached:
            org = await run_in_threadpool(_lookup, ctx, token)
            _orgs.put(digest, org)
    if org is None:
        # Not a caller we know: the method answers in the seed's words, unless this
        # address has failed too often.
        error = refused_anonymous(request, ctx, Unauthorized("unknown", "token invalid"))
        if not isinstance(error, Unauthorized):
            raise error
        answer = TOKEN_ANSWERS.get(path.strip("/"))
        if answer is not None and has_body(request.scope):
            # Not a byte of an unknown caller's body is read (issue 18 item 4).
            raise TokenRefused(*answer)
        return
    enforce(request, ctx, org)
