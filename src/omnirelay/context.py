"""What a running process shares: settings, the database and the accept batcher (group
commit of sends). One per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request

from omnirelay.config import Settings
from omnirelay.db import Database, utcnow
from omnirelay.messaging.batcher import AcceptBatcher


@dataclass
class AppContext:
    settings: Settings
    db: Database
    # Group commit of the single send methods; its thread starts with the first send.
    accepts: AcceptBatcher = field(init=False)
    # The surfaces' clock where a seed has timers (the gateway's OTP); tests replace it.
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self.accepts = AcceptBatcher(
            self.db,
            max_batch=self.settings.accept_batch_max,
            wait=self.settings.accept_batch_wait_ms / 1000,
            timeout=self.settings.accept_timeout_seconds,
        )


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx
