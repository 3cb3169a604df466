"""HTTP Basic: account SID (two capital letters + 32 hex) and auth token (64 hex)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Header, Request

from omnirelay.callbacks import service
from omnirelay.context import AppContext, get_context
from omnirelay.errors import Unauthorized
from omnirelay.surfaces.ratelimits import enforce, refused_anonymous

Ctx = Annotated[AppContext, Depends(get_context)]


def organization(
    request: Request,
    ctx: Ctx,
    authorization: Annotated[
        str | None, Header(description="Basic base64(account SID:auth token)")
    ] = None,
) -> str:
    try:
        if not authorization:
            raise Unauthorized(
                "missing_credentials",
                "Authentication required: HTTP Basic with your account SID and auth token.",
            )
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            raise Unauthorized("malformed_credentials", "Authentication must be HTTP Basic.")
        try:
            user, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized(
                "malformed_credentials", "Malformed HTTP Basic credentials."
            ) from None
        if not sep or not user or not password:
            raise Unauthorized("malformed_credentials", "Malformed HTTP Basic credentials.")
        with ctx.db.transaction() as session:
            organization_id = service.authenticate(session, user, password)
    except Unauthorized as exc:
        raise refused_anonymous(request, ctx, exc) from None
    enforce(request, ctx, organization_id)
    return organization_id


OrgId = Annotated[str, Depends(organization)]
