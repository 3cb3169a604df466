"""Media a WhatsApp user sends a Cloud API device (ADR 37, issue 15): the webhook names a
media id only. The message is stored as an inbound message of the device's connection,
its file pending, and downloaded after the webhook's transaction by the
``inbound.attachments`` drain (media/fetch.py, the Cloud adapter's ``download``); the
device's incoming-message webhook is held until then, so that its ``url`` is the file's
direct link in the media storage (``filename``/``extension`` as stored)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.gateway import repository as repo
from omnirelay.gateway.models import Device
from omnirelay.media import fetch
from omnirelay.messaging import repository as messaging_repo
from omnirelay.messaging.models import InboundMessage

PROVIDER = "whatsapp_cloud"
# The Cloud API's own names for what it leaves out (a photo has no file name).
KIND_NAMES = {"image": "image", "video": "video", "audio": "audio", "voice": "voice"}


def hold(session: Session, device: Device, event: Any, name: str, extra: dict[str, Any]) -> None:
    """Store the message with its file pending and the fields of its device webhook."""
    kind = str(event.type or "document")
    entry: dict[str, Any] = {"name": event.filename or KIND_NAMES.get(kind, "document")}
    if event.mime_type:
        entry["contentType"] = event.mime_type.split(";")[0].strip()
    entry["pending"] = True
    row = InboundMessage(
        organization_id=device.organization_id,
        connection_id=device.connection_id,
        channel="whatsapp",
        phone=str(event.sender),
        to=device.number,
        text=event.text or "",
        attachments=[entry],
    )
    messaging_repo.add_inbound(session, row)
    context = {"sender": event.sender, "text": event.text or "", "name": name, "extra": extra}
    fetch.add(
        session,
        device.organization_id,
        row.id,
        device.connection_id,
        PROVIDER,
        [(0, str(event.media_id))],
        context,
    )


def done(session: Session, inbound_id: int, context: dict[str, Any] | None) -> None:
    """The file is in (or given up on): the held device webhook, with its link."""
    from omnirelay.gateway.service import incoming

    row = session.get(InboundMessage, inbound_id)
    if row is None or context is None:
        return
    device = repo.device_by_connection(session, row.connection_id)
    if device is None:
        return
    extra = dict(context.get("extra") or {})
    [file] = row.attachments or [{}]
    if file.get("mediaUrl"):
        extra["url"] = file["mediaUrl"]
        extra.setdefault("filename", file.get("name") or "")
        extra.setdefault("extension", Path(str(file.get("name") or "")).suffix.lstrip("."))
    now: datetime = utcnow()
    incoming(
        session,
        device,
        sender=str(context.get("sender") or row.phone),
        text=str(context.get("text") or ""),
        now=now,
        name=str(context.get("name") or ""),
        extra=extra,
    )
