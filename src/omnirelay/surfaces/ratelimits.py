"""The rate limits every surface applies once it knows the caller (ADR 22).

- A known caller spends one call of its organization's quota (``ctx.limiter``, shared by
  every process through leases; seed 000's per-subscription limit, on every surface).
- A caller whose credentials fail spends one call of its IP address's budget
  (``OMNIRELAY_RATE_LIMIT_ANONYMOUS_REQUESTS`` per window, counted in this process); past
  it the answer is 429 instead of 401, so credentials cannot be guessed at speed.
- The gateway's OTP (``/delete-device``) has its own per-IP budget
  (``OMNIRELAY_RATE_LIMIT_OTP_REQUESTS``).

The decision is left in ``request.state.ratelimit``; the surface guard
(``surfaces.limits``) turns it into headers on the answer, whatever the answer is.
"""

from __future__ import annotations

from starlette.requests import Request

from omnirelay.context import AppContext
from omnirelay.errors import DomainError, RateLimited
from omnirelay.ratelimit.limiter import Decision


def client_ip(request: Request) -> str:
    # The peer address: a proxy in front must be trusted explicitly, and is not yet.
    return request.client.host if request.client is not None else "unknown"


def _record(request: Request, decision: Decision) -> Decision:
    request.state.ratelimit = decision
    return decision


def enforce(request: Request, ctx: AppContext, organization_id: str) -> None:
    """Spend one call of the organization's quota; RateLimited past it."""
    decision = _record(request, ctx.limiter.check(organization_id))
    if not decision.allowed:
        raise RateLimited(decision.reset_seconds)


def refused_anonymous(request: Request, ctx: AppContext, error: DomainError) -> DomainError:
    """What to raise for failed credentials: the error itself, or RateLimited once the
    caller's IP address has failed too often in this window."""
    limit = ctx.settings.rate_limit_anonymous_requests
    decision = _record(request, ctx.ip_limiter.check(f"anon:{client_ip(request)}", limit))
    return error if decision.allowed else RateLimited(decision.reset_seconds)


def enforce_ip(request: Request, ctx: AppContext, kind: str, limit: int) -> None:
    """A per-IP budget for one kind of call (the gateway's OTP)."""
    decision = ctx.ip_limiter.check(f"{kind}:{client_ip(request)}", limit)
    if not decision.allowed:
        _record(request, decision)
        raise RateLimited(decision.reset_seconds)
