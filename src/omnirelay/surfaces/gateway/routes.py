"""Seed 002's methods. Each reads its fields (any body kind), finds the caller by the
token kind the seed names, and runs one transaction; a refusal writes nothing."""

from __future__ import annotations

import json
import random
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from omnirelay.channels.whatsapp_cloud import parse_webhook, verify_signature, verify_subscription
from omnirelay.connections import repository as connections_repo
from omnirelay.context import AppContext, get_context
from omnirelay.gateway import repository as gateway_repo
from omnirelay.gateway import service
from omnirelay.gateway.models import Device
from omnirelay.gateway.schemas import MAX_FILE, SendInvalid, StoredFile, parse_send
from omnirelay.net.ssrf import allowed_networks, validate_url
from omnirelay.surfaces.gateway import openapi
from omnirelay.surfaces.gateway.limits import TOKEN_ANSWERS

router = APIRouter()
Ctx = Annotated[AppContext, Depends(get_context)]
Fields = dict[str, Any]


def _refused(reason: str, key: str = "reason") -> JSONResponse:
    return JSONResponse({key: reason, "status": False})


async def _read(request: Request, ctx: AppContext) -> tuple[Fields, UploadFile | None]:
    """The fields of any body kind, and the uploaded ``file`` (not saved yet: only a
    caller with a valid token may put a file on our disk)."""
    ctype = request.headers.get("content-type", "")
    if request.method == "GET":
        return _clean(dict(request.query_params)), None
    if ctype.startswith("application/json"):
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise SendInvalid("JSON format invalid") from None
        if not isinstance(body, dict):
            raise SendInvalid("JSON format invalid")
        return _clean(body), None
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form(max_part_size=MAX_FILE + 1024)
        fields: Fields = {}
        upload: UploadFile | None = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == "file" and upload is None:
                    upload = value
            else:
                fields[key] = value
        return _clean(fields), upload
    raw = await request.body()
    if raw.strip():
        raise SendInvalid("input invalid")
    return {}, None


def _clean(fields: Fields) -> Fields:
    """Text fields never carry NUL (PostgreSQL refuses it in text); file bytes may."""

    def has_nul(value: Any) -> bool:
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, dict):
            return any(has_nul(k) or has_nul(v) for k, v in value.items())
        if isinstance(value, list):
            return any(has_nul(v) for v in value)
        return False

    if has_nul(fields):
        raise SendInvalid("input invalid")
    return fields


async def _save(upload: UploadFile, ctx: AppContext) -> StoredFile:
    data = await upload.read(MAX_FILE + 1)  # one byte more tells "too big"
    name = Path(upload.filename or "file").name
    path = Path(ctx.settings.media_dir) / _disk_name(name)
    if len(data) <= MAX_FILE:

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        await run_in_threadpool(write)
    return StoredFile(str(path), name, len(data))


def _disk_name(name: str) -> str:
    """``<uuid>-<name>``, the name cut (keeping a short suffix) to what a file system
    takes (255 bytes): a client's name may be longer."""
    prefix = f"{uuid.uuid4().hex}-"
    budget = 255 - len(prefix)
    if len(name.encode()) <= budget:
        return prefix + name
    suffix = Path(name).suffix
    suffix = suffix if suffix.isascii() and len(suffix) <= 16 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    cut = stem.encode()[: budget - len(suffix)].decode(errors="ignore")
    return prefix + cut + suffix


Work = Callable[[Session], dict[str, Any] | JSONResponse]


async def _run(ctx: AppContext, work: Work) -> JSONResponse:
    def go() -> dict[str, Any] | JSONResponse:
        try:
            with ctx.db.transaction() as session:
                try:
                    result = work(session)
                except service.KeptRefusal as exc:
                    return _refused(exc.reason, exc.key)  # committed: the refusal counts
                if isinstance(result, JSONResponse):
                    raise _Answer(result)  # roll back: a refusal writes nothing
                return result
        except _Answer as answer:
            return answer.response
        except service.Refused as exc:
            return _refused(exc.reason, exc.key)
        except SendInvalid as exc:
            return _refused(exc.reason)

    result = await run_in_threadpool(go)
    return result if isinstance(result, JSONResponse) else JSONResponse(result)


class _Answer(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


C = TypeVar("C")  # the caller: a Device, or an organization id


def _method(
    method: str,
    caller: Callable[[Session, str | None], C | None],
    body: Callable[[AppContext, Session, C, Fields, datetime], dict[str, Any]],
) -> Callable[..., Any]:
    """A seed method: read the fields, find the caller by the token kind the seed names
    (answering its words for a wrong one), run ``body`` in one transaction."""

    async def handler(request: Request, ctx: Ctx) -> Response:
        try:
            fields, _ = await _read(request, ctx)
        except SendInvalid as exc:
            return _refused(exc.reason)
        now = ctx.clock()

        def work(session: Session) -> dict[str, Any] | JSONResponse:
            found = caller(session, request.headers.get("authorization"))
            if found is None:
                reason, key = TOKEN_ANSWERS[method]
                return _refused(reason, key)
            return body(ctx, session, found, fields, now)

        return await _run(ctx, work)

    handler.__name__ = method.replace("-", "_")
    return handler


def _account(session: Session, token: str | None) -> str | None:
    account = service.account_by_token(session, token)
    return account.organization_id if account is not None else None


# --- sending ----------------------------------------------------------------------------


def _send_answer(sent: service.Sent) -> dict[str, Any]:
    detail = (
        "success! message will be sent on scheduled time"
        if sent.scheduled
        else "success! message in queue"
    )
    return {
        "detail": detail,
        "id": sent.ids,
        "process": "pending",
        "requestid": sent.request_id,
        "status": True,
        "target": sent.targets,
    }


@router.post(
    "/send",
    tags=["send"],
    summary="Send a message through the device",
    openapi_extra=openapi.operation("send"),
)
async def send(request: Request, ctx: Ctx) -> Response:
    try:
        fields, upload = await _read(request, ctx)
    except SendInvalid as exc:
        return _refused(exc.reason)
    token = request.headers.get("authorization")
    return await _send(ctx, fields, upload, [token] if token else [])


@router.get(
    "/send",
    tags=["send"],
    summary="Send with a GET (token and redirect in the query)",
    openapi_extra=openapi.send_by_get(),
)
async def send_get(request: Request, ctx: Ctx) -> Response:
    try:
        fields = _clean(dict(request.query_params))
    except SendInvalid as exc:
        return _refused(exc.reason)
    tokens = [t for t in str(fields.pop("token", "")).split(",") if t.strip()]
    if not tokens and request.headers.get("authorization"):
        tokens = [str(request.headers.get("authorization"))]
    redirect = str(fields.pop("redirect", "") or "").strip()
    answer = await _send(ctx, fields, None, tokens)
    # Redirect only after a send that was taken (valid token, valid input), and only to
    # an absolute http(s) URL: never an open redirect for anyone holding a link.
    sent = answer.status_code == 200 and b'"status":true' in bytes(answer.body)
    if redirect and sent and _redirectable(redirect):
        return RedirectResponse(redirect, status_code=302)
    return answer


def _redirectable(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


async def _send(
    ctx: AppContext, fields: Fields, upload: UploadFile | None, tokens: list[str]
) -> JSONResponse:
    allowed = allowed_networks(ctx.settings)
    now = ctx.clock()

    def check_url(url: str) -> None:
        validate_url(url, allowed)  # the SSRF guard: the driver fetches it later

    def pick() -> tuple[int, str] | JSONResponse:
        with ctx.db.read() as session:
            devices = [service.device_by_token(session, t) for t in tokens]
            if not devices or any(d is None for d in devices):
                return _refused("token invalid")
            if len({d.organization_id for d in devices if d is not None}) > 1:
                return _refused("devices must belong to an account")
            device = random.choice(devices)  # a token list picks a device at random
            assert device is not None
            return device.id, device.country_code

    picked = await run_in_threadpool(pick)
    if isinstance(picked, JSONResponse):
        return picked
    device_id, country = picked
    stored = await _save(upload, ctx) if upload is not None else None
    try:
        # Before the transaction: the URL check resolves DNS, no lock is held meanwhile.
        request = await run_in_threadpool(
            lambda: parse_send(
                fields, file=stored, default_country=country, now=now, check_url=check_url
            )
        )
    except SendInvalid as exc:
        _discard(stored)
        return _refused(exc.reason)

    def work(session: Session) -> dict[str, Any] | JSONResponse:
        device = service.device_by_id(session, device_id)
        if device is None:  # deleted meanwhile
            return _refused("token invalid")
        return _send_answer(service.send(session, device, request, now))

    answer = await _run(ctx, work)
    if answer.status_code != 200 or b'"status":false' in bytes(answer.body):
        _discard(stored)  # refused: nothing will ever send the file
    return answer


def _discard(stored: StoredFile | None) -> None:
    if stored is not None:
        Path(stored.path).unlink(missing_ok=True)


# --- devices -----------------------------------------------------------------------------


def _profile(ctx: AppContext, s: Session, device: Device, f: Fields, now: datetime) -> Answer:
    return service.profile(device)


def _disconnect(ctx: AppContext, s: Session, device: Device, f: Fields, now: datetime) -> Answer:
    service.disconnect(s, device, now)
    return {"detail": "device disconnected", "status": True}


def _delete(ctx: AppContext, s: Session, device: Device, f: Fields, now: datetime) -> Answer:
    otp = str(f.get("otp") or "").strip()
    detail = service.delete_device(s, device, otp, now, secrets.SystemRandom())
    if not otp:
        return {"detail": "otp sent to your whatsapp number", "status": True}
    return {"detail": detail, "status": True}


def _validate(ctx: AppContext, s: Session, device: Device, f: Fields, now: datetime) -> Answer:
    return service.validate_numbers(
        s, device, str(f.get("target") or ""), str(f.get("countryCode") or "").strip()
    )


MAX_ID = 2**31 - 1  # the ids are 32-bit columns; a bigger one names nothing


def _id(f: Fields) -> int:
    raw = str(f.get("id") or "").strip()
    if not raw.isdigit() or len(raw) > 18:
        raise service.Refused("input invalid")
    if int(raw) > MAX_ID:
        raise service.Refused("message not found")
    return int(raw)


def _status(ctx: AppContext, s: Session, device: Device, f: Fields, now: datetime) -> Answer:
    return service.message_status(s, device.organization_id, _id(f))


def _delete_message(
    ctx: AppContext, s: Session, device: Device, f: Fields, now: datetime
) -> Answer:
    service.delete_message(s, device.organization_id, _id(f))
    return {"detail": "message deleted", "status": True}


def _reset(ctx: AppContext, s: Session, device: Device, f: Fields, now: datetime) -> Answer:
    n = service.reset_messages(s, device)
    return {"detail": f"{n} pending messages deleted", "status": True}


def _get_devices(ctx: AppContext, s: Session, org: str, f: Fields, now: datetime) -> Answer:
    return service.listing(s, org)


def _add_device(ctx: AppContext, s: Session, org: str, f: Fields, now: datetime) -> Answer:
    device, token = service.add_device(s, org, f, now)
    return {
        "autoread": "on" if device.autoread else "off",
        "device": device.number,
        "group": "on" if device.group else "off",
        "name": device.name,
        "personal": "on" if device.personal else "off",
        "status": True,
        "token": token,  # shown once: stored hashed
    }


Answer = dict[str, Any]

# Read-only methods that clients also call with GET (`GET /device`): the same answer,
# the fields in the query. Every other method answers GET with 405.
READ_BY_GET = ("device", "get-devices", "validate")

for _path, _body, _summary in [
    ("device", _profile, "The device's profile"),
    ("disconnect", _disconnect, "Disconnect the device"),
    ("delete-device", _delete, "Delete the device (OTP in two steps)"),
    ("validate", _validate, "Which numbers are on WhatsApp"),
    ("status", _status, "A message's status"),
    ("delete-message", _delete_message, "Cancel a message not sent yet"),
    ("reset-message", _reset, "Cancel every message of the device not sent yet"),
]:
    router.add_api_route(
        f"/{_path}",
        _method(_path, service.device_by_token, _body),
        methods=["POST"],
        tags=["devices"],
        summary=_summary,
        openapi_extra=openapi.operation(_path),
    )
    if _path in READ_BY_GET:
        router.add_api_route(
            f"/{_path}",
            _method(_path, service.device_by_token, _body),
            methods=["GET"],
            tags=["devices"],
            summary=f"{_summary} (GET)",
            openapi_extra=openapi.by_get(_path),
        )


@router.post(
    "/update-device",
    tags=["devices"],
    summary="Update the device's settings and webhooks",
    openapi_extra=openapi.operation("update-device"),
)
async def update_device(request: Request, ctx: Ctx) -> Response:
    try:
        fields, _ = await _read(request, ctx)
    except SendInvalid as exc:
        return _refused(exc.reason)
    now = ctx.clock()
    allowed = allowed_networks(ctx.settings)
    token = request.headers.get("authorization")

    def known() -> bool:  # only a device's own caller makes us ask the resolver
        with ctx.db.read() as session:
            return service.device_by_token(session, token) is not None

    if not await run_in_threadpool(known):
        return _refused(*TOKEN_ANSWERS["update-device"])
    # The URL check resolves host names: before the transaction, not in it.
    problems = await run_in_threadpool(service.check_hook_urls, fields, allowed)

    def work(session: Session) -> dict[str, Any] | JSONResponse:
        device = service.device_by_token(session, token)
        if device is None:
            return _refused(*TOKEN_ANSWERS["update-device"])
        service.update_device(session, device, fields, problems, now)
        return {"detail": "device updated!", "status": True}

    return await _run(ctx, work)


@router.post(
    "/qr",
    tags=["devices"],
    summary="Connect: a QR (base64 PNG) or a pairing code",
    openapi_extra=openapi.operation("qr"),
)
async def qr(request: Request, ctx: Ctx) -> Response:
    """Three steps, so that no transaction is open while the driver calls its provider:
    check and read, call the driver, then apply its answer to the locked device."""
    try:
        fields, _ = await _read(request, ctx)
    except SendInvalid as exc:
        return _refused(exc.reason)
    now = ctx.clock()
    kind = str(fields.get("type") or "qr").strip().lower()
    token = request.headers.get("authorization")

    def check() -> service.PairingPlan | JSONResponse:  # reads only: no write lock
        with ctx.db.read() as session:
            device = service.device_by_token(session, token)
            if device is None:
                return _refused(*TOKEN_ANSWERS["qr"])
            try:
                return service.plan_pairing(session, device, kind)
            except service.Refused as exc:
                return _refused(exc.reason, exc.key)

    plan = await run_in_threadpool(check)
    if isinstance(plan, JSONResponse):
        return plan
    try:
        started = await run_in_threadpool(service.call_driver, plan)
    except service.Refused as exc:
        return _refused(exc.reason, exc.key)

    def finish(session: Session) -> dict[str, Any] | JSONResponse:
        pairing = service.finish_pairing(session, plan, started, now)
        if pairing is None:  # deleted meanwhile
            return _refused(*TOKEN_ANSWERS["qr"])
        if not pairing.value:
            return {"detail": "device connected", "status": True}
        return {"code" if pairing.kind == "code" else "url": pairing.value, "status": True}

    return await _run(ctx, finish)


for _path, _abody, _summary in [
    ("get-devices", _get_devices, "Every device of the account (account token)"),
    ("add-device", _add_device, "Add a device (account token)"),
]:
    router.add_api_route(
        f"/{_path}",
        _method(_path, _account, _abody),
        methods=["POST"],
        tags=["account"],
        summary=_summary,
        openapi_extra=openapi.operation(_path),
    )
    if _path in READ_BY_GET:
        router.add_api_route(
            f"/{_path}",
            _method(_path, _account, _abody),
            methods=["GET"],
            tags=["account"],
            summary=f"{_summary} (GET)",
            openapi_extra=openapi.by_get(_path),
        )


# --- the WhatsApp Cloud API's webhook of a device bound to it ---------------------------------


def _cloud_settings(ctx: AppContext, device_id: int) -> dict[str, Any] | None:
    """The connection settings of a device bound to the Cloud API, else None."""
    if not 0 < device_id <= MAX_ID:
        return None
    with ctx.db.read() as session:
        device = gateway_repo.device_any(session, device_id)
        if device is None or device.driver != "whatsapp_cloud":
            return None
        conn = connections_repo.by_id_any(session, device.connection_id)
        return dict(conn.settings) if conn is not None else None


@router.get("/gateway/cloud/{device_id}/webhook", tags=["cloud api"], include_in_schema=False)
async def cloud_subscribe(device_id: int, request: Request, ctx: Ctx) -> Response:
    """Meta's subscription handshake: echo ``hub.challenge`` when the verify token matches."""
    found = await run_in_threadpool(_cloud_settings, ctx, device_id)
    token = str(found.get("verify_token") or "") if found else ""
    challenge = verify_subscription(dict(request.query_params), token) if token else None
    if challenge is None:
        return Response("forbidden", status_code=403, media_type="text/plain")
    return Response(challenge, media_type="text/plain")


@router.post("/gateway/cloud/{device_id}/webhook", tags=["cloud api"], include_in_schema=False)
async def cloud_notify(device_id: int, request: Request, ctx: Ctx) -> Response:
    """Statuses and inbound messages from the Cloud API; the raw body is verified against
    the app secret before anything is read from it."""
    raw = await request.body()
    found = await run_in_threadpool(_cloud_settings, ctx, device_id)
    secret = str(found.get("app_secret") or "") if found else ""
    if not found or not secret:
        return _refused("invalid device")
    if not verify_signature(raw, request.headers.get("x-hub-signature-256"), secret):
        return JSONResponse({"reason": "invalid signature", "status": False}, status_code=401)
    try:
        payload = json.loads(raw)
    except ValueError:
        return _refused("JSON format invalid")
    events = parse_webhook(payload)
    now = ctx.clock()

    def apply() -> int:
        with ctx.db.transaction() as session:
            device = gateway_repo.device_any(session, device_id)
            return service.cloud_events(session, device, events, now) if device else 0

    applied = await run_in_threadpool(apply)
    return JSONResponse({"status": True, "applied": applied})
