"""Platform API methods (seed 004) implemented so far: the callback server settings."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from omnirelay.net.ssrf import allowed_networks, validate_url
from omnirelay.surfaces.platform.deps import Ctx, OrgId
from omnirelay.webhooks import service as webhooks

router = APIRouter()


class CallbackSet(BaseModel):
    model_config = ConfigDict(extra="ignore")

    callbackUrl: str = Field(min_length=1, max_length=2000)  # the wire name
    secret: str | None = Field(default=None, max_length=500)


class Success(BaseModel):
    result: str = "success"


class SecretOut(Success):
    secret: str | None


@router.post("/callback/set", response_model=Success, tags=["callback server"])
def set_callback(ctx: Ctx, org_id: OrgId, body: CallbackSet) -> Success:
    """Set the callback server URL, and optionally the `secret` sent in every body."""
    url = validate_url(body.callbackUrl, allowed_networks(ctx.settings))
    with ctx.db.transaction() as session:
        webhooks.set_callback_server(session, org_id, url, body.secret)
    return Success()


@router.post("/callback/secret", response_model=SecretOut, tags=["callback server"])
def get_secret(ctx: Ctx, org_id: OrgId) -> SecretOut:
    """The `secret` sent to the callback server (null when none was set)."""
    with ctx.db.transaction() as session:
        return SecretOut(secret=webhooks.settings(session, org_id).callback_secret)
