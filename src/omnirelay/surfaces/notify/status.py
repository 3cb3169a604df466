"""``POST /v3/message/status {id | ids | custom_id}``: each message's current status, in
the shape of its status report. Errors of seed 001: 1025 (an id that is not a message id),
1026 (a custom_id that is not one), 1027 (no id at all), 1029 (not found: another
organization's ids too)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from omnirelay.messaging import errors as e
from omnirelay.messaging import status
from omnirelay.surfaces.notify import schemas
from omnirelay.surfaces.notify.deps import Ctx, OrgId, read_json

router = APIRouter(prefix="/message", tags=["status"])
MAX_IDS = 1000
MAX_CUSTOM_ID = 200
NOT_FOUND = "Message with this ID was not found"


def _id(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise e.SendError(1025, "Wrong sms ID format", field=field)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise e.SendError(1025, "Wrong sms ID format", field=field) from None


def _wanted(body: Any) -> tuple[list[str], list[str]]:
    if not isinstance(body, dict):
        raise e.no_params()
    ids: list[str] = []
    if body.get("id") not in (None, ""):
        ids.append(_id(body["id"], "id"))
    many = body.get("ids")
    if many is not None:
        if not isinstance(many, list):
            raise e.SendError(1025, "Wrong sms ID format", field="ids")
        if len(many) > MAX_IDS:
            raise e.SendError(1020, "You've reached max. subscribers per request limit")
        ids.extend(_id(v, f"ids[{i}]") for i, v in enumerate(many))
    custom: list[str] = []
    value = body.get("custom_id")
    if value not in (None, ""):
        if not isinstance(value, str) or len(value) > MAX_CUSTOM_ID:
            raise e.SendError(1026, "Wrong user message ID format", field="custom_id")
        custom.append(value)
    if not ids and not custom:
        raise e.SendError(1027, "There should be at least one sms ID in the request")
    return list(dict.fromkeys(ids)), custom


@router.post("/status", openapi_extra=schemas.body(schemas.MessageStatus))
async def message_status(request: Request, ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """`data`: one status report per message asked for, in order (`id`, then `ids`, then
    `custom_id`); `errors`: those not found (1029). None found: the error 1029 (404)."""
    body, _ = await read_json(request)
    ids, custom = _wanted(body)

    def read() -> Any:
        with ctx.db.read() as session:
            return status.current(session, org_id, ids, custom)

    by_id, by_custom = await run_in_threadpool(read)
    data: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for message_id in ids:
        if message_id in by_id:
            data.append(by_id[message_id])
        else:
            errors.append({"id": message_id, "desc": NOT_FOUND, "code": 1029})
    for custom_id in custom:
        found = by_custom.get(custom_id)
        if found is None:
            errors.append({"custom_id": custom_id, "desc": NOT_FOUND, "code": 1029})
        elif found not in data:
            data.append(found)
    if not data:
        raise e.SendError(1029, NOT_FOUND, status=404)
    answer: dict[str, Any] = {"result": "success", "data": data}
    if errors:
        answer["errors"] = errors
    return answer
