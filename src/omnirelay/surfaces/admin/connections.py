"""Admin API: channel connections (`/api/connections`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from omnirelay.channels.base import PermanentError, RetriableError, get_adapter
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


def _connect(ctx: AppContext, organization_id: str, out: ConnectionOut) -> None:
    """A provider that pushes its events (a Viber bot) is told where, once the connection
    is committed and with no transaction open (the provider calls the URL back meanwhile);
    the outcome is the connection's ``session`` state (``webhook_set`` or
    ``webhook_failed`` with the provider's answer)."""
    adapter = get_adapter(out.provider)
    connect = getattr(adapter, "connect", None)
    if connect is None:
        return
    base = ctx.settings.public_url.rstrip("/")
    if not base:
        state, error = "webhook_not_set", "OMNIRELAY_PUBLIC_URL is not set"
    else:
        with ctx.db.read() as session:
            settings = dict(service.get(session, organization_id, out.id).settings)
        try:
            connect(settings, f"{base}/hooks/{out.provider}/{out.id}")
            state, error = "webhook_set", None
        except (RetriableError, PermanentError) as exc:
            state, error = "webhook_failed", str(exc)
    with ctx.db.transaction() as session:
        service.record_status(session, out.id, state, error)
        status = service.session_status(session, out.id)
        out.session = SessionStatus.model_validate(status) if status else None


@router.post("", response_model=ConnectionOut, status_code=201)
def create(ctx: Ctx, caller: Caller, body: ConnectionCreate) -> ConnectionOut:
    """Connect a channel through a provider (`sandbox` for sms, viber, vk, telegram;
    `viber_bot`, `infobip_viber`, `vk`: docs/channels/). A Viber bot's webhook is set
    after the commit (`session.state`: `webhook_set`, `webhook_failed`)."""
    require_admin(caller)
    _guard_host(ctx, body.provider, body.settings)
    with ctx.db.transaction() as session:
        out = _out(service.create(session, caller.organization_id, **body.model_dump()))
    _connect(ctx, caller.organization_id, out)
    return out


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
        out = _out(row)
    if body.settings is not None:  # a new token or URL: tell the provider again
        _connect(ctx, caller.organization_id, out)
    return out


@router.delete("/{connection_id}", status_code=204)
def delete(ctx: Ctx, caller: Caller, connection_id: RowId) -> Response:
    require_admin(caller)
    with ctx.db.transaction() as session:
        service.delete(session, caller.organization_id, connection_id)
    return Response(status_code=204)
