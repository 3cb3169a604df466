"""Admin API: the WhatsApp gateway's account token and OTP number, devices, binding a
device to a driver, and the sandbox phone's scan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from omnirelay.db import utcnow
from omnirelay.errors import NotFound
from omnirelay.gateway import repository as repo
from omnirelay.gateway import service
from omnirelay.gateway.models import Device
from omnirelay.surfaces.admin.deps import Caller, Ctx
from omnirelay.tenancy.auth import require_admin

router = APIRouter(prefix="/gateway", tags=["whatsapp gateway"])
# gateway_devices.id is a 32-bit integer: a larger id names no device (and would fail in
# the database, a 500, instead of being refused).
DeviceId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class OtpNumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # /api refuses unknown fields

    otp_number: str | None = Field(default=None, pattern=r"^\d{8,15}$")


class DriverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # /api refuses unknown fields

    provider: str = Field(description="wa_sandbox or whatsapp_cloud")
    settings: dict[str, Any] = Field(default_factory=dict)


def _device(d: Device) -> dict[str, Any]:
    return {
        "id": d.id,
        "number": d.number,
        "name": d.name,
        "driver": d.driver,
        "status": d.status,
        "package": d.package,
        "quota": d.quota,
        "messages": d.messages,
        "connection_id": d.connection_id,
        "token_hint": d.token_hint,
        "webhooks": {
            "webhook": d.webhook,
            "webhookconnect": d.webhook_connect,
            "webhookstatus": d.webhook_status,
            "webhookchaining": d.webhook_chaining,
        },
        "cloud_webhook_path": f"/gateway/cloud/{d.id}/webhook",
    }


@router.post("/account-token")
def rotate_account_token(ctx: Ctx, caller: Caller) -> dict[str, str]:
    """A new account token (the old one stops working); shown once."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        return {"token": service.rotate_account_token(session, caller.organization_id)}


@router.put("/otp-number")
def set_otp_number(ctx: Ctx, caller: Caller, body: OtpNumberIn) -> dict[str, str | None]:
    """The account's WhatsApp number, where delete-device codes are sent."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        service.set_otp_number(session, caller.organization_id, body.otp_number)
    return {"otp_number": body.otp_number}


@router.get("/devices")
def list_devices(ctx: Ctx, caller: Caller) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        return {"items": [_device(d) for d in repo.devices(session, caller.organization_id)]}


@router.put("/devices/{device_id}/driver")
def bind_driver(ctx: Ctx, caller: Caller, device_id: DeviceId, body: DriverIn) -> dict[str, Any]:
    require_admin(caller)
    with ctx.db.transaction() as session:
        device = service.bind_driver(
            session, caller.organization_id, device_id, body.provider, body.settings, utcnow()
        )
        return _device(device)


@router.post("/devices/{device_id}/scan")
def scan(ctx: Ctx, caller: Caller, device_id: DeviceId) -> dict[str, Any]:
    """The sandbox phone scans the QR it was shown (instead of waiting for scan_delay)."""
    with ctx.db.transaction() as session:
        device = repo.device(session, caller.organization_id, device_id)
        if device is None:
            raise NotFound("device_not_found", f"no device {device_id}")
        if device.driver != "wa_sandbox" or not service.scanned(session, device.id, utcnow()):
            raise NotFound("no_pairing", "the device is not waiting for a scan")
        return _device(device)
