"""``Authorization: Token <key>``, shared by the /v3 and /user surfaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from omnirelay.context import AppContext, get_context

Ctx = Annotated[AppContext, Depends(get_context)]


async def organization(
    ctx: Ctx,
    authorization: Annotated[
        str | None, Header(description="Token xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
    ] = None,
) -> str:
    # On the event loop, no thread: the process's cache answers; a miss reads the token
    # through a read session (on SQLite it never waits for the write lock).
    return ctx.tokens.organization(authorization)


OrgId = Annotated[str, Depends(organization)]
