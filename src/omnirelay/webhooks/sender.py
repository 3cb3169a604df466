"""The webhook drain's HTTP side: one asyncio loop in its own thread POSTs the claimed
deliveries concurrently with aiohttp, through the SSRF guard's connector, keeping
connections alive per host; no database here.

The drain thread hands over a batch (``submit``) and collects outcomes as they finish
(``take``), so a slow receiver never holds up a batch: what it has not answered yet is
recorded with a later batch. A host has at most ``per_host`` deliveries in flight and
``HOST_QUEUE_FACTOR`` times as many held here; beyond that the claim leaves its events
in the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from yarl import URL

from omnirelay.db import utcnow
from omnirelay.net.connectors import GuardedConnector
from omnirelay.net.ssrf import IPNetwork, UnsafeURL, precheck
from omnirelay.retry import Schedule
from omnirelay.webhooks import signing
from omnirelay.webhooks.bulk_repository import AttemptResult
from omnirelay.webhooks.delivery import classify

log = logging.getLogger(__name__)
USER_AGENT = "omnirelay-webhooks/1"
MAX_RESPONSE_BYTES = 64 * 1024
# A host holds up to this many times its in-flight limit (the rest wait here, leased):
# big enough for a claim of a few hundred to one fast receiver, small enough that a
# receiver that hangs holds few (its own) events out of other processes' reach.
HOST_QUEUE_FACTOR = 8


@dataclass(frozen=True, slots=True)
class Job:
    """What one delivery needs, detached from the database."""

    seq: int
    id: str
    claim_id: str
    endpoint_id: int
    url: str
    body: bytes
    attempt: int
    schedule_step: int  # failures so far in this schedule (a replay starts it over)
    backoff: Schedule
    keys: tuple[bytes, ...]  # signing keys, the current one first


@dataclass(slots=True)
class _Held:
    job: Job
    host: str
    lease_end: float  # monotonic


def host_of(url: str) -> str:
    """The key of per-host limits and keep-alive: scheme, host and port."""
    try:
        return str(URL(url).origin())
    except ValueError:
        return url


class Sender:
    def __init__(
        self,
        allowed: Sequence[IPNetwork],
        *,
        concurrency: int,
        per_host: int,
        timeout: float,
        lease_seconds: float,
    ) -> None:
        self.allowed = tuple(allowed)
        self.concurrency = concurrency
        self.per_host = per_host
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self.on_ready: Callable[[], None] | None = None  # outcomes wait: wake the drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: aiohttp.ClientSession | None = None
        # Shared with the drain thread, under _cond.
        self._cond = threading.Condition()
        self._held: dict[int, _Held] = {}
        self._per_host: Counter[str] = Counter()  # held (in flight + waiting) per host
        self._ready: list[AttemptResult] = []
        self._want = 0  # > 0: the drain thread waits in take() for that many outcomes
        # Loop thread only.
        self._running: Counter[str] = Counter()
        self._queued: dict[str, deque[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._urls: dict[str, URL | UnsafeURL] = {}  # parsed and prechecked, per URL
        self._hosts: dict[str, str] = {}

    # --- lifecycle (drain thread) ---------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="webhook-sender", daemon=True
        )
        self._thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
            loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._open())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._close())
        loop.close()

    async def _open(self) -> None:
        # Every peer through the one SSRF guard: names by its resolver, address literals
        # (which aiohttp connects to without resolving) checked by the connector itself.
        connector = GuardedConnector(
            self.allowed, limit=self.concurrency, limit_per_host=0, ttl_dns_cache=10
        )
        self._client = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"content-type": "application/json", "user-agent": USER_AGENT},
            auto_decompress=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def _close(self) -> None:
        for task in list(self._tasks):  # outlived stop(): released, delivered again
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    def stop(self, timeout: float) -> tuple[list[AttemptResult], list[tuple[int, str]]]:
        """Stop starting deliveries, let those in flight finish (up to ``timeout``), stop
        the loop. What finished, to record; (seq, claim id) of the rest, to release."""
        loop = self._loop
        if loop is None:
            return [], []
        unstarted = asyncio.run_coroutine_threadsafe(self._drop_queued(), loop).result(10)
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._held) > len(unstarted) and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            ready, self._ready = self._ready, []
            rest = [(h.job.seq, h.job.claim_id) for h in self._held.values()]
            self._held.clear()
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None
        return ready, rest

    async def _drop_queued(self) -> list[int]:
        dropped = [job.seq for queue in self._queued.values() for job in queue]
        self._queued.clear()
        return dropped

    # --- the drain thread's side ----------------------------------------------------------

    def held(self) -> int:
        with self._cond:
            return len(self._held)

    @property
    def host_queue(self) -> int:
        """Deliveries of one host held at most (in flight and waiting their turn)."""
        return HOST_QUEUE_FACTOR * self.per_host

    def room_per_url(self) -> tuple[dict[str, int], list[str]]:
        """How many more events of each URL we hold may take (a URL's host may hold
        ``host_queue``), and the URLs whose host is full (left out of the claim)."""
        with self._cond:
            per_url: Counter[str] = Counter(h.job.url for h in self._held.values())
            room: dict[str, int] = {}
            full: list[str] = []
            for url in per_url:
                left = self.host_queue - self._per_host[self._host(url)]
                if left <= 0:
                    full.append(url)
                room[url] = max(0, left)
            return room, full

    def submit(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        assert self._loop is not None
        end = time.monotonic() + self.lease_seconds
        with self._cond:
            for job in jobs:
                host = self._host(job.url)
                self._held[job.seq] = _Held(job, host, end)
                self._per_host[host] += 1
        self._loop.call_soon_threadsafe(self._start_all, list(jobs))

    def take(self, want: int, wait: float) -> list[AttemptResult]:
        """The outcomes finished so far, waiting up to ``wait`` seconds until at least
        ``want`` have (or nothing is in flight any more)."""
        deadline = time.monotonic() + wait
        with self._cond:
            self._want = want
            try:
                while len(self._ready) < want and self._held:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            finally:
                self._want = 0
            ready, self._ready = self._ready, []
            return ready

    def expiring(self) -> list[tuple[int, str]]:
        """(seq, claim id) of what we hold whose lease is past half: to renew now."""
        now = time.monotonic()
        with self._cond:
            due = [h for h in self._held.values() if h.lease_end - now < self.lease_seconds / 2]
            for h in due:
                h.lease_end = now + self.lease_seconds
            return [(h.job.seq, h.job.claim_id) for h in due]

    def _host(self, url: str) -> str:
        host = self._hosts.get(url)
        if host is None:
            host = self._hosts[url] = host_of(url)
        return host

    # --- the loop's side -------------------------------------------------------------------

    def _start_all(self, jobs: list[Job]) -> None:
        for job in jobs:
            host = self._hosts.get(job.url) or host_of(job.url)
            if self._running[host] < self.per_host:
                self._start(job, host)
            else:
                self._queued.setdefault(host, deque()).append(job)

    def _start(self, job: Job, host: str) -> None:
        self._running[host] += 1
        task = asyncio.get_running_loop().create_task(self._deliver(job))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(t, host))

    def _finished(self, task: asyncio.Task[None], host: str) -> None:
        self._tasks.discard(task)
        self._running[host] -= 1
        queue = self._queued.get(host)
        if queue:
            self._start(queue.popleft(), host)
            if not queue:
                del self._queued[host]
        elif self._running[host] <= 0:
            del self._running[host]

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            try:
                precheck(url, self.allowed)  # and every address again by the connector
                parsed = URL(url)
            except UnsafeURL as exc:
                parsed = exc
            if len(self._urls) > 10_000:
                self._urls.clear()
            self._urls[url] = parsed
        if isinstance(parsed, UnsafeURL):
            raise parsed
        return parsed

    async def _deliver(self, job: Job) -> None:
        started = utcnow()
        t0 = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            status, verdict_headers = await self._post(job)
            verdict = classify(status, verdict_headers)
            outcome: str = verdict.kind
            retry_after = verdict.retry_after
            if outcome != "delivered":
                error = f"receiver answered {status}"
        except UnsafeURL as exc:
            # The address the URL now resolves to is not allowed: never retry that.
            outcome, error = "failed", exc.message
        except TimeoutError:
            outcome, error = "retry", f"timeout after {self.timeout:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            outcome, error = "retry", f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:  # never let one delivery kill the loop
            log.exception("webhook delivery %s crashed", job.id)
            outcome, error = "retry", f"internal error: {type(exc).__name__}"
        elapsed = time.perf_counter() - t0
        next_at: datetime | None = None
        if outcome == "retry":
            delay = job.backoff.delay(job.schedule_step + 1, retry_after)
            if delay is None:
                outcome = "failed"
            else:
                next_at = started + timedelta(seconds=elapsed + delay)
        result = AttemptResult(
            job.seq,
            job.claim_id,
            job.endpoint_id,
            job.attempt,
            started,
            int(elapsed * 1000),
            status,
            error,
            outcome,
            next_at,
        )
        with self._cond:
            if self._held.pop(job.seq, None) is None:
                return  # given up at stop: released, delivered again later
            host = self._hosts.get(job.url) or host_of(job.url)
            self._per_host[host] -= 1
            if self._per_host[host] <= 0:
                del self._per_host[host]
            self._ready.append(result)
            waiting = self._want > 0
            # Wake the waiting drain thread once, when it has what it waits for (not on
            # every answer: each wake-up is a thread switch).
            if waiting and (len(self._ready) >= self._want or not self._held):
                self._cond.notify()
            first = len(self._ready) == 1
        if first and not waiting and self.on_ready is not None:
            self.on_ready()  # the drain is asleep: outcomes wait to be recorded

    async def _post(self, job: Job) -> tuple[int, dict[str, str] | None]:
        url = self._url(job.url)
        headers = signing.headers_with_keys(job.keys, job.id, int(time.time()), job.body)
        assert self._client is not None
        async with self._client.post(
            url, data=job.body, headers=headers, allow_redirects=False
        ) as resp:
            await resp.content.read(MAX_RESPONSE_BYTES)  # drain a little, keep-alive
            retry_after = resp.headers.get("retry-after")
            return resp.status, {"retry-after": retry_after} if retry_after else None
