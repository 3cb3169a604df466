"""Admin API: channel connections (`/api/connections`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from omnirelay.connections import service
from omnirelay.connections.models import ChannelConnection
from omnirelay.connections.schemas import (
    ConnectionCreate,
    ConnectionList,
    ConnectionOut,
    ConnectionUpdate,
    SessionStatus,
    masked,
)
from omnirelay.context import AppContext
from omnirelay.net.ssrf import allowed_networks, check_host
from omnirelay.surfaces.admin.deps import Caller, Ctx, RowId
from omnirelay.tenancy.auth import require_admin

router = APIRouter(prefix="/connections", tags=["connections"])
HOST_PROVIDERS = ("smpp", "smtp")  # providers whose ``host`` setting a tenant aims


def _out(row: ChannelConnection) -> ConnectionOut:
    out = ConnectionOut.model_validate(row)
    out.settings = masked(row.settings)
    return out


def _guard_host(ctx: AppContext, provider: str, settings: dict[str, Any] | None) -> None:
    """The SSRF guard over a provider's server (an SMPP or SMTP ``host``): resolved and
    checked before the transaction opens (DNS is a network call); the session or the
    adapter checks it again when it connects."""
    host = (settings or {}).get("host")
    if provider not in HOST_PROVIDERS or host in (None, "", "***"):
        return
    port = (settings or {}).get("port")
    port = port if isinstance(port, int) and 0 < port < 65536 else 0
    check_host(str(host), port, allowed_networks(ctx.settings), field="settings.host")


@router.post("", response_model=ConnectionOut, status_code=201)
def create(ctx: Ctx, caller: Caller, body: ConnectionCreate) -> ConnectionOut:
    """Connect a channel through a provider (`sandbox` for sms, viber, vk, telegram)."""
    require_admin(caller)
    _guard_host(ctx, body.provider, body.settings)
    with ctx.db.transaction() as session:
        return _out(service.create(session, caller.organization_id, **body.model_dump()))


@router.get("", response_model=ConnectionList)
def list_(ctx: Ctx, caller: Caller, channel: str | None = None) -> ConnectionList:
    with ctx.db.transaction() as session:
        rows = service.list_connections(session, caller.organization_id, channel)
        return ConnectionList(items=[_out(r) for r in rows])


@router.get("/{connection_id}", response_model=ConnectionOut)
def get(ctx: Ctx, caller: Caller, connection_id: RowId) -> ConnectionOut:
    """One connection; for SMPP also `session`: state (bound, down, connecting, ...),
    last error, submit_sm in flight, submits per second."""
    with ctx.db.transaction() as session:
        out = _out(service.get(session, caller.organization_id, connection_id))
        status = service.session_status(session, connection_id)
        out.session = SessionStatus.model_validate(status) if status else None
        return out


@router.patch("/{connection_id}", response_model=ConnectionOut)
def update(ctx: Ctx, caller: Caller, connection_id: RowId, body: ConnectionUpdate) -> ConnectionOut:
    """Change name, settings (masked secrets sent back as `***` stay as they are),
    senders, active, templates_only."""
    require_admin(caller)
    if body.settings is not None and body.settings.get("host") not in (None, "", "***"):
        with ctx.db.read() as session:
            provider = service.get(session, caller.organization_id, connection_id).provider
        _guard_host(ctx, provider, body.settings)
    with ctx.db.transaction() as session:
        row = service.update(
            session, caller.organization_id, connection_id, body.model_dump(exclude_unset=True)
        )
        return _out(row)


@router.delete("/{connection_id}", status_code=204)
def delete(ctx: Ctx, caller: Caller, connection_id: RowId) -> Response:
    require_admin(caller)
    with ctx.db.transaction() as session:
        service.delete(session, caller.organization_id, connection_id)
    return Response(status_code=204)
