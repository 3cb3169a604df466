"""/v3 methods besides sending: balance, senders, login, phone check, templates."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from omnirelay.billing import service as billing
from omnirelay.connections import service as connections
from omnirelay.connections.models import CHANNELS
from omnirelay.messaging import errors as e
from omnirelay.phones import phone_info
from omnirelay.surfaces.notify import schemas
from omnirelay.surfaces.notify.deps import Ctx, OrgId, read_json
from omnirelay.templates import service as templates
from omnirelay.templates.models import Template
from omnirelay.tenancy import service as tenancy

router = APIRouter()
MAX_PHONES = 500


async def _optional_json(request: Request) -> dict[str, Any]:
    if not (await request.body()).strip():
        return {}
    body, _ = await read_json(request)
    if not isinstance(body, dict):
        raise e.no_params()
    return body


@router.post("/balance", tags=["account"])
def balance(ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """The account balance: `{"result": "success", "balance": "500.25", "currency": "EUR"}`."""
    with ctx.db.transaction() as session:
        row = billing.balance(session, org_id)
        return {
            "result": "success",
            "balance": billing.format_units(row.amount),
            "currency": row.currency,
        }


@router.post("/senders", tags=["account"], openapi_extra=schemas.body(schemas.Senders))
async def senders(request: Request, ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """Active sender IDs: `channel` is `sms` (SMS only) or `all` (every channel; VK senders
    are group ids)."""
    body = await _optional_json(request)
    channel = body.get("channel")
    if channel is None:
        raise e.no_field("channel")
    if channel not in ("sms", "all"):
        raise e.invalid("channel must be sms or all", "channel")

    def read() -> dict[str, list[str]]:
        with ctx.db.transaction() as session:
            out: dict[str, list[str]] = {}
            for c in CHANNELS if channel == "all" else ("sms",):
                names: list[str] = []
                for row in connections.list_connections(session, org_id, c):
                    if row.active:
                        names.extend(s for s in row.senders if s not in names)
                out[c] = names
            return out

    return {"result": "success", "senders": await run_in_threadpool(read)}


@router.post("/info", tags=["account"])
def info(ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """The login: the organization's name."""
    with ctx.db.transaction() as session:
        return {"result": "success", "login": tenancy.get_organization(session, org_id).name}


@router.post("/check/phone", tags=["account"], openapi_extra=schemas.body(schemas.CheckPhone))
async def check_phone(request: Request, ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """Parse and describe one number (`phone`) or up to 500 (`phones`)."""
    body = await _optional_json(request)
    phones: list[Any] = []
    if body.get("phone") not in (None, ""):
        phones.append(body["phone"])
    many = body.get("phones")
    if many is not None:
        if not isinstance(many, list):
            raise e.invalid("phones must be an array", "phones")
        phones.extend(many)
    if not phones:
        raise e.no_field("phone")
    if len(phones) > MAX_PHONES:
        raise e.SendError(1020, "You've reached max. subscribers per request limit")
    region = ctx.settings.default_phone_region or None
    data = [
        phone_info(str(p), region)
        if isinstance(p, str | int) and not isinstance(p, bool)
        else phone_info("", region)  # not a number at all: the invalid shape
        for p in phones
    ]
    return {"result": "success", "data": data}


# --- templates ----------------------------------------------------------------------


def template_out(row: Template) -> dict[str, Any]:
    channels = templates.v3_channels(row)
    flags = {c: c in channels for c in CHANNELS}
    return {
        "id": row.uuid,
        "name": row.name,
        "text": row.text,
        **flags,
        "channel": flags,  # the per-channel map clients read (wire notes)
        "group_url": row.group_url,
        "status": row.status,
        "comment": row.comment,
        "created": row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "updated": row.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        "fields": templates.fields(row.text),
    }


# Two routes, not one with two methods: that would give both the same OpenAPI operation id.
@router.get("/template/show", tags=["templates"])
@router.post("/template/show", tags=["templates"])
def template_show(ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """Every template of the account: `data` is the list of templates."""
    with ctx.db.read() as session:
        rows = templates.list_templates(session, org_id)
        return {"result": "success", "data": [template_out(t) for t in rows]}


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise templates.error(templates.WRONG_TYPE, name)
    return value


def _template_id(body: dict[str, Any]) -> str:
    template_id = body.get("id")
    if template_id is None or template_id == "":
        raise templates.error(templates.MISSING, "id")
    if not isinstance(template_id, str):
        raise templates.error(templates.WRONG_TYPE, "id")
    return template_id


@router.post(
    "/template/create", tags=["templates"], openapi_extra=schemas.body(schemas.TemplateCreate)
)
async def template_create(request: Request, ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """A new template (status `new` until moderated)."""
    body = await _optional_json(request)
    channels = body.get("channels")
    channels = [] if channels is None else channels
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise templates.error(templates.WRONG_TYPE, "channels")
    args = {n: _opt_str(body, n) for n in ("name", "text", "group_url", "comment")}

    def create() -> dict[str, Any]:
        with ctx.db.transaction() as session:
            row = templates.create(session, org_id, channels=channels, **args)
            return {"result": "success", "id": row.uuid, "name": row.name}

    return await run_in_threadpool(create)


@router.post(
    "/template/change", tags=["templates"], openapi_extra=schemas.body(schemas.TemplateChange)
)
async def template_change(request: Request, ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """Change fields of a template: `{id, options: {name?, text?, channels?, ...}}`."""
    body = await _optional_json(request)
    template_id, options = _template_id(body), body.get("options")
    if options is None:
        raise templates.error(templates.MISSING, "options")
    if not isinstance(options, dict):
        raise templates.error(templates.WRONG_TYPE, "options")

    def change() -> dict[str, Any]:
        with ctx.db.transaction() as session:
            changed = templates.change(session, org_id, template_id, options)
            return {"result": "success", "change": changed}

    return await run_in_threadpool(change)


@router.post("/template/delete", tags=["templates"], openapi_extra=schemas.body(schemas.TemplateId))
async def template_delete(request: Request, ctx: Ctx, org_id: OrgId) -> dict[str, Any]:
    """Delete a template (its status becomes `deleted`)."""
    body = await _optional_json(request)
    template_id = _template_id(body)

    def delete() -> dict[str, Any]:
        with ctx.db.transaction() as session:
            templates.delete(session, org_id, template_id)
            return {"result": "success"}

    return await run_in_threadpool(delete)
