"""`/user/channels/...`: the organization's connections by seed 004 designation."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from omnirelay.connections import designations
from omnirelay.surfaces.platform.deps import Ctx, OrgId

router = APIRouter(prefix="/channels", tags=["channels"])


class ConnectionRef(BaseModel):
    id: int  # what `connections: [1, 2]` of other methods names
    name: str
    active: bool


class ConnectionsOut(BaseModel):
    result: str = "success"
    # designation -> its connections; designations without one are left out
    data: dict[str, list[ConnectionRef]]


@router.post("/connections", response_model=ConnectionsOut)
def connections(ctx: Ctx, org_id: OrgId) -> ConnectionsOut:
    """The organization's channel connections grouped by channel designation (`vk`,
    `telegram`, `whatsapp-business`, `whatsapp`, `viber`, `sms`, ...), each `{id, name,
    active}`, in the seed's order of channels and by id."""
    with ctx.db.read() as session:
        groups = designations.list_grouped(session, org_id)
        data = {
            name: [ConnectionRef(id=r.id, name=r.name, active=r.active) for r in rows]
            for name, rows in groups.items()
        }
    return ConnectionsOut(data=data)
