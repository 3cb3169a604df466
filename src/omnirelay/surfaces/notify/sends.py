"""The send methods of /v3: sendSMS, sendViber, sendVK, sendTelegram, send, sendSimple,
sendMixed. Each answers ``{"result": "success", "id": ..., "status": "accepted"}`` once the
message is committed.

The single sends without an ``Idempotency-Key`` are answered before they reach these routes
by the hot path (surfaces/notify/hot.py), with the same parse functions and answer; the
routes here describe every method in the OpenAPI document and serve the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.idempotency import service as idempotency
from omnirelay.messaging import errors as e
from omnirelay.messaging import service, validation
from omnirelay.messaging.validation import Draft, Rules
from omnirelay.surfaces.notify import hot, schemas
from omnirelay.surfaces.notify.deps import Ctx, OrgId, read_json, rules
from omnirelay.surfaces.notify.errors import render

router = APIRouter(prefix="/message", tags=["sending"])
MAX_MIXED = 1000
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Replays the first answer for 24 hours"),
]
Parse = Callable[[Any, Rules], Draft]


async def _accept_one(
    request: Request, ctx: Ctx, org_id: str, key: str | None, parse: Parse
) -> JSONResponse:
    body, raw = await read_json(request)
    draft = parse(body, rules(ctx))
    if key is None:
        # Group commit with the other requests in flight (messaging/batcher.py).
        message_id = await ctx.accepts.accept(org_id, draft)
        return JSONResponse(hot.accepted(message_id))

    def create(session: Session) -> idempotency.Answer:
        # The key's row must commit with the message: this request's own transaction.
        try:
            message_id = service.accept(session, org_id, draft, utcnow())
        except IntegrityError:
            raise e.duplicate_custom_id() from None  # a concurrent request took it
        return 200, hot.accepted(message_id)

    (status, answer), replayed = await run_in_threadpool(
        idempotency.run, ctx.db, org_id, key, request.url.path, raw, create
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(answer, status_code=status, headers=headers)


def _single(method: str, channel: str) -> Parse:
    def parse(body: Any, r: Rules) -> Draft:
        return validation.single(method, channel, body, r, utcnow())

    return parse


@router.post("/sendSMS", openapi_extra=schemas.body(schemas.SendSMS))
async def send_sms(request: Request, ctx: Ctx, org_id: OrgId, key: IdempotencyKey = None) -> Any:
    """An SMS. Errors: No field, 1010 phone, 1011 sender, 1040 ttl, 1015 balance, 1018."""
    return await _accept_one(request, ctx, org_id, key, _single("sendSMS", "sms"))


@router.post("/sendViber", openapi_extra=schemas.body(schemas.SendViber))
async def send_viber(request: Request, ctx: Ctx, org_id: OrgId, key: IdempotencyKey = None) -> Any:
    """A Viber message: text, image, text + action, or text + image + action."""
    return await _accept_one(request, ctx, org_id, key, _single("sendViber", "viber"))


@router.post("/sendVK", openapi_extra=schemas.body(schemas.SendVK))
async def send_vk(request: Request, ctx: Ctx, org_id: OrgId, key: IdempotencyKey = None) -> Any:
    """A message from a VK group."""
    return await _accept_one(request, ctx, org_id, key, _single("sendVK", "vk"))


@router.post("/sendTelegram", openapi_extra=schemas.body(schemas.SendTelegram))
async def send_telegram(
    request: Request, ctx: Ctx, org_id: OrgId, key: IdempotencyKey = None
) -> Any:
    """A Telegram message."""
    return await _accept_one(request, ctx, org_id, key, _single("sendTelegram", "telegram"))


@router.post("/send", openapi_extra=schemas.body(schemas.Send))
async def send(request: Request, ctx: Ctx, org_id: OrgId, key: IdempotencyKey = None) -> Any:
    """Omnichannel: the route's steps are tried in order until one is delivered."""
    return await _accept_one(
        request, ctx, org_id, key, lambda b, r: validation.omnichannel(b, r, utcnow())
    )


@router.post("/sendSimple", openapi_extra=schemas.body(schemas.SendSimple))
async def send_simple(request: Request, ctx: Ctx, org_id: OrgId, key: IdempotencyKey = None) -> Any:
    """The organization's default route (settings: `PUT /api/notifications/settings`)."""
    return await _accept_one(
        request, ctx, org_id, key, lambda b, r: validation.simple(b, r, utcnow())
    )


class _NoneAccepted(Exception):
    """Every sendMixed element was refused: the transaction rolls back, and this answers."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer["desc"])
        self.answer = answer


@router.post("/sendMixed", openapi_extra=schemas.body(schemas.Send, array=True))
async def send_mixed(request: Request, ctx: Ctx, org_id: OrgId, key: IdempotencyKey = None) -> Any:
    """Up to 1000 omnichannel bodies. `id[i]` is the id of element i, or null when it was
    refused; `errors` lists the refused elements with their `index`, `desc` and `code`."""
    body, raw = await read_json(request)
    if not isinstance(body, list) or not body:
        raise e.no_params()
    if len(body) > MAX_MIXED:
        raise e.SendError(1020, "You've reached max. subscribers per request limit")
    r, now = rules(ctx), utcnow()
    drafts: list[Draft | e.SendError] = []
    for element in body:
        try:
            drafts.append(validation.omnichannel(element, r, now, method="sendMixed"))
        except e.SendError as exc:
            drafts.append(exc)

    def create(session: Session) -> idempotency.Answer:
        try:
            outcomes = service.accept_many(session, org_id, drafts, utcnow())
        except IntegrityError:
            raise e.duplicate_custom_id() from None
        ids: list[str | None] = []
        errors: list[dict[str, Any]] = []
        for i, outcome in enumerate(outcomes):
            ids.append(outcome.id)
            if outcome.error is not None:
                detail = render(outcome.error)[1]
                detail.pop("result")
                errors.append({"index": i, **detail})
        if not any(ids):
            # Raised, not answered: a refusal must not be stored under the Idempotency-Key.
            raise _NoneAccepted(
                {"result": "error", "desc": "No message was accepted", "id": ids, "errors": errors}
            )
        # One status per element, aligned with ``id`` (the wire notes).
        statuses = ["accepted" if i is not None else "rejected" for i in ids]
        answer: dict[str, Any] = {"result": "success", "id": ids, "status": statuses}
        if errors:
            answer["errors"] = errors
        return 200, answer

    try:
        (status, answer), replayed = await run_in_threadpool(
            idempotency.run, ctx.db, org_id, key, request.url.path, raw, create
        )
    except _NoneAccepted as refused:
        return JSONResponse(refused.answer, status_code=400)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(answer, status_code=status, headers=headers)
