"""``Authorization: Token <key>``, shared by the /v3 and /user surfaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from omnirelay.context import AppContext, get_context
from omnirelay.tenancy.auth import authenticate_api_token

Ctx = Annotated[AppContext, Depends(get_context)]


def organization(
    ctx: Ctx,
    authorization: Annotated[
        str | None, Header(description="Token xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
    ] = None,
) -> str:
    with ctx.db.read() as session:  # read-only: not queued behind writers on SQLite
        return authenticate_api_token(session, authorization)


OrgId = Annotated[str, Depends(organization)]
