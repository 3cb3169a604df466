"""The WhatsApp gateway (seed 002): account and device tokens, devices and their limits,
pairing, the delete-device OTP, sending through a device, and the device webhooks.

Every function takes ``now`` (the surface's clock) so timers are tested without sleeps.
Refusals raise :class:`Refused` with the seed's words; the surface answers them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.blocklist import service as blocklist
from omnirelay.channels.base import PermanentError, RetriableError
from omnirelay.channels.whatsapp_cloud import to_provider_event
from omnirelay.connections import service as connections
from omnirelay.db import utcnow
from omnirelay.errors import InvalidInput, NotFound
from omnirelay.gateway import cloud_media
from omnirelay.gateway import repository as repo
from omnirelay.gateway.drivers import PairStart, driver_for
from omnirelay.gateway.models import Device, GatewayAccount, GatewayMessage
from omnirelay.gateway.schemas import SendRequest, normalize_target
from omnirelay.media import fetch
from omnirelay.messaging import bulk_repository as bulk
from omnirelay.messaging import pipeline
from omnirelay.messaging import service as messaging
from omnirelay.messaging.service import DISPATCH_CHANNEL
from omnirelay.messaging.validation import Draft, StepDraft
from omnirelay.net.ssrf import validate_url
from omnirelay.queue import enqueue
from omnirelay.security import hash_secret
from omnirelay.webhooks import service as webhooks

FREE_DEVICES = 10  # per account
FREE_QUOTA = 1000  # messages a new free device may send
FREE_DAYS = 30  # a free device's validity
OTP_EVERY = timedelta(minutes=10)  # a new code only this long after the last one
OTP_VALID = timedelta(minutes=10)
OTP_TRIES = 3  # wrong codes before deleting is locked for OTP_LOCK
OTP_LOCK = timedelta(minutes=5)
METHOD = "gateway"  # the pipeline's method of the gateway's messages
OTP_METHOD = "gateway.otp"
AUTOSCAN = "gateway.autoscan"
MESSAGE_TTL = 24 * 3600  # how long a sent message waits for its delivery report
# A held message looks for its device again after HOLD_SECONDS, then less often as it
# ages (a tenth of its age, at most HOLD_MAX): connecting wakes it at once; the look is
# only the net under a connect that races with the hold.
HOLD_SECONDS = 15
HOLD_MAX = 3600


class Refused(Exception):
    """A seed-002 failure answer: ``{"status": false, key: reason}``."""

    def __init__(self, reason: str, key: str = "reason") -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key


class KeptRefusal(Refused):
    """A refusal whose writes must stay (a wrong OTP counts towards the lock)."""


def _token() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, as the seed's tokens


# --- tokens ---------------------------------------------------------------------------


def create_account(session: Session, organization_id: str) -> str:
    """The organization's account token, shown once."""
    token = _token()
    repo.add(
        session,
        GatewayAccount(
            organization_id=organization_id, token_hash=hash_secret(token), token_hint=token[:4]
        ),
    )
    return token


def rotate_account_token(session: Session, organization_id: str) -> str:
    row = repo.account(session, organization_id)
    if row is None:
        return create_account(session, organization_id)
    token = _token()
    row.token_hash, row.token_hint = hash_secret(token), token[:4]
    return token


def set_otp_number(session: Session, organization_id: str, number: str | None) -> None:
    row = repo.account(session, organization_id)
    if row is None:
        create_account(session, organization_id)
        row = repo.account(session, organization_id)
    assert row is not None
    row.otp_number = number


def account_by_token(session: Session, token: str | None) -> GatewayAccount | None:
    if not token:
        return None
    return repo.account_by_token(session, hash_secret(token.strip()))


def device_by_token(session: Session, token: str | None) -> Device | None:
    if not token:
        return None
    return repo.device_by_token(session, hash_secret(token.strip()))


def device_by_id(session: Session, device_id: int) -> Device | None:
    return repo.device_any(session, device_id)


# --- devices --------------------------------------------------------------------------

FLAGS = ("autoread", "personal", "group", "quick", "resend")
HOOKS = {
    "webhook": "webhook",
    "webhookconnect": "webhook_connect",
    "webhookstatus": "webhook_status",
    "webhookchaining": "webhook_chaining",
}


def _onoff(value: bool) -> str:
    return "on" if value else "off"


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "on", "yes")


def add_device(
    session: Session, organization_id: str, fields: dict[str, Any], now: datetime
) -> tuple[Device, str]:
    name = str(fields.get("name") or "").strip()
    number = str(fields.get("device") or "").strip()
    if not 2 <= len(name) <= 30 or not number.isdigit() or not 8 <= len(number) <= 15:
        raise Refused("input invalid")
    if repo.device_by_number(session, number) is not None:
        raise Refused("device already exist")
    if repo.count_free(session, organization_id) >= FREE_DEVICES:
        raise Refused("too much free device")
    conn = connections.create(
        session,
        organization_id,
        channel="whatsapp",
        provider="wa_sandbox",
        name=f"WhatsApp device {number}",
        settings={},
        senders=[number],
    )
    token = _token()
    row = Device(
        organization_id=organization_id,
        connection_id=conn.id,
        number=number,
        name=name,
        token_hash=hash_secret(token),
        token_hint=token[:4],
        driver="wa_sandbox",
        status="disconnect",
        package="Free",
        quota=FREE_QUOTA,
        messages=0,
        expired_at=now + timedelta(days=FREE_DAYS),
        created_at=now,
        updated_at=now,
        otp_failures=0,
        country_code="62",
        **{flag: _flag(fields.get(flag, False)) for flag in FLAGS},
    )
    repo.add(session, row)
    return row, token


def check_hook_urls(fields: dict[str, Any], allowed: Any) -> dict[str, str]:
    """The SSRF guard over the webhook URLs among ``fields``: what is wrong with each bad
    one. It resolves host names, so it runs before the transaction, not in it."""
    problems: dict[str, str] = {}
    for key in HOOKS:
        url = str(fields.get(key) or "").strip()
        if url:
            try:
                validate_url(url, allowed)
            except Exception as exc:
                problems[key] = str(exc)
    return problems


def update_device(
    session: Session,
    device: Device,
    fields: dict[str, Any],
    url_problems: dict[str, str],
    now: datetime,
) -> None:
    """``url_problems``: check_hook_urls' answer for these fields."""
    if "name" in fields:
        name = str(fields["name"]).strip()
        if not 2 <= len(name) <= 30:
            raise Refused("input invalid")
        device.name = name
    for key, attr in HOOKS.items():
        if key not in fields:
            continue
        if key in url_problems:
            raise Refused(f"webhook url {key} invalid: {url_problems[key]}")
        setattr(device, attr, str(fields[key] or "").strip() or None)
    for flag in FLAGS:
        if flag in fields:
            setattr(device, flag, _flag(fields[flag]))
    if "target" in fields:
        target = str(fields["target"] or "").strip()
        if target and (not target.isdigit() or not 8 <= len(target) <= 15):
            raise Refused("input invalid")
        device.target = target or None
    if "countryCode" in fields:
        code = str(fields["countryCode"]).strip()
        if not code.isdigit() or len(code) > 4:
            raise Refused("input invalid")
        device.country_code = code
    device.updated_at = now


def profile(device: Device) -> dict[str, Any]:
    return {
        "device": device.number,
        "device_status": device.status,
        "expired": f"{device.expired_at.day} {device.expired_at:%B %Y}",
        "messages": device.messages,
        "name": device.name,
        "package": device.package,
        "quota": str(device.quota),
        "status": True,
    }


def listing(session: Session, organization_id: str) -> dict[str, Any]:
    rows = repo.devices(session, organization_id)
    return {
        "connected": sum(1 for d in rows if d.status == "connect"),
        "data": [
            {
                "autoread": _onoff(d.autoread),
                "device": d.number,
                "expired": str(int(d.expired_at.timestamp())),
                "name": d.name,
                "package": d.package,
                "quota": str(d.quota),
                "status": d.status,
                # Tokens are stored hashed (shown once, by /add-device): only a hint here.
                "token": d.token_hint + "…",
            }
            for d in rows
        ],
        "devices": len(rows),
        "messages": sum(d.messages for d in rows),
        "status": True,
        "type": "device",
    }


# --- pairing and connection state -------------------------------------------------------


@dataclass(frozen=True)
class Pairing:
    kind: str  # qr | code
    value: str  # base64 PNG, or the pairing code


@dataclass(frozen=True)
class PairingPlan:
    """What the driver needs to start pairing, read before any transaction: the driver
    may call a provider, which must not happen while a transaction (on SQLite, the
    database's one write lock) is open."""

    device_id: int
    driver: str
    number: str
    settings: dict[str, Any]
    kind: str


def _check_can_pair(session: Session, device: Device) -> None:
    if device.status == "connect":
        raise Refused("device already connect")
    if (
        device.package == "Free"
        and repo.count_free(session, device.organization_id, connected=True) >= 1
    ):
        raise Refused("too much free device")  # one free device connected at a time


def plan_pairing(session: Session, device: Device, kind: str) -> PairingPlan:
    if kind not in ("qr", "code"):
        raise Refused("input invalid")
    _check_can_pair(session, device)
    conn = connections.get(session, device.organization_id, device.connection_id)
    return PairingPlan(device.id, device.driver, device.number, dict(conn.settings), kind)


def call_driver(plan: PairingPlan) -> PairStart:
    """Outside any transaction."""
    try:
        return driver_for(plan.driver).pair(plan.number, plan.settings, plan.kind)
    except (PermanentError, RetriableError) as exc:
        raise Refused(f"connect failed: {exc}") from exc


def finish_pairing(
    session: Session, plan: PairingPlan, started: PairStart, now: datetime
) -> Pairing | None:
    """Apply what the driver answered; None when the device was deleted meanwhile. The
    checks run again on the locked row: another request may have connected it."""
    device = repo.lock_device(session, plan.device_id)
    if device is None:
        return None
    if device.driver != plan.driver:
        raise Refused("connect failed: the device's driver changed, try again")
    _check_can_pair(session, device)
    if started.connected_now:
        set_state(session, device, "connect", "paired", now)
        return Pairing(plan.kind, started.value)
    device.pairing = plan.kind
    if started.scan_after is not None:
        enqueue(
            session,
            AUTOSCAN,
            {"device_id": device.id},
            run_at=now + timedelta(seconds=started.scan_after),
            organization_id=device.organization_id,
        )
    return Pairing(plan.kind, started.value)


def scanned(session: Session, device_id: int, now: datetime) -> bool:
    """The phone scanned the QR (or typed the code): the device is connected."""
    device = repo.lock_device(session, device_id)
    if device is None or device.pairing is None or device.status == "connect":
        return False
    if (
        device.package == "Free"
        and repo.count_free(session, device.organization_id, connected=True) >= 1
    ):
        device.pairing = None
        return False
    set_state(session, device, "connect", "paired", now)
    return True


def disconnect(session: Session, device: Device, now: datetime) -> None:
    if device.status != "connect":
        raise Refused("device already disconnected", key="detail")
    set_state(session, device, "disconnect", "disconnected by api", now)


def set_state(session: Session, device: Device, status: str, reason: str, now: datetime) -> None:
    device.status, device.pairing, device.updated_at = status, None, now
    if status == "connect":  # its held messages go now, not at their next look
        held = list(repo.pending_of_device(session, device.id))
        if device.otp_message_id is not None:  # a delete code (not a /send message)
            held.append(device.otp_message_id)
        bulk.bring_forward(session, held, now)
        wakeup.notify(session, DISPATCH_CHANNEL)
    if device.webhook_connect:
        webhooks.emit(
            session,
            device.organization_id,
            device.webhook_connect,
            "device.connection",
            {
                "device": device.number,
                "status": status,
                # The receiver matches the device by its token; ours is stored hashed.
                "token": device.token_hint + "…",
                "timestamp": int(now.timestamp()),
                "reason": reason,
            },
            ordering_key=f"device:{device.id}",
        )


# --- delete with OTP ---------------------------------------------------------------------


def delete_device(
    session: Session, device: Device, otp: str, now: datetime, rng: secrets.SystemRandom
) -> str:
    """An empty ``otp`` asks for a code (sent to the account's WhatsApp number); a code
    deletes the device. Returns the success detail."""
    locked = repo.lock_device(session, device.id)
    assert locked is not None
    device = locked
    if not otp:
        if device.otp_requested_at is not None and now - device.otp_requested_at < OTP_EVERY:
            wait = int((device.otp_requested_at + OTP_EVERY - now).total_seconds()) + 1
            raise Refused(f"please wait {wait} seconds before requesting new otp")
        code = f"{rng.randrange(10**6):06d}"
        device.otp_hash, device.otp_requested_at = hash_secret(code), now
        _send_otp(session, device, code, now)
        return "otp sent"
    if device.otp_locked_until is not None and now < device.otp_locked_until:
        wait = int((device.otp_locked_until - now).total_seconds()) + 1
        raise Refused(f"delete failed. try again in {wait} seconds")
    if (
        device.otp_hash is None
        or device.otp_requested_at is None
        or now - device.otp_requested_at > OTP_VALID
    ):
        raise Refused("otp haven't requested")
    if hash_secret(otp.strip()) != device.otp_hash:
        device.otp_failures += 1
        if device.otp_failures >= OTP_TRIES:
            device.otp_failures, device.otp_locked_until = 0, now + OTP_LOCK
            wait = int(OTP_LOCK.total_seconds())
            raise KeptRefusal(f"delete failed. try again in {wait} seconds")
        raise KeptRefusal("incorrect OTP")
    number = device.number
    for message_id in repo.pending_of_device(session, device.id):
        pipeline.cancel(session, message_id, "the device was deleted")
    connections.update(session, device.organization_id, device.connection_id, {"active": False})
    repo.delete_device(session, device)
    return f"device {number} successfully deleted"


def _send_otp(session: Session, device: Device, code: str, now: datetime) -> None:
    """Through omnirelay's own sending: the device itself writes to the account's number
    (held until the device is connected, as any message of a disconnected device)."""
    account = repo.account(session, device.organization_id)
    target = (account.otp_number if account else None) or device.target or device.number
    draft = Draft(
        method=OTP_METHOD,
        steps=[
            StepDraft(
                "whatsapp",
                target,
                f"omnirelay: the code to delete device {device.number} is {code}. "
                "It is valid for 10 minutes.",
                sender=device.number,
                ttl=MESSAGE_TTL,
            )
        ],
    )
    outcome = messaging.accept_many(session, device.organization_id, [draft], now)[0]
    if outcome.error is not None:
        raise Refused("otp could not be sent")
    device.otp_message_id = outcome.id


# --- uploaded files -----------------------------------------------------------------------

UPLOAD_NAME = re.compile(r"[0-9a-f]{32}-")  # what the surface names a saved upload


def discard_unused_files(session: Session, media_dir: str, saved_before: datetime) -> int:
    """Delete the uploads saved before ``saved_before`` that no message still waiting for
    a final status carries (sent, refused, cancelled, or never committed); their count.
    Only files named as the surface names uploads are touched."""
    folder = Path(media_dir)
    if not folder.is_dir():
        return 0
    cutoff = saved_before.timestamp()
    removed = 0
    for path in folder.iterdir():
        if not UPLOAD_NAME.match(path.name):
            continue
        try:
            saved = path.stat().st_mtime
        except FileNotFoundError:  # another process's sweep took it
            continue
        if saved >= cutoff or not path.is_file() or repo.file_in_use(session, path.name):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


# --- sending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    ids: list[str]
    targets: list[str]
    request_id: int
    scheduled: bool


def send(session: Session, device: Device, request: SendRequest, now: datetime) -> Sent:
    locked = repo.lock_device(session, device.id)
    assert locked is not None
    device = locked
    if request.connect_only and device.status != "connect":
        raise Refused("disconnected device")
    items = request.items
    if device.quota < len(items):
        raise Refused("insufficient quota")
    drafts: list[Draft] = []
    for item in items:
        extra = {k: v for k, v in item.extra.items() if v not in (None, "", False)}
        drafts.append(
            Draft(
                method=METHOD,
                steps=[
                    StepDraft(
                        "whatsapp",
                        item.target,
                        item.text,
                        sender=device.number,
                        ttl=MESSAGE_TTL,
                        extra=extra or None,
                    )
                ],
                delivery_date=item.at if item.at > now else None,
            )
        )
    outcomes = messaging.accept_many(session, device.organization_id, drafts, now)
    failed = [o.error for o in outcomes if o.error is not None]
    if failed:
        # One refused target refuses the request: the caller's transaction rolls back.
        raise Refused("input invalid")
    rows = [
        GatewayMessage(
            organization_id=device.organization_id,
            device_id=device.id,
            request_id=0,
            message_id=o.id,
            target=item.target,
            file=Path(item.extra["file"]).name if item.extra.get("file") else None,
            created_at=now,
        )
        for o, item in zip(outcomes, items, strict=True)
    ]
    for row in rows:
        repo.add(session, row)
    request_id = rows[0].id  # the first row's id: unique without a counter
    for row in rows:
        row.request_id = request_id
    device.quota -= len(items)
    device.messages += len(items)
    return Sent(
        ids=[str(r.id) for r in rows],
        targets=[i.display for i in items],
        request_id=request_id,
        scheduled=any(i.scheduled for i in items),
    )


def message_status(session: Session, organization_id: str, gateway_id: int) -> dict[str, Any]:
    found = repo.gateway_message(session, organization_id, gateway_id)
    if found is None:
        raise Refused("message not found")
    _, message = found
    return {"status": True, "message_status": _state(message.status)}


def delete_message(session: Session, organization_id: str, gateway_id: int) -> None:
    found = repo.gateway_message(session, organization_id, gateway_id)
    if found is None:
        raise Refused("message not found")
    if not pipeline.cancel(session, found[1].id, "deleted by api"):
        raise Refused("message already processed")


def reset_messages(session: Session, device: Device) -> int:
    """Cancel every message of the device that has not been sent yet."""
    return sum(
        pipeline.cancel(session, mid, "reset by api")
        for mid in repo.pending_of_device(session, device.id)
    )


def _state(status: str) -> str:
    """The gateway's words for the pipeline's statuses."""
    return {
        "accepted": "pending",
        "queued": "pending",
        "submitting": "processing",
        "sent": "sent",
        "delivered": "delivered",
        "read": "read",
        "deleted": "deleted",
    }.get(status, "failed")


# --- webhooks out (pipeline hooks) ------------------------------------------------------------


def on_status(session: Session, message: Any, attempt: Any, status: str) -> None:
    gm = repo.gateway_id_of(session, message.id)
    if gm is None:
        return
    device = repo.device(session, message.organization_id, gm.device_id)
    if device is None or not device.webhook_status:
        return
    webhooks.emit(
        session,
        device.organization_id,
        device.webhook_status,
        "device.message_status",
        {
            "device": device.number,
            "id": str(gm.id),
            "stateid": attempt.provider_message_id,
            "status": _state(status),
            "state": status,
        },
        ordering_key=f"message:{gm.id}",  # one message's statuses arrive in order
    )


def on_reply(session: Session, message: Any, text: str) -> None:
    gm = repo.gateway_id_of(session, message.id)
    if gm is None:
        return
    device = repo.device(session, message.organization_id, gm.device_id)
    if device is not None:
        incoming(session, device, sender=message.phone, text=text, now=utcnow())


def incoming(
    session: Session,
    device: Device,
    *,
    sender: str,
    text: str,
    now: datetime,
    name: str = "",
    extra: dict[str, Any] | None = None,
) -> None:
    """A message to the device: the device's incoming-message webhook."""
    if not device.webhook:
        return
    payload: dict[str, Any] = {
        "device": device.number,
        "sender": sender,
        "message": text,
        "text": text,
        "member": "",
        "name": name,
        "location": "",
        "pollname": "",
        "choices": [],
        "timestamp": int(now.timestamp()),
        "inboxid": "",
        "url": "",
        "filename": "",
        "extension": "",
    }
    payload.update(extra or {})
    webhooks.emit(
        session,
        device.organization_id,
        device.webhook,
        "device.incoming",
        payload,
        ordering_key=f"incoming:{device.id}",
    )


def dispatch_gate(session: Session, message: Any, step: dict[str, Any]) -> datetime | None:
    """A message of a disconnected device waits (connectOnly false): try again later."""
    device = repo.device_by_connection(session, int(step["connection_id"]))
    if device is None or device.status == "connect":
        return None
    now = utcnow()
    age = (now - message.created_at).total_seconds()
    return now + timedelta(seconds=min(HOLD_MAX, max(HOLD_SECONDS, age / 10)))


pipeline.STATUS_HOOKS[METHOD] = on_status
pipeline.REPLY_HOOKS[METHOD] = on_reply
pipeline.DISPATCH_GATES[METHOD] = dispatch_gate
pipeline.DISPATCH_GATES[OTP_METHOD] = dispatch_gate
fetch.DONE[cloud_media.PROVIDER] = cloud_media.done


def validate_numbers(
    session: Session, device: Device, targets: str, country_code: str
) -> dict[str, Any]:
    numbers: list[str] = []
    for raw in targets.split(","):
        found = normalize_target(raw.split("|")[0], country_code or device.country_code)
        if found is not None and not found[1].endswith("@g.us") and found[0] not in numbers:
            numbers.append(found[0])
    if not numbers:
        raise Refused("target invalid")
    conn = connections.get(session, device.organization_id, device.connection_id)
    answer = driver_for(device.driver).registered(numbers, dict(conn.settings))
    if answer is None:
        raise Refused("validation is not supported by this device")
    return {
        "status": True,
        "registered": [n for n, ok in zip(numbers, answer, strict=True) if ok],
        "not_registered": [n for n, ok in zip(numbers, answer, strict=True) if not ok],
    }


# --- drivers ----------------------------------------------------------------------------------


def bind_driver(
    session: Session,
    organization_id: str,
    device_id: int,
    provider: str,
    settings: dict[str, Any],
    now: datetime,
) -> Device:
    """Bind a device to a driver (``wa_sandbox`` or ``whatsapp_cloud``) with its settings;
    the device is disconnected until it pairs again."""
    device = repo.device(session, organization_id, device_id)
    if device is None:
        raise NotFound("device_not_found", f"no device {device_id}")
    if provider not in ("wa_sandbox", "whatsapp_cloud"):
        raise InvalidInput("invalid_provider", "provider is wa_sandbox or whatsapp_cloud")
    connections.rebind(session, organization_id, device.connection_id, provider, settings)
    if device.status == "connect":
        set_state(session, device, "disconnect", "driver changed", now)
    device.driver, device.pairing, device.updated_at = provider, None, now
    return device


def cloud_events(session: Session, device: Device, events: list[Any], now: datetime) -> int:
    """Apply what a Cloud API webhook said: statuses through the pipeline (as any
    provider's reports), inbound messages to the device's incoming webhook (a stop or
    start keyword changing the organization's block list first, blocklist.opt_out)."""
    applied = 0
    for event in events:
        if event.kind == "status" and event.provider_message_id:
            provider_event = to_provider_event(event)
            if provider_event is not None:
                pipeline.enqueue_event(
                    session,
                    device.organization_id,
                    device.connection_id,
                    event.provider_message_id,
                    provider_event,
                )
                applied += 1
        elif event.kind == "inbound" and event.sender:
            # STOP / START on the device's number, as on every channel's inbound path
            # (messaging/sessions.inbound); the device's webhook still gets the message.
            blocklist.opt_out(
                session, device.organization_id, event.sender, event.text or "", "whatsapp"
            )
            extra: dict[str, Any] = {}
            if event.latitude is not None and event.longitude is not None:
                extra["location"] = f"{event.latitude},{event.longitude}"
            if event.filename:
                extra["filename"] = event.filename
                extra["extension"] = Path(event.filename).suffix.lstrip(".")
            if event.media_id:
                # Its webhook waits for the file (gateway/cloud_media.py).
                extra["inboxid"] = event.message_id or ""
                cloud_media.hold(session, device, event, event.name or "", extra)
                applied += 1
                continue
            incoming(
                session,
                device,
                sender=event.sender,
                text=event.text or "",
                now=now,
                name=event.name or "",
                extra={**extra, "inboxid": event.message_id or ""},
            )
            applied += 1
    return applied
