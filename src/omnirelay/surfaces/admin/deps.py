"""Request dependencies of the admin surface: the caller's identity, after the rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from omnirelay.context import AppContext, get_context
from omnirelay.errors import DomainError, Unauthorized
from omnirelay.surfaces.admin.errors import render
from omnirelay.surfaces.preauth import Check
from omnirelay.surfaces.ratelimits import enforce, refused_anonymous
from omnirelay.tenancy.auth import Identity, authenticate, find_subscription, require_user

Ctx = Annotated[AppContext, Depends(get_context)]


def identity(
    request: Request,
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
    failure: DomainError | None = None
    with ctx.db.transaction() as session:
        try:
            organization_id = find_subscription(session, subscription_key)
        except Unauthorized as exc:
            raise refused_anonymous(request, ctx, exc) from None
        # Spent before the token is checked: refused calls count against the subscription.
        enforce(request, ctx, organization_id)
        try:
            who = authenticate(session, organization_id, authorization, impersonated)
        except DomainError as exc:
            failure = exc
    if failure is not None:
        raise failure
    request.state.identity = who
    return who


Caller = Annotated[Identity, Depends(identity)]


def preauth(ctx: AppContext) -> Check:
    """``identity``'s refusals from the headers alone, for requests with a body
    (surfaces/preauth.py): answered before FastAPI reads the body."""

    def verify(request: Request) -> DomainError | None:
        # no_autoflush: ``authenticate`` may touch lastUsedAt, which this read never writes.
        with ctx.db.read() as session, session.no_autoflush:
            try:
                key = request.headers.get("ocp-apim-subscription-key")
                organization_id = find_subscription(session, key)
            except Unauthorized as exc:
                return refused_anonymous(request, ctx, exc)
            try:
                authenticate(
                    session,
                    organization_id,
                    request.headers.get("authorization"),
                    request.headers.get("impersonateduserexternalid"),
                )
            except DomainError as exc:
                try:  # a refused call counts against the subscription, as in ``identity``
                    enforce(request, ctx, organization_id)
                except DomainError as limited:
                    return limited
                return exc
        return None

    async def check(request: Request) -> Response | None:
        error = await run_in_threadpool(verify, request)
        return None if error is None else render(error)

    return check


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
