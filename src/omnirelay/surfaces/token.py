"""``Authorization: Token <key>``, shared by the /v3 and /user surfaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from omnirelay.context import AppContext, get_context
from omnirelay.errors import Unauthorized
from omnirelay.surfaces.ratelimits import enforce, refused_anonymous
from omnirelay.tenancy.auth import authenticate_api_token

Ctx = Annotated[AppContext, Depends(get_context)]


def organization(
    request: Request,
    ctx: Ctx,
    authorization: Annotated[
        str | None, Header(description="Token xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
    ] = None,
) -> str:
    try:
        with ctx.db.read() as session:  # read-only: not queued behind writers on SQLite
            organization_id = authenticate_api_token(session, authorization)
    except Unauthorized as exc:
        raise refused_anonymous(request, ctx, exc) from None
    enforce(request, ctx, organization_id)
    return organization_id


OrgId = Annotated[str, Depends(organization)]
