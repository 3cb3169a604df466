"""The operator side of the web chat (seed 004 conventions, ``/user/<section>/<action>``):
typing and read receipts shown in the visitor's widget, on whichever process holds the
visitor's socket (webchat/notices.py; docs/channels/webchat.md)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from omnirelay.surfaces.platform.deps import Ctx, OrgId
from omnirelay.webchat import service

router = APIRouter()
TAG = "web chat"


class OperatorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    contactId: str = Field(min_length=1, max_length=64)  # the wire name
    connectionId: int | None = Field(default=None, ge=1)


class Sent(BaseModel):
    result: str = "success"
    connections: int = Field(description="the web chats it went to")


def _send(ctx: Ctx, org_id: str, body: OperatorBody, kind: str) -> Sent:
    with ctx.db.transaction() as session:
        n = service.operator_event(session, org_id, body.contactId, kind, body.connectionId)
    return Sent(connections=n)


@router.post("/webchat/typing", response_model=Sent, tags=[TAG])
def typing(ctx: Ctx, org_id: OrgId, body: OperatorBody) -> Sent:
    """The operator is typing to the contact: the visitor's widget shows "typing…" for a
    few seconds (send it again while typing goes on, at most every 3 s)."""
    return _send(ctx, org_id, body, "typing")


@router.post("/webchat/read", response_model=Sent, tags=[TAG])
def read(ctx: Ctx, org_id: OrgId, body: OperatorBody) -> Sent:
    """The operator has read what the contact wrote so far: the widget marks the
    visitor's messages read."""
    return _send(ctx, org_id, body, "read")
