"""What a running process shares: settings and the database. One per process."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from omnirelay.config import Settings
from omnirelay.db import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx
