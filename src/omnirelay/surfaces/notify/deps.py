"""Request helpers of /v3: the caller, the JSON body read by hand (so that a missing or
broken body is the seed's "No params"), and the validation rules of this server."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request

from omnirelay.blocklist.service import ip_blocked
from omnirelay.context import AppContext
from omnirelay.messaging import errors as e
from omnirelay.messaging.validation import Rules
from omnirelay.surfaces import token
from omnirelay.surfaces.token import Ctx

__all__ = ["Ctx", "OrgId", "read_json", "rules"]


async def organization(
    request: Request, ctx: Ctx, org_id: Annotated[str, Depends(token.organization)]
) -> str:
    """The caller's organization, refused (1013) from an address on its IP block list:
    every /v3 method routed by FastAPI takes its caller from here. On the event loop, as
    the token check: the block list is cached in-process (blocklist/service.py)."""
    if ip_blocked(ctx.db, org_id, request.client.host if request.client else None):
        raise e.blocked_ip()
    return org_id


OrgId = Annotated[str, Depends(organization)]


async def read_json(request: Request) -> tuple[Any, bytes]:
    raw = await request.body()
    if not raw.strip():
        raise e.no_params()
    try:
        return json.loads(raw), raw
    except (ValueError, UnicodeDecodeError):
        raise e.no_params() from None


def rules(ctx: AppContext) -> Rules:
    return ctx.rules
