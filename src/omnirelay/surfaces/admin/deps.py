"""Request dependencies of the admin surface: the caller's identity, after the rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request, Response

from omnirelay.context import AppContext, get_context
from omnirelay.errors import DomainError, RateLimited
from omnirelay.ratelimit import service as ratelimit
from omnirelay.tenancy import repository as tenancy_repo
from omnirelay.tenancy.auth import Identity, authenticate, find_subscription, require_user

Ctx = Annotated[AppContext, Depends(get_context)]


def identity(
    request: Request,
    response: Response,
    ctx: Ctx,
    subscription_key: Annotated[
        str | None, Header(alias="Ocp-Apim-Subscription-Key", description="Subscription key")
    ] = None,
    authorization: Annotated[
        str | None, Header(description="Access token or workspace access token")
    ] = None,
    impersonated: Annotated[
        str | None,
        Header(alias="impersonatedUserExternalId", description="externalId of a user to act as"),
    ] = None,
) -> Identity:
    settings = ctx.settings
    failure: DomainError | None = None
    with ctx.db.transaction() as session:
        organization_id = find_subscription(session, subscription_key)
        org = tenancy_repo.get_organization(session, organization_id)
        limit = (org.rate_limit_requests if org else None) or settings.rate_limit_requests
        decision = ratelimit.hit(
            session, organization_id, limit=limit, window=settings.rate_limit_window_seconds
        )
        if decision.allowed:
            try:
                who = authenticate(session, organization_id, authorization, impersonated)
            except DomainError as exc:
                # Commit the counter anyway: refused calls count against the subscription.
                failure = exc
    response.headers["X-RateLimit-Limit"] = str(decision.limit)
    response.headers["X-RateLimit-Remaining"] = str(decision.remaining)
    if not decision.allowed:
        raise RateLimited(decision.retry_after)
    if failure is not None:
        raise failure
    request.state.identity = who
    return who


Caller = Annotated[Identity, Depends(identity)]


def project_scoped(caller: Caller) -> None:
    """Seed 000: a workspace token must impersonate a user on project-scoped methods.
    A router-wide dependency, so that no method of those routers can forget it."""
    require_user(caller)


# Ids and offsets are 64-bit integers in the database: a larger number names no row, and
# would overflow the driver (a 500) instead of being refused.
MAX_INT64 = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_INT64)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT64)]
