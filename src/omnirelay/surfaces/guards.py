"""Checks every surface makes on every request before its route runs."""

from __future__ import annotations

import re

from fastapi import Request

from omnirelay.errors import InvalidInput

# A JSON string escape \u0000: after an even run of backslashes (``\\u0000`` is a
# backslash followed by the text "u0000", not a NUL).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _nul(where: str) -> InvalidInput:
    return InvalidInput(
        "validation_error",
        f"Invalid argument: NUL characters (U+0000) are not allowed ({where})",
    )


async def reject_nul_head(request: Request) -> None:
    """Refuse a NUL character in the path, query or headers, on every engine.

    PostgreSQL text cannot hold one: it would fail in the database instead, as a 5xx, and
    on the send path it would fail the whole group-commit batch, other requests included.
    """
    if "\x00" in request.scope["path"]:  # decoded: %00 is a NUL here
        raise _nul("in the path")
    if any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()):
        raise _nul("in the query")
    if any(b"\x00" in value for _, value in request.scope["headers"]):
        raise _nul("in a header")


def check_body_nul(body: bytes, content_type: str) -> None:
    """The same refusal for a NUL in the body (InvalidInput)."""
    if not body:
        return
    if content_type.startswith("application/x-www-form-urlencoded"):
        found = b"%00" in body or b"\x00" in body
    elif content_type.startswith("multipart/"):
        found = b"\x00" in body  # no surface takes binary uploads
    else:  # JSON, or what routes read as JSON
        found = _JSON_NUL.search(body) is not None
    if found:
        raise _nul("in the body")


async def reject_nul(request: Request) -> None:
    """``reject_nul_head`` and the body. Surfaces whose routes read their body after the
    caller is known use ``reject_nul_head`` and let the surface guard check the body when
    it is read (``surfaces.limits``), so a stranger's body is never read."""
    await reject_nul_head(request)
    body = await request.body()  # cached: the route reads it again for free
    check_body_nul(body, request.headers.get("content-type", ""))


JSON_NUL = _JSON_NUL  # the /v3 hot path (surfaces/notify/hot.py) checks bodies with it too
