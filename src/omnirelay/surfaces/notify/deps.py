"""Request helpers of /v3: the caller, the JSON body read by hand (so that a missing or
broken body is the seed's "No params"), and the validation rules of this server."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from omnirelay.context import AppContext
from omnirelay.messaging import errors as e
from omnirelay.messaging.validation import Rules
from omnirelay.net.ssrf import allowed_networks
from omnirelay.surfaces.token import Ctx, OrgId

__all__ = ["Ctx", "OrgId", "read_json", "rules"]


async def read_json(request: Request) -> tuple[Any, bytes]:
    raw = await request.body()
    if not raw.strip():
        raise e.no_params()
    try:
        return json.loads(raw), raw
    except (ValueError, UnicodeDecodeError):
        raise e.no_params() from None


def rules(ctx: AppContext) -> Rules:
    return Rules(
        default_region=ctx.settings.default_phone_region or None,
        allowed_networks=allowed_networks(ctx.settings),
    )
