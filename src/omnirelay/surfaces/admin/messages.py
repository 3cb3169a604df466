"""Admin API: messages with their attempts, notification settings, balance and prices,
template moderation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from omnirelay.billing import service as billing
from omnirelay.messaging import service
from omnirelay.messaging.models import Message
from omnirelay.messaging.repository import list_for
from omnirelay.messaging.schemas import (
    AttemptOut,
    MessageDetail,
    MessageOut,
    MessagePage,
    NotifySettingsIn,
    NotifySettingsOut,
)
from omnirelay.surfaces.admin.deps import Caller, Ctx, Limit, Offset
from omnirelay.templates import service as templates
from omnirelay.tenancy.auth import require_admin

router = APIRouter()


def _out(row: Message) -> dict[str, object]:
    data = {k: getattr(row, k) for k in MessageOut.model_fields if k != "price"}
    data["price"] = billing.format_units(row.price)
    return data


@router.get("/messages", response_model=MessagePage, tags=["messages"])
def list_messages(
    ctx: Ctx,
    caller: Caller,
    status: str | None = None,
    channel: str | None = None,
    custom_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> MessagePage:
    """Messages, newest first, filtered by status, channel (of the current step),
    custom_id and creation time."""
    with ctx.db.transaction() as session:
        rows = list_for(
            session,
            caller.organization_id,
            status=status,
            channel=channel,
            custom_id=custom_id,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        items = [MessageOut.model_validate(_out(r)) for r in rows]
    return MessagePage(items=items, limit=limit, offset=offset)


@router.get("/messages/{message_id}", response_model=MessageDetail, tags=["messages"])
def get_message(ctx: Ctx, caller: Caller, message_id: str) -> MessageDetail:
    """One message with its route and every attempt of every step."""
    with ctx.db.transaction() as session:
        row = service.get(session, caller.organization_id, message_id)
        attempts = [AttemptOut.model_validate(a) for a in service.attempts(session, row)]
        return MessageDetail.model_validate({**_out(row), "route": row.route, "attempts": attempts})


@router.get("/notifications/settings", response_model=NotifySettingsOut, tags=["messages"])
def get_settings(ctx: Ctx, caller: Caller) -> NotifySettingsOut:
    with ctx.db.transaction() as session:
        return NotifySettingsOut.model_validate(service.settings(session, caller.organization_id))


@router.put("/notifications/settings", response_model=NotifySettingsOut, tags=["messages"])
def put_settings(ctx: Ctx, caller: Caller, body: NotifySettingsIn) -> NotifySettingsOut:
    """The daylight window (recipient's local time) and sendSimple's default route."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        row = service.update_settings(
            session, caller.organization_id, body.model_dump(exclude_unset=True)
        )
        return NotifySettingsOut.model_validate(row)


class BalanceOut(BaseModel):
    balance: str
    currency: str
    prices: dict[str, str]


class TopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")  # /api refuses unknown fields

    amount: str = Field(pattern=r"^-?\d{1,10}(\.\d{1,4})?$", examples=["100.00"])


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # /api refuses unknown fields

    amount: str = Field(pattern=r"^\d{1,10}(\.\d{1,4})?$", examples=["0.05"])


def _balance(ctx: Ctx, organization_id: str) -> BalanceOut:
    with ctx.db.transaction() as session:
        row = billing.balance(session, organization_id)
        prices = billing.price_list(session, organization_id)
        return BalanceOut(
            balance=billing.format_units(row.amount),
            currency=row.currency,
            prices={c: billing.format_units(p) for c, p in prices.items()},
        )


@router.get("/billing", response_model=BalanceOut, tags=["billing"])
def get_balance(ctx: Ctx, caller: Caller) -> BalanceOut:
    return _balance(ctx, caller.organization_id)


@router.post("/billing/top-up", response_model=BalanceOut, tags=["billing"])
def top_up(ctx: Ctx, caller: Caller, body: TopUp) -> BalanceOut:
    """Add (or, negative, take) an amount."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        billing.top_up(session, caller.organization_id, body.amount)
    return _balance(ctx, caller.organization_id)


@router.put("/billing/prices/{channel}", response_model=BalanceOut, tags=["billing"])
def set_price(
    ctx: Ctx, caller: Caller, channel: Literal["sms", "viber", "vk", "telegram"], body: PriceIn
) -> BalanceOut:
    """The price of one message (one SMS part) on a channel."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        billing.set_price(session, caller.organization_id, channel, body.amount)
    return _balance(ctx, caller.organization_id)


class Moderation(BaseModel):
    model_config = ConfigDict(extra="forbid")  # /api refuses unknown fields

    status: str
    comment: str | None = Field(default=None, max_length=1000)


@router.post("/templates/{template_id}/moderation", tags=["templates"])
def moderate(ctx: Ctx, caller: Caller, template_id: str, body: Moderation) -> dict[str, str]:
    """Set a template's moderation status (`approved`, `rejected`, ...)."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        row = templates.moderate(
            session, caller.organization_id, template_id, body.status, body.comment
        )
        return {"id": row.uuid, "status": row.status}
