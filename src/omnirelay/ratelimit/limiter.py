"""Rate limits that never make a request wait on the database (ADR 22).

``Limiter`` keeps, per organization, a local bucket of quota leased from the shared
counter (``rate_limit_counters``: one row per organization and fixed window, ADR 5). A
request spends a local token; a background thread leases more when the bucket runs low,
in one transaction for every key that needs it. Before its first lease a bucket may run
into debt, up to ``credit`` calls, charged to the next lease: so across P processes at
most ``limit + P * credit`` calls pass in a window, and never fewer than ``limit`` while
every process keeps being called. ``LocalLimiter`` is a per-process fixed window, for
per-IP limits (no database at all).

``check`` is synchronous, takes one in-process lock for a few dictionary operations and
never blocks on I/O: safe on the event loop.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from omnirelay.db import Database
from omnirelay.ratelimit import repository as repo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window ends (the Retry-After of a refusal)

    @property
    def retry_after(self) -> int:
        return self.reset_seconds


def headers(decision: Decision) -> dict[str, str]:
    """``X-RateLimit-*`` for every answer; ``Retry-After`` too on a refusal."""
    out = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        out["Retry-After"] = str(decision.reset_seconds)
    return out


def lease_size(limit: int) -> int:
    return max(1, min(1000, limit // 50))


def credit_for(limit: int) -> int:
    return max(lease_size(limit), min(limit, 8))


class _Bucket:
    __slots__ = ("exhausted", "limit", "pending", "seen", "tokens", "window_start")

    def __init__(self, window_start: int, limit: int) -> None:
        self.window_start = window_start
        self.limit = limit
        self.tokens = 0  # leased and not spent; negative: spent before a lease came (debt)
        self.seen = 0  # the shared count at the last lease, capped at the limit
        self.exhausted = False  # the shared counter had nothing left
        self.pending = False


class Limiter:
    def __init__(
        self,
        db: Database,
        *,
        default_limit: int,
        window: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.default_limit = default_limit
        self.window = max(1, window)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._busy = 0  # leases being written (for ``settled``)

    # --- the request path ---------------------------------------------------------------

    def check(self, key: str) -> Decision:
        """Spend one call of ``key``'s quota (an organization id)."""
        now = self.clock()
        start = int(now // self.window) * self.window
        reset = max(1, math.ceil(start + self.window - now))
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or bucket.window_start != start:
                limit = bucket.limit if bucket is not None else self.default_limit
                bucket = self._buckets[key] = _Bucket(start, limit)
            if bucket.tokens > 0:
                bucket.tokens -= 1
                allowed = True
            else:
                allowed = not bucket.exhausted and bucket.tokens > -credit_for(bucket.limit)
                if allowed:
                    bucket.tokens -= 1
            if not bucket.exhausted and bucket.tokens * 2 < lease_size(bucket.limit):
                self._want(bucket)
            remaining = bucket.limit - bucket.seen + bucket.tokens
            if bucket.seen == 0 and not bucket.exhausted:
                remaining = bucket.limit + bucket.tokens  # nothing leased yet
            remaining = max(0, min(bucket.limit, remaining))
            return Decision(allowed, bucket.limit, remaining, reset)

    def _want(self, bucket: _Bucket) -> None:
        if not bucket.pending:
            bucket.pending = True
            self._ensure_thread()
            self._wake.set()

    # --- the refresher ------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._run, name="rate-limit-leases", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self.refresh()
            except Exception:
                log.exception("leasing rate-limit quota failed")
                time.sleep(0.1)

    def refresh(self) -> None:
        """Lease quota for every bucket that asked: one transaction for all of them."""
        with self._lock:
            wanted = [
                (k, b, b.window_start, max(0, -b.tokens) + lease_size(b.limit))
                for k, b in self._buckets.items()
                if b.pending
            ]
            self._busy += 1
            # Drop buckets of past windows: the map holds active callers only.
            start = int(self.clock() // self.window) * self.window
            for k in [k for k, b in self._buckets.items() if b.window_start < start]:
                del self._buckets[k]
        try:
            if not wanted:
                return
            grants: dict[str, tuple[int, int, int]] = {}
            with self.db.transaction() as session:
                limits = repo.limits(session, [k for k, *_ in wanted])
                for key, _bucket, window_start, n in wanted:
                    if key not in limits:
                        continue  # no such organization (deleted): nothing to count
                    limit = limits[key] or self.default_limit
                    after = repo.add(session, key, window_start, n)
                    if after == n:  # the window's first lease: drop the old windows
                        repo.delete_before(session, key, window_start)
                    granted = max(0, min(n, limit - (after - n)))
                    grants[key] = (granted, min(after, limit), limit)
            with self._lock:
                for key, bucket, window_start, n in wanted:
                    bucket.pending = False
                    if key not in grants or bucket.window_start != window_start:
                        continue
                    granted, seen, limit = grants[key]
                    bucket.tokens += granted
                    bucket.seen, bucket.limit = seen, limit
                    bucket.exhausted = granted < n
        finally:
            with self._lock:
                self._busy -= 1
                for _, bucket, *_ in wanted:
                    bucket.pending = False

    def settled(self) -> bool:
        """No lease asked for or being written (tests wait on this)."""
        with self._lock:
            return self._busy == 0 and not any(b.pending for b in self._buckets.values())

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class LocalLimiter:
    """Fixed windows counted in this process only: per-IP limits on callers who are not
    (yet) known, where a shared count is not worth a write."""

    def __init__(self, *, window: int, clock: Callable[[], float] = time.time) -> None:
        self.window = max(1, window)
        self.clock = clock
        self._start = 0
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, key: str, limit: int, *, spend: bool = True) -> Decision:
        now = self.clock()
        start = int(now // self.window) * self.window
        reset = max(1, math.ceil(start + self.window - now))
        with self._lock:
            if start != self._start:
                self._start, self._counts = start, {}
            used = self._counts.get(key, 0)
            allowed = used < limit
            if spend and allowed:
                used += 1
                self._counts[key] = used
            return Decision(allowed, limit, max(0, limit - used), reset)
