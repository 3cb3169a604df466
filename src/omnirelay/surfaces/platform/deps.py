"""``Authorization: Token <key>`` -> the caller's organization id."""

from omnirelay.surfaces.token import Ctx, OrgId

__all__ = ["Ctx", "OrgId"]
