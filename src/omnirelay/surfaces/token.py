"""``Authorization: Token <key>``, shared by the /v3 and /user surfaces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.responses import Response

from omnirelay.context import AppContext, get_context
from omnirelay.errors import DomainError, Unauthorized
from omnirelay.surfaces.preauth import Check
from omnirelay.surfaces.ratelimits import enforce, refused_anonymous

Ctx = Annotated[AppContext, Depends(get_context)]


async def organization(
    request: Request,
    ctx: Ctx,
    authorization: Annotated[
        str | None, Header(description="Token xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
    ] = None,
) -> str:
    # On the event loop, no thread: the process's cache answers; a miss reads the token
    # through a read session (on SQLite it never waits for the write lock).
    try:
        organization_id = ctx.tokens.organization(authorization)
    except Unauthorized as exc:
        raise refused_anonymous(request, ctx, exc) from None
    enforce(request, ctx, organization_id)
    return organization_id


OrgId = Annotated[str, Depends(organization)]


def preauth(ctx: AppContext, render: Callable[[DomainError], Response]) -> Check:
    """``organization``'s refusals from the headers alone, for requests with a body
    (surfaces/preauth.py): answered before FastAPI reads the body."""

    async def check(request: Request) -> Response | None:
        try:
            ctx.tokens.organization(request.headers.get("authorization"))
        except Unauthorized as exc:
            return render(refused_anonymous(request, ctx, exc))
        return None

    return check
