"""`/user/media/...` (seed 004 media storage): the upload-slot method, and on local disk
the form target the slot names and the direct links.

The form target and the links are plain routes, outside the surface's JSON checks: the
form is read as a stream (a file is binary, up to 10 MB, and must never be read whole),
and a link is fetched by anyone who has it, without a token. They are described in the
surface's OpenAPI document by hand (``describe``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from omnirelay.context import AppContext, get_context
from omnirelay.errors import InvalidInput, NotFound
from omnirelay.media import service
from omnirelay.media.models import MediaSlot
from omnirelay.media.schemas import SlotOut, SlotRequest
from omnirelay.media.storage import MAX_SIZE, TOKEN, LocalStorage, digest, from_settings
from omnirelay.surfaces.platform.deps import Ctx, OrgId
from omnirelay.surfaces.platform.media_form import FIELDS_LIMIT, FormReader, boundary_of, too_large

router = APIRouter(prefix="/media", tags=["media"])
FORM_PATH = "/media/store/{slot}"
LINK_PATH = "/media/files/{token}/{filename}"


def base_url(ctx: AppContext, request: Request) -> str:
    """Where clients reach this surface: the configured public URL, else the request's."""
    if ctx.settings.public_url:
        return ctx.settings.public_url.rstrip("/") + "/user"
    # base_url is the server's root; root_path is where this surface is mounted on it.
    return str(request.base_url).rstrip("/") + str(request.scope.get("root_path", ""))


@router.post("/upload", response_model=SlotOut)
def upload_slot(ctx: Ctx, org_id: OrgId, body: SlotRequest, request: Request) -> SlotOut:
    """An upload slot: POST multipart/form-data to `url` with every field of `fields`
    and the file last, under `file`. Valid one hour, for one file of at most 10 MB of the
    slot's content type; `mediaUrl` is the file's direct link."""
    now = ctx.clock()
    plan = service.plan_slot(body.filename, body.contentType, now)
    storage = from_settings(ctx.settings)
    # Signed before the transaction: a bucket's credentials may come from the network.
    target = storage.target(plan, base_url(ctx, request))
    with ctx.db.transaction() as session:
        service.create_slot(session, org_id, plan, target, storage.name)
    return SlotOut(
        id=plan.slot_id,
        url=target.url,
        fields=target.fields,
        mediaUrl=target.media_url,
        expiresAt=plan.expires_at.isoformat().replace("+00:00", "Z"),
        maxSize=MAX_SIZE,
    )


def _local(ctx: AppContext) -> LocalStorage:
    storage = from_settings(ctx.settings)
    if not isinstance(storage, LocalStorage):  # slots of a bucket are posted to the bucket
        raise NotFound("slot_not_found", "No such upload slot (or a wrong token)")
    return storage


async def store(request: Request) -> Response:
    """The form target of a local slot: answers 204 (as S3 does) once the file is
    stored; any refusal stores nothing and leaves the slot usable."""
    ctx = get_context(request)
    storage = _local(ctx)
    slot_id = str(request.path_params["slot"])
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_SIZE + FIELDS_LIMIT:
        raise too_large(MAX_SIZE)  # refused before a byte is read
    boundary = boundary_of(request.headers.get("content-type"))
    slot = await run_in_threadpool(_find, ctx, slot_id)
    now = ctx.clock()

    def check(fields: dict[str, str]) -> None:
        service.check_upload(slot, fields.get("token"), fields.get("Content-Type"), now)

    reader = FormReader(boundary, MAX_SIZE, check)
    incoming: Path | None = None
    handle: IO[bytes] | None = None
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_SIZE + FIELDS_LIMIT:
                raise too_large(MAX_SIZE)
            reader.feed(chunk)
            data = reader.take()
            if data:
                if handle is None:
                    incoming = storage.new_incoming()
                    handle = await run_in_threadpool(incoming.open, "wb")
                await run_in_threadpool(handle.write, data)
        reader.finish()
        if not reader.file_started:
            check(reader.fields)  # a slot's own refusals come first
            raise InvalidInput("missing_file", 'No "file" part (it must come last)', field="file")
        if reader.size == 0 or handle is None or incoming is None:
            raise InvalidInput("empty_file", "The file is empty", field="file")
        await run_in_threadpool(handle.close)
        assert slot is not None  # check() passed
        await run_in_threadpool(_claim, ctx, storage, slot, incoming, reader.size)
    finally:
        if handle is not None:
            handle.close()
        if incoming is not None:
            incoming.unlink(missing_ok=True)  # moved into place when claimed
    return Response(status_code=204)


def _find(ctx: AppContext, slot_id: str) -> MediaSlot | None:
    if len(slot_id) != 32:
        return None
    with ctx.db.read() as session:
        return service.find_slot(session, slot_id)


def _claim(
    ctx: AppContext, storage: LocalStorage, slot: MediaSlot, incoming: Path, size: int
) -> None:
    """Claim the slot and move the file into place in one transaction: if the claim does
    not commit, the file is removed again; if the move fails, the claim rolls back."""
    placed: Path | None = None
    try:
        with ctx.db.transaction() as session:
            service.claim(session, slot.id, size, ctx.clock())
            placed = storage.place(incoming, slot.key)
    except BaseException:
        if placed is not None:
            placed.unlink(missing_ok=True)
        raise


async def link(request: Request) -> Response:
    """A direct link: the stored file, with the slot's content type."""
    ctx = get_context(request)
    token, filename = str(request.path_params["token"]), str(request.path_params["filename"])
    storage = from_settings(ctx.settings)
    found = None
    if isinstance(storage, LocalStorage) and _token_shape(token):
        found = await run_in_threadpool(_stored, ctx, storage, token, filename)
    if found is None:
        return JSONResponse(
            {"result": "error", "code": "media_not_found", "desc": "No such file"},
            status_code=404,
        )
    path, slot = found
    return FileResponse(
        path,
        media_type=slot.content_type,
        filename=slot.filename,
        content_disposition_type="inline",
        headers={
            # An uploaded page or SVG must not run as this origin's script.
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "public, max-age=86400",
        },
    )


def _token_shape(token: str) -> bool:
    return re.fullmatch(TOKEN, token) is not None


def _stored(
    ctx: AppContext, storage: LocalStorage, token: str, filename: str
) -> tuple[Path, MediaSlot] | None:
    path = storage.find(token, filename)
    if path is None:
        return None
    with ctx.db.read() as session:
        slot = service.uploaded(session, f"{digest(token)}/{filename}")
    return (path, slot) if slot is not None else None


def install(app: FastAPI) -> None:
    """The slot method, the form target and the links, on the /user app."""
    app.include_router(router)
    app.router.routes.append(Route(FORM_PATH, store, methods=["POST"]))
    app.router.routes.append(Route(LINK_PATH, link, methods=["GET", "HEAD"]))
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = original()
            document["paths"].update(describe())
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe() -> dict[str, Any]:
    """The OpenAPI description of the two plain routes."""
    error = {"description": "an error in the surface's shape"}
    return {
        FORM_PATH: {
            "post": {
                "tags": ["media"],
                "summary": "Upload a file into a local slot (the slot's `url`)",
                "description": (
                    "Every field of the slot's `fields`, then the file under `file` (last). "
                    "No Authorization header: the `token` field is the slot's secret. "
                    "At most 10 MB; the slot's content type; once; within its hour."
                ),
                "operationId": "media_store",
                "parameters": [
                    {
                        "name": "slot",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "Content-Type": {"type": "string"},
                                    "token": {"type": "string"},
                                    "file": {"type": "string", "format": "binary"},
                                },
                                "required": ["file"],
                            }
                        }
                    },
                },
                "responses": {"204": {"description": "stored"}, "500": error},
            }
        },
        LINK_PATH: {
            "get": {
                "tags": ["media"],
                "summary": "A stored file (a slot's `mediaUrl`)",
                "operationId": "media_file",
                "parameters": [
                    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in ("token", "filename")
                ],
                "responses": {
                    "200": {"description": "the file, with the slot's content type"},
                    "404": {"description": "no such file"},
                },
            }
        },
    }
