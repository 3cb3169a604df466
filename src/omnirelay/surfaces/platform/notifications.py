"""`/user/notifications/send`: a message to a contact by profile (seed 004)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from omnirelay.contacts import unit
from omnirelay.context import AppContext
from omnirelay.messaging.validation import Draft
from omnirelay.notifications import schemas
from omnirelay.notifications import service as notifications
from omnirelay.surfaces.platform.deps import Ctx, OrgId

router = APIRouter(prefix="/notifications", tags=["notifications"])
MAX_ID = 2**63 - 1  # connection ids are BIGINT: a larger number names none


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str = Field(max_length=schemas.MAX_URL, description="an http(s) link, e.g. a mediaUrl")
    type: str | None = Field(
        default=None,
        description="image, video, audio or file; guessed from the link's extension if left out",
    )
    name: str | None = Field(default=None, max_length=255)


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=schemas.MAX_TEXT)
    attachments: list[AttachmentIn | Annotated[str, Field(max_length=schemas.MAX_URL)]] = Field(
        default_factory=list, max_length=schemas.MAX_ATTACHMENTS
    )


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(
        min_length=1,
        max_length=200,
        examples=["notify+vk"],
        description="a designation, or several joined by + (tried in order)",
    )
    connections: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list,
        max_length=50,
        description="connection ids (/user/channels/connections); none: the organization's",
    )
    ttl: int | None = Field(
        default=None, ge=0, le=10**9, description="seconds the channel is given"
    )


class NotificationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    phone: Annotated[str, Field(max_length=64)] | int | None = Field(
        default=None, description="the recipient's number; this or contactId"
    )
    contactId: str | None = Field(default=None, max_length=64, description="or a CRM contact id")
    message: MessageIn
    channels: list[ChannelIn] | None = Field(
        default=None,
        max_length=schemas.MAX_CHANNELS,
        description="tried in order until one succeeds; left out: the default cascade",
    )


class Sent(BaseModel):
    result: str = "success"
    id: str


def to_request(body: NotificationBody) -> schemas.Request:
    """The checks that need no database (raises the surface's DomainError)."""
    return schemas.request(
        phone=body.phone,
        contact_id=body.contactId,
        text=body.message.text,
        attachments=[
            a if isinstance(a, str) else a.model_dump(exclude_none=True)
            for a in body.message.attachments
        ],
        channels=(
            None
            if body.channels is None
            else [(c.name, list(c.connections), c.ttl) for c in body.channels]
        ),
    )


async def accept(ctx: AppContext, org_id: str, request: schemas.Request) -> str:
    """The notification's id once committed; the work of the route and of the hot path
    (surfaces/platform/hot.py) alike."""

    def plan() -> Draft | None:
        with ctx.db.read() as session:
            return notifications.draft_for(session, org_id, request)

    def write() -> str:
        return unit.run(
            ctx.db, lambda session: notifications.send(session, org_id, request, ctx.clock())
        )

    # The common case (a known contact, a channel that reaches it) is planned on a read
    # and accepted with the concurrent /v3 sends in one transaction (group commit);
    # the rest takes a write transaction of its own.
    draft = await run_in_threadpool(plan)
    if draft is not None:
        return await ctx.accepts.accept(org_id, draft)
    return await run_in_threadpool(write)


@router.post("/send", response_model=Sent)
async def send(ctx: Ctx, org_id: OrgId, body: NotificationBody) -> Sent:
    """Send a notification to a contact found (or created) by `phone`, or named by
    `contactId`, through the first of `channels` that reaches it (the contact has the
    channel's id, a connection serves it, the channel takes the text and attachments).
    Every status change goes to the callback server as `notification_message_updated`.
    (Most requests are answered before this route, by the same work: hot.py.)"""
    return Sent(id=await accept(ctx, org_id, to_request(body)))
