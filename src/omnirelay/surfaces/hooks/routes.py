"""What the provider routers share: the list of routers and the connection lookup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from omnirelay.connections import repository as connections_repo
from omnirelay.context import AppContext

MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class HookConnection:
    """The connection a webhook names, as the route needs it (no ORM object escapes)."""

    id: int
    organization_id: str
    channel: str
    provider: str
    settings: dict[str, Any]


def routers() -> list[APIRouter]:
    """Every provider's router; add a provider here (explicit, no import side effects)."""
    from omnirelay.surfaces.hooks import telegram, twilio, viber, vk

    return [telegram.router, viber.router, vk.router, twilio.router]


def _lookup(
    ctx: AppContext, connection_id: int, providers: tuple[str, ...]
) -> HookConnection | None:
    if not 0 < connection_id <= MAX_ID:
        return None
    with ctx.db.read() as session:
        conn = connections_repo.by_id_any(session, connection_id)
        if conn is None or conn.deleted_at is not None or conn.provider not in providers:
            return None
        return HookConnection(
            conn.id, conn.organization_id, conn.channel, conn.provider, dict(conn.settings)
        )


async def connection(ctx: AppContext, connection_id: int, *providers: str) -> HookConnection | None:
    """The connection ``connection_id`` if it is one of ``providers``, else None: a webhook
    for an unknown connection and one for another provider's are refused alike."""
    return await run_in_threadpool(_lookup, ctx, connection_id, providers)
