"""What a running process shares: settings, the database, the accept batcher (group
commit of sends), the API token cache and the send rules. One per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request

from omnirelay.config import Settings
from omnirelay.db import Database, utcnow
from omnirelay.messaging.batcher import AcceptBatcher
from omnirelay.messaging.validation import Rules
from omnirelay.net.ssrf import allowed_networks
from omnirelay.ratelimit.limiter import Limiter, LocalLimiter
from omnirelay.tenancy.cache import ApiTokenCache


@dataclass
class AppContext:
    settings: Settings
    db: Database
    # Group commit of the single send methods; its thread starts with the first send.
    accepts: AcceptBatcher = field(init=False)
    # API token checks of /v3 and /user, kept in memory for a second (tenancy/cache.py).
    tokens: ApiTokenCache = field(init=False)
    # What the send bodies are checked against (the same for every request).
    rules: Rules = field(init=False)
    # Rate limits (ADR 22): organizations' quota leased from the shared counter; per-IP
    # budgets of callers not (yet) known, in this process.
    limiter: Limiter = field(init=False)
    ip_limiter: LocalLimiter = field(init=False)
    # The surfaces' clock where a seed has timers (the gateway's OTP); tests replace it.
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self.accepts = AcceptBatcher(
            self.db,
            max_batch=self.settings.accept_batch_max,
            wait=self.settings.accept_batch_wait_ms / 1000,
            timeout=self.settings.accept_timeout_seconds,
        )
        self.tokens = ApiTokenCache(self.db, ttl=self.settings.credential_cache_seconds)
        self.rules = Rules(
            default_region=self.settings.default_phone_region or None,
            allowed_networks=allowed_networks(self.settings),
        )
        window = self.settings.rate_limit_window_seconds
        self.limiter = Limiter(
            self.db, default_limit=self.settings.rate_limit_requests, window=window
        )
        self.ip_limiter = LocalLimiter(window=window)


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx
