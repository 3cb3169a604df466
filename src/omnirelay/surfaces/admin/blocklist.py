"""Admin API: the organization's block lists (`/api/blocklist`): phone numbers no
message goes to (/v3 error 1019) and IP networks whose /v3 requests are refused (1013)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.exc import IntegrityError

from omnirelay.blocklist import service
from omnirelay.blocklist.schemas import (
    NetworkList,
    NetworkOut,
    NetworksIn,
    OptOutIn,
    OptOutOut,
    PhoneList,
    PhoneOut,
    PhonesIn,
)
from omnirelay.errors import Conflict
from omnirelay.surfaces.admin.deps import Caller, Ctx, Limit, Offset, RowId
from omnirelay.tenancy.auth import require_admin

router = APIRouter(prefix="/blocklist", tags=["block lists"])


def _concurrent() -> Conflict:
    return Conflict("concurrent_change", "A concurrent request changed the list: try again.")


@router.get("/phones", response_model=PhoneList)
def list_phones(ctx: Ctx, caller: Caller, limit: Limit = 100, offset: Offset = 0) -> PhoneList:
    with ctx.db.read() as session:
        rows, total = service.list_phones(session, caller.organization_id, limit, offset)
        return PhoneList(items=[PhoneOut.model_validate(r) for r in rows], total=total)


@router.post("/phones", response_model=PhoneList)
def add_phones(ctx: Ctx, caller: Caller, body: PhonesIn) -> PhoneList:
    """Block numbers (any spelling: `+7 916 123-45-67` is `79161234567`); answers the
    entries, those already blocked included. Sends to them are refused with 1019."""
    require_admin(caller)
    region = ctx.settings.default_phone_region or None
    try:
        with ctx.db.transaction() as session:
            rows = service.add_phones(
                session, caller.organization_id, body.phones, body.reason, region
            )
            items = [PhoneOut.model_validate(r) for r in rows]
    except IntegrityError:
        raise _concurrent() from None
    return PhoneList(items=items, total=len(items))


@router.delete("/phones/{entry_id}", status_code=204)
def remove_phone(ctx: Ctx, caller: Caller, entry_id: RowId) -> Response:
    require_admin(caller)
    with ctx.db.transaction() as session:
        service.remove_phone(session, caller.organization_id, entry_id)
    return Response(status_code=204)


@router.get("/ips", response_model=NetworkList)
def list_networks(ctx: Ctx, caller: Caller) -> NetworkList:
    with ctx.db.read() as session:
        rows = service.list_networks(session, caller.organization_id)
        return NetworkList(items=[NetworkOut.model_validate(r) for r in rows])


@router.post("/ips", response_model=NetworkList)
def add_networks(ctx: Ctx, caller: Caller, body: NetworksIn) -> NetworkList:
    """Block addresses or CIDR networks; /v3 requests from them are refused with 1013."""
    require_admin(caller)
    try:
        with ctx.db.transaction() as session:
            rows = service.add_networks(session, caller.organization_id, body.networks, body.reason)
            items = [NetworkOut.model_validate(r) for r in rows]
    except IntegrityError:
        raise _concurrent() from None
    service.forget(caller.organization_id)
    return NetworkList(items=items)


@router.delete("/ips/{entry_id}", status_code=204)
def remove_network(ctx: Ctx, caller: Caller, entry_id: RowId) -> Response:
    require_admin(caller)
    with ctx.db.transaction() as session:
        service.remove_network(session, caller.organization_id, entry_id)
    service.forget(caller.organization_id)
    return Response(status_code=204)


@router.get("/optout", response_model=OptOutOut)
def get_opt_out(ctx: Ctx, caller: Caller) -> OptOutOut:
    """The opt-out keywords: an inbound message that is one of `stop_words` (whole text,
    any case) puts its number on the block list; one of `start_words` lifts it."""
    with ctx.db.read() as session:
        found = service.opt_out_settings(session, caller.organization_id)
    return OptOutOut(
        enabled=found.enabled,
        stop_words=list(found.stop_words),
        start_words=list(found.start_words),
    )


@router.put("/optout", response_model=OptOutOut)
def put_opt_out(ctx: Ctx, caller: Caller, body: OptOutIn) -> OptOutOut:
    """Change the opt-out keywords or turn opt-out off; fields not sent stay."""
    require_admin(caller)
    try:
        with ctx.db.transaction() as session:
            found = service.update_opt_out(
                session,
                caller.organization_id,
                enabled=body.enabled,
                stop_words=body.stop_words,
                start_words=body.start_words,
            )
    except IntegrityError:
        raise _concurrent() from None
    return OptOutOut(
        enabled=found.enabled,
        stop_words=list(found.stop_words),
        start_words=list(found.start_words),
    )
